"""integration's Grafana (`grafana.<zone>`, through the Cloudflare Tunnel) answers only behind Cloudflare Access
(#22 item 11): the alert recipients signed in by e-mail, and the deploy's Grafana provider with a service token.

Cloudflare Access: a self-hosted application on the host, its policies reusable ones referenced by id and
precedence (cloudflare provider v6 `ZeroTrustAccessApplication.policies`, `ZeroTrustAccessPolicy`); "Service Auth"
policies use the decision `non_identity` and a service token, which a client presents as the `CF-Access-Client-Id`
and `CF-Access-Client-Secret` headers (developers.cloudflare.com/cloudflare-one/identity/service-tokens/). Without
an application, anyone on the internet reaches Grafana's login page and its API.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.plan import Plan
from tests.conftest import PROJECT_DIR, plan_of, stack_document

APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"


@pytest.fixture(scope="module")
def integration() -> Plan:
    return plan_of(PROJECT_DIR / "Pulumi.integration.yaml", "integration")


def _grafana_host() -> str:
    return f"grafana.{stack_document('integration')['config']['platform:zone']['name']}"


def test_an_access_application_covers_grafanas_host(integration: Plan) -> None:
    apps = [r for r in integration.resources if r.type == APP]
    assert [a.inputs.get("domain") for a in apps] == [_grafana_host()]
    [app] = apps
    assert app.inputs["type"] == "self_hosted"
    assert app.inputs["zoneId"] == stack_document("integration")["config"]["platform:zone"]["zoneId"]
    policies = {r.urn: r for r in integration.resources if r.type == POLICY}
    referenced = [p["id"] for p in app.inputs["policies"]]
    assert len(referenced) == len(policies) == 2, app.inputs["policies"]
    assert set(app.dependencies) >= set(policies)


def _includes(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy.get("includes") or [])


def test_access_admits_the_alert_recipients_and_the_deploys_service_token_only(integration: Plan) -> None:
    policies = [r.inputs for r in integration.resources if r.type == POLICY]
    by_decision = {p["decision"]: p for p in policies}
    emails = stack_document("integration")["config"]["platform:alerts"]["emails"]

    assert set(by_decision) == {"allow", "non_identity"}
    assert sorted(i["email"]["email"] for i in _includes(by_decision["allow"])) == sorted(emails)
    assert [set(i) for i in _includes(by_decision["non_identity"])] == [{"serviceToken"}]
    for policy in policies:
        for rule in _includes(policy):
            assert not ({"everyone", "anyValidServiceToken", "ip", "emailDomain"} & set(rule)), policy
    assert len([r for r in integration.resources if r.type == TOKEN]) == 1


def test_the_deploys_grafana_provider_presents_the_service_token(integration: Plan) -> None:
    [provider] = [r for r in integration.resources if r.type == "pulumi:providers:grafana"]
    [app] = [r for r in integration.resources if r.type == APP]

    assert "httpHeaders" in provider.inputs and str(provider.inputs["httpHeaders"]).startswith("[secret")
    assert app.urn in provider.dependencies
