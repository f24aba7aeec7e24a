"""The engine's private listener is where its probes and its metrics scrape go, and no public route leads to
it (#22.2): engine.api.EdgeGuard serves /metrics, /healthz and /readyz without the edge's secret there only, so
a probe or a scrape sent to the public port would be refused, and a public route to the private port would
serve /metrics to anyone. Read from the committed stacks' plans: prod (Cloud Run), staging (Railway),
integration (docker)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.plan import Plan
from tests.conftest import STACKS
from tests.environment import service_environment


def _engine(plan: Plan) -> Any:
    return next(r for r in plan.resources if r.custom and r.inputs.get("name") == "commission-engine")


def _internal_port(plan: Plan) -> int:
    return int(service_environment(plan, "commission-engine")["INTERNAL_PORT"][0])


@pytest.mark.parametrize("stack", STACKS)
def test_the_engine_has_a_private_listener(stack: str, committed_plans: dict[str, Plan]) -> None:
    assert _internal_port(committed_plans[stack]) not in (8000, 0)


def test_cloud_run_probes_ask_the_private_listener_and_the_load_balancer_sends_to_the_public_one(
        committed_plans: dict[str, Plan]) -> None:
    """A serverless NEG sends to the ingress container's port (`ports.containerPort`)."""
    plan = committed_plans["prod"]
    private = _internal_port(plan)
    container = _engine(plan).inputs["template"]["containers"][0]

    assert container["ports"]["containerPort"] != private
    assert container["startupProbe"]["httpGet"]["port"] == private
    assert container["livenessProbe"]["httpGet"]["port"] == private


def test_railways_healthcheck_asks_the_private_listener_and_its_domain_the_public_one(
        committed_plans: dict[str, Plan]) -> None:
    """Railway's healthcheck goes to the PORT variable's port, its domain to the target port
    (https://docs.railway.com/reference/healthchecks)."""
    plan = committed_plans["staging"]
    private = _internal_port(plan)
    engine = _engine(plan)
    env = service_environment(plan, "commission-engine")

    assert int(env["PORT"][0]) == private
    assert engine.inputs["public_port"] != private
    assert f"--port {engine.inputs['public_port']}" in engine.inputs["start_command"]


def test_the_tunnel_routes_the_api_to_the_public_listener(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["integration"]
    private = _internal_port(plan)
    [config] = [r for r in plan.resources
                if r.type == "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"]
    services = [i["service"] for i in config.inputs["config"]["ingresses"] if "commission-engine" in i.get("service", "")]

    assert services and all(not s.endswith(f":{private}") for s in services)


@pytest.mark.parametrize("backend", ["cloudrun", "railway", "docker"])
def test_the_scrape_goes_to_the_private_listener(backend: str) -> None:
    from components.api import INTERNAL_PORT
    from components.observability.telemetry import engine_job

    job = engine_job(backend)  # pyright: ignore[reportArgumentType]
    ports = {job.dns_port} if job.dns_names else {int(t.rsplit(":", 1)[1]) for t in job.targets}
    assert ports == {INTERNAL_PORT}
