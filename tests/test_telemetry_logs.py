"""Logs kept 90 days (S5) on Railway: every Railway service drained to a sink that declares a 90-day
retention (PLAT-LOG-002), the sink's request to Grafana Cloud Logs, and the staging and prod plans."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from components.observability.logs import LogSinkProvider, retention_body
from infra.plan import Plan
from policies.rule import RAILWAY, Resource
from policies.rules.logs_retention import LOG_SINK, check_railway_sink

CONFIG = {"min_days": 90, "sink_types": ["gcp:logging/projectSink:ProjectSink"]}


def _resource(type_: str, name: str, props: dict[str, Any]) -> Resource:
    return Resource(type_, name, f"urn:pulumi:staging::platform::{type_}::{name}", props)


def _sink(days: int, sources: list[str]) -> Resource:
    return _resource(LOG_SINK, "telemetry-log-sink", {"retention_days": days, "sources": sources, "drain": "log-drain"})


ENGINE = _resource(RAILWAY, "engine", {"name": "commission-engine"})
DRAIN = _resource(RAILWAY, "telemetry-log-drain", {"name": "log-drain"})


def test_railway_services_drained_to_a_90_day_sink_pass() -> None:
    assert check_railway_sink([ENGINE, DRAIN, _sink(90, ["commission-engine", "log-drain"])], CONFIG) == []


def test_a_railway_service_no_sink_receives_is_a_violation() -> None:
    violations = check_railway_sink([ENGINE, DRAIN, _sink(90, ["log-drain"])], CONFIG)

    assert violations == [(ENGINE.urn, "Railway keeps logs 21 days at most and these reach no sink kept 90 days; "
                                       "expected a log drain and a sink with retention_days >= 90 naming "
                                       "'commission-engine' in its sources")]


def test_a_sink_kept_less_than_90_days_covers_nothing() -> None:
    violations = check_railway_sink([ENGINE, DRAIN, _sink(30, ["commission-engine", "log-drain"])], CONFIG)

    assert (_sink(30, []).urn, "keeps logs 30 days; expected at least 90") in violations
    assert {urn for urn, _ in violations} == {_sink(30, []).urn, ENGINE.urn, DRAIN.urn}


def test_a_gcp_project_sink_does_not_drain_railway() -> None:
    sink = _resource("gcp:logging/projectSink:ProjectSink", "sink", {"destination": "storage.googleapis.com/x"})

    assert [urn for urn, _ in check_railway_sink([ENGINE, sink], CONFIG)] == [ENGINE.urn]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_committed_stacks_have_no_plat_log_002_finding(stack: str, committed_plans: dict[str, Plan]) -> None:
    from components.observability.telemetry import ENGINE_JOB

    plan = committed_plans[stack]
    railway = sorted(str(r.inputs["name"]) for r in plan.resources if r.type == RAILWAY)
    sinks = [r.inputs for r in plan.resources if r.type == LOG_SINK]
    resources = [Resource(r.type, r.name, r.urn, r.inputs) for r in plan.resources]

    assert check_railway_sink(resources, CONFIG) == []
    if railway:
        [sink] = sinks
        assert sink["retention_days"] == 90 and set(railway) <= set(sink["sources"])
        assert ENGINE_JOB in railway or stack == "prod"


class _Loki(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.calls.append(("PUT", self.path, self.headers["Authorization"], body))
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path, self.headers["Authorization"], b""))
        payload = json.dumps({"state": "pending"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def loki() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Loki)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Loki.calls = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_sink_asks_grafana_cloud_logs_for_the_retention_and_records_its_state(loki: str) -> None:
    from pulumi.dynamic import ConfigureRequest

    provider = LogSinkProvider()
    provider.configure(ConfigureRequest({"platform:grafanaCloudToken": "t0ken"}))
    props = {"loki_url": loki, "loki_user": "1047301", "retention_days": 90, "sources": ["x"], "drain": "log-drain"}

    created = provider.create(props)

    put, get = _Loki.calls
    assert put == ("PUT", "/loki/api/v1/config/limits/retention_period", "Bearer 1047301:t0ken", retention_body(90))
    assert retention_body(90) == b"retention_period: 2160h\n"
    assert get[:2] == ("GET", "/loki/api/v1/config/limits/retention_period")
    assert created.outs is not None and created.outs["state"] == "pending"
    assert "t0ken" not in json.dumps(created.outs)
