"""Cloudflare deploys each managed ruleset at most once per zone: "At the zone level, you can only deploy
each managed ruleset once. At the account level you can deploy each managed ruleset multiple times."
(https://developers.cloudflare.com/waf/managed-rules/#zone-level-deployment, cloudflare-docs
`src/content/docs/waf/managed-rules/index.mdx`). A zone entry point that executes the OWASP Core Ruleset
twice is refused, so the first `pulumi up` of the stack fails.

Also: a migrating tenant (`wafMode: log`) is still seen by the policy pack, so prod's waiver keeps
meaning something, and a stack whose zone-wide action is already `log` keeps OWASP on every host."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import pytest

from infra.plan import Plan
from policies.rule import Resource, Violation
from policies.rules import waf_covers_proxied_hosts, waf_owasp_blocks_in_prod
from tests.conftest import STACKS

# Managed ruleset ids, from Cloudflare's docs (https://developers.cloudflare.com/waf/managed-rules/):
# "Cloudflare Managed Ruleset ... efb7b8c9...376e9aee", "Cloudflare OWASP Core Ruleset ... 4814384a...c25d2f1f".
MANAGED = "efb7b8c949ac4650a09736fc376e9aee"
OWASP = "4814384a9e5d4991b9815dcfc25d2f1f"


def _unwrap(value: Any) -> Any:
    """A secret input (the plan's wire form) holds its plain value under `value`."""
    if isinstance(value, dict):
        document = cast(dict[str, Any], value)
        return document.get("value", document)
    return value


def _executions(plan: Plan) -> Counter[tuple[str, str, str]]:
    """(zone, phase, ruleset id) of every enabled execute rule, across every ruleset of the plan."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for resource in plan.resources:
        if resource.type != "cloudflare:index/ruleset:Ruleset":
            continue
        for rule in _unwrap(resource.wire_inputs["rules"]):
            if rule.get("action") == "execute" and rule.get("enabled", True) is not False:
                seen[(resource.inputs["zoneId"], resource.inputs["phase"], rule["actionParameters"]["id"])] += 1
    return seen


@pytest.mark.parametrize("stack", STACKS)
def test_no_managed_ruleset_is_executed_twice_in_one_zone_phase(stack: str, committed_plans: dict[str, Plan]) -> None:
    executions = _executions(committed_plans[stack])

    assert executions, "a plan executing no managed ruleset proves nothing"
    twice = {key: count for key, count in executions.items() if count > 1}
    assert twice == {}, f"executed more than once per zone and phase (Cloudflare refuses it): {twice}"


def test_staging_logs_owasp_everywhere_in_one_execution(committed_plans: dict[str, Plan]) -> None:
    """Staging's OWASP action is `log` for every host, so its migrating tenant (modaviva, `wafMode: log`)
    needs nothing apart: one execution over every host."""
    [waf] = [r for r in committed_plans["staging"].resources
             if r.type == "cloudflare:index/ruleset:Ruleset" and r.inputs["phase"] == "http_request_firewall_managed"]
    owasp = [rule for rule in waf.inputs["rules"] if rule["actionParameters"]["id"] == OWASP]

    assert [rule["expression"] for rule in owasp] == ["true"]
    assert owasp[0]["actionParameters"]["overrides"]["rules"][0]["action"] == "log"


# ---------------------------------------------------------------------------------------------
# The pack over the same shapes: a migrating host stays visible to it.

ZONE = "7c9e1f3a5b7d4c6e8f0a1b2c3d4e5f60"
ANOMALY = "6179ae15870a4bb7b2d480d4843b323c"  # 949110 Inbound Anomaly Score Exceeded (Cloudflare's OWASP docs)


def _res(type_: str, name: str, props: dict[str, Any], stack: str) -> Resource:
    return Resource(type_, name, f"urn:pulumi:{stack}::platform::{type_}::{name}", props)


def _shop(stack: str) -> list[Resource]:
    dns = "cloudflare:index/dnsRecord:DnsRecord"
    return [_res(dns, "shop", {"zoneId": ZONE, "type": "CNAME", "name": "shop.acme.com", "proxied": True}, stack),
            _res(dns, "old", {"zoneId": ZONE, "type": "CNAME", "name": "old.acme.com", "proxied": True}, stack)]


def _waf(stack: str, owasp_rules: list[dict[str, Any]]) -> Resource:
    return _res("cloudflare:index/ruleset:Ruleset", "edge-waf", {
        "zoneId": ZONE, "kind": "zone", "phase": "http_request_firewall_managed",
        "rules": [{"action": "execute", "expression": "true", "actionParameters": {"id": MANAGED}}, *owasp_rules]},
        stack)


def _owasp(expression: str, action: str) -> dict[str, Any]:
    return {"action": "execute", "expression": expression,
            "actionParameters": {"id": OWASP, "overrides": {"rules": [{"id": ANOMALY, "action": action}]}}}


def test_a_prod_host_left_out_of_owasp_is_a_waf_002_violation_about_that_host_alone() -> None:
    resources = [*_shop("prod"), _waf("prod", [_owasp('not http.host in {"old.acme.com"}', "block")])]

    found = waf_owasp_blocks_in_prod.check(resources, {})

    assert [(urn.rsplit("::", 1)[-1], v.subjects) for urn, v in found if isinstance(v, Violation)] == \
        [("edge-waf", ("old.acme.com",))]
    assert len(found) == 1
    assert waf_covers_proxied_hosts.check(resources, {}) == []


def test_outside_prod_a_host_left_out_of_owasp_is_not_covered() -> None:
    resources = [*_shop("staging"), _waf("staging", [_owasp('not http.host in {"old.acme.com"}', "log")])]

    messages = [f.message if isinstance(f, Violation) else f for _, f in waf_covers_proxied_hosts.check(resources, {})]

    assert messages == ["old.acme.com is proxied but not covered by the Cloudflare OWASP Core Ruleset "
                        "(enabled, not skipped, not overridden off)"]


def test_the_pack_refuses_owasp_executed_twice_in_one_zone() -> None:
    resources = [*_shop("prod"), _waf("prod", [_owasp('not http.host in {"old.acme.com"}', "block"),
                                               _owasp('http.host in {"old.acme.com"}', "log")])]

    messages = [f.message if isinstance(f, Violation) else f for _, f in waf_covers_proxied_hosts.check(resources, {})]

    assert any("executed more than once in zone" in m for m in messages), messages
