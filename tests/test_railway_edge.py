"""In staging's plan the edge reaches the engine on Railway by the engine's own custom domain: a
proxied CNAME of `api.<zone>` to the target Railway answered for it, and the DNS-only TXT Railway
verifies the domain with, both read from the Railway service's outputs (components/backends/railway.py)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.plan import Plan, PlanMocks, PlannedResource
from tests.conftest import PROJECT_DIR, plan_of

RAILWAY_SERVICE = "pulumi-python:dynamic/railway:Service"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
API_HOST = "api.acme-commerce-staging.dev"
VERIFICATION_HOST = f"_railway-verify.{API_HOST}"


def _engine(plan: Plan) -> PlannedResource:
    [engine] = [r for r in plan.resources if r.type == RAILWAY_SERVICE and r.inputs.get("name") == "commission-engine"]
    return engine


def _record(plan: Plan, name: str) -> PlannedResource:
    [record] = [r for r in plan.resources if r.type == DNS_RECORD and r.inputs.get("name") == name]
    return record


def test_the_engine_on_railway_answers_for_the_api_hostname(committed_plans: dict[str, Plan]) -> None:
    engine = _engine(committed_plans["staging"])

    assert engine.inputs["custom_domain"] == API_HOST
    assert engine.inputs["public_port"] == 8000


def test_the_edge_declares_a_proxied_cname_for_the_api_from_the_railway_service(
    committed_plans: dict[str, Plan],
) -> None:
    plan = committed_plans["staging"]

    record = _record(plan, API_HOST)

    assert (record.inputs["type"], record.inputs["proxied"]) == ("CNAME", True), "the WAF must see the traffic"
    assert _engine(plan).urn in record.dependencies, "its content is the Railway service's output"


def test_the_edge_declares_railways_verification_txt_dns_only(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["staging"]

    record = _record(plan, VERIFICATION_HOST)

    assert (record.inputs["type"], record.inputs["proxied"]) == ("TXT", False)
    assert _engine(plan).urn in record.dependencies


def test_the_records_hold_what_railway_answered_for_the_custom_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service's outputs as customDomainCreate fills them (tests/railway_server.py).
    original = PlanMocks.new_resource

    def new_resource(self: PlanMocks, args: Any) -> tuple[str | None, dict[str, Any]]:
        id_, state = original(self, args)
        if args.typ == RAILWAY_SERVICE and state.get("custom_domain"):
            state = {**state, "custom_domain_target": "k3x9q2ab.up.railway.app",
                     "custom_domain_verification": "railway-verify=0f3c9a"}
        return id_, state

    monkeypatch.setattr(PlanMocks, "new_resource", new_resource)
    plan = plan_of(PROJECT_DIR / "Pulumi.staging.yaml", "staging")

    assert _record(plan, API_HOST).inputs["content"] == "k3x9q2ab.up.railway.app"
    assert _record(plan, VERIFICATION_HOST).inputs["content"] == "railway-verify=0f3c9a"
