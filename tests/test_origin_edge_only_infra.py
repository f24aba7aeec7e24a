"""What stands in front of the origins (#22.2, #22.5), read from the committed stacks' plans.

- Cloud Armor (prod's load balancer) admits a request only from a Cloudflare address AND carrying the header
  the edge adds for the API host; every other request meets the default deny. Cloud Armor performs "the action
  of the highest priority rule that matches a request" and an advanced match condition holds "up to five
  subexpressions" (https://cloud.google.com/armor/docs/rules-language-reference).
- The load balancer answers nothing useful for a Host it does not serve: its URL map routes the API host alone
  to the engine; its certificate map has no PRIMARY entry ("served when SNI wasn't specified in the request or
  SNI couldn't be found in the map", Certificate Manager's CertificateMapEntry.Matcher).
- The storefront (Vercel) serves production only to requests carrying the header the edge adds, and the edge adds
  it to the tenants' storefront hosts alone.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from infra.plan import CLOUDFLARE_IPV4, CLOUDFLARE_IPV6, Plan, PlannedResource
from tests.boot_harness import plain
from tests.cloudflare_rules import Request, matches
from tests.conftest import STACKS, stack_document


def _one(plan: Plan, type_: str) -> PlannedResource:
    [resource] = [r for r in plan.resources if r.type == type_ and "standby" not in r.name]
    return resource


def _transforms(plan: Plan) -> list[dict[str, Any]]:
    [ruleset] = [r for r in plan.resources if r.type == "cloudflare:index/ruleset:Ruleset"
                 and r.inputs["phase"] == "http_request_late_transform"]
    return plain(ruleset.wire_inputs["rules"])


def _headers_for(plan: Plan, host: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for rule in _transforms(plan):
        if matches(rule["expression"], Request(host, "/")):
            out.update({k.lower(): v["value"] for k, v in rule["actionParameters"]["headers"].items()})
    return out


_HEADER = re.compile(r"request\.headers\['([a-z0-9-]+)'\] == '([^'\\]*)'")
_RANGE = re.compile(r"inIpRange\(origin\.ip, '([0-9a-f.:/]+)'\)")


def _armor_action(rules: list[dict[str, Any]], ip: str, headers: dict[str, str]) -> str:
    """Cloud Armor's first matching rule by priority, for the two match forms the program declares: a basic
    `srcIpRanges` list, and `request.headers['h'] == 'v' && (inIpRange(origin.ip, 'r') || ...)`."""
    address = ipaddress.ip_address(ip)
    for rule in sorted(rules, key=lambda r: r["priority"]):
        match = rule["match"]
        if "expr" in match:
            expression = match["expr"]["expression"]
            wanted = _HEADER.findall(expression)
            ranges = _RANGE.findall(expression)
            assert expression.count("&&") == (1 if wanted and ranges else 0), expression
            ok = all(headers.get(name) == value for name, value in wanted) and (
                not ranges or any(address in ipaddress.ip_network(r) for r in ranges))
        else:
            ranges = match["config"]["srcIpRanges"]
            ok = ranges == ["*"] or any(address in ipaddress.ip_network(r) for r in ranges)
        if ok:
            return rule["action"]
    raise AssertionError("no rule matched: Cloud Armor always has a default rule")


def test_cloud_armor_admits_cloudflare_with_the_edges_header_and_nothing_else(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    policy = _one(plan, "gcp:compute/securityPolicy:SecurityPolicy")
    rules = plain(policy.wire_inputs["rules"])
    api = f"api.{stack_document('prod')['config']['platform:zone']['name']}"
    edge = _headers_for(plan, api)
    gate = edge.get("x-origin-gate")
    cloudflare = [str(next(ipaddress.ip_network(r).hosts())) for r in (*CLOUDFLARE_IPV4, *CLOUDFLARE_IPV6)]

    assert gate and len(gate) >= 32
    assert gate != edge["x-origin-auth"], "Cloud Armor's copy is readable by project viewers: not the engine's"
    for ip in cloudflare:
        assert _armor_action(rules, ip, {"x-origin-gate": gate}) == "allow", ip
        assert _armor_action(rules, ip, {}) == "deny(403)", ip
        assert _armor_action(rules, ip, {"x-origin-gate": gate[:-1]}) == "deny(403)", ip
    assert _armor_action(rules, "198.51.100.7", {"x-origin-gate": gate}) == "deny(403)"
    assert _armor_action(rules, "2001:db8::1", {"x-origin-gate": gate}) == "deny(403)"
    assert "[secret" in str(policy.inputs["rules"]), "the policy's rules hold the value as a Pulumi secret"


def test_every_cloud_armor_expression_has_at_most_five_subexpressions(committed_plans: dict[str, Plan]) -> None:
    rules = plain(_one(committed_plans["prod"], "gcp:compute/securityPolicy:SecurityPolicy").wire_inputs["rules"])
    for rule in rules:
        if "expr" in rule["match"]:
            expression = rule["match"]["expr"]["expression"]
            assert len(re.split(r"&&|\|\|", expression)) <= 5, expression


def test_the_url_map_routes_the_api_host_alone_and_answers_others_with_nothing(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    url_map = plain(_one(plan, "gcp:compute/uRLMap:URLMap").wire_inputs)
    backend = _one(plan, "gcp:compute/backendService:BackendService")
    api = f"api.{stack_document('prod')['config']['platform:zone']['name']}"

    assert "defaultService" not in url_map, "an unknown Host must not reach the engine"
    assert url_map["defaultUrlRedirect"]["hostRedirect"].endswith(".invalid")
    [rule] = url_map["hostRules"]
    assert sorted(rule["hosts"]) == sorted([api, f"{api}:443"])
    [matcher] = url_map["pathMatchers"]
    assert matcher["name"] == rule["pathMatcher"] and matcher["defaultService"] == f"{backend.name}-id"


def test_the_certificate_map_has_no_default_certificate(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    api = f"api.{stack_document('prod')['config']['platform:zone']['name']}"
    entries = [r.inputs for r in plan.resources if r.type == "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry"]

    assert entries and all(e.get("hostname") == api and "matcher" not in e for e in entries)


@pytest.mark.parametrize("stack", STACKS)
def test_the_edge_adds_the_storefront_header_to_the_storefront_hosts_only(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    zone = stack_document(stack)["config"]["platform:zone"]["name"]
    tenants = stack_document(stack)["config"]["platform:tenants"]
    storefronts = [f"{t['slug']}.{zone}" for t in tenants] + [d for t in tenants for d in t.get("domains", [])]
    values = {_headers_for(plan, host).get("x-storefront-edge-auth") for host in storefronts}

    assert len(values) == 1 and (value := values.pop()) and len(value) >= 32
    for other in (f"api.{zone}", f"grafana.{zone}", f"customers.{zone}", zone, f"www.{zone}", "attacker.example"):
        assert "x-storefront-edge-auth" not in _headers_for(plan, other), other


@pytest.mark.parametrize("stack", STACKS)
def test_vercel_denies_production_requests_without_the_edges_header(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    """Vercel's firewall: condition groups are ORed, the conditions of a group ANDed (pulumiverse-vercel
    FirewallConfig `conditionGroups`: "Sets of conditions that may match a request", `conditions`: "Conditions
    that must all match within a group"). A request with a missing or different header must match a deny."""
    plan = committed_plans[stack]
    zone = stack_document(stack)["config"]["platform:zone"]["name"]
    value = _headers_for(plan, f"{stack_document(stack)['config']['platform:tenants'][0]['slug']}.{zone}")[
        "x-storefront-edge-auth"]
    firewall = _one(plan, "vercel:index/firewallConfig:FirewallConfig")
    project = _one(plan, "vercel:index/project:Project")
    config = plain(firewall.wire_inputs)

    def denied(headers: dict[str, str], environment: str = "production") -> bool:
        request = {"header": headers, "environment": environment}
        for rule in config["rules"]["rules"]:
            if rule.get("active") is False or rule["action"]["action"] != "deny":
                continue
            for group in rule["conditionGroups"]:
                if all(_condition(c, request) for c in group["conditions"]):
                    return True
        return False

    assert config["projectId"] == f"{project.name}-id" and config.get("enabled", True)
    assert not denied({"x-storefront-edge-auth": value})
    assert denied({})
    assert denied({"x-storefront-edge-auth": value[:-1]})
    assert denied({"x-storefront-edge-auth": ""})
    assert "[secret" in str(firewall.inputs["rules"]), "the firewall holds the value as a Pulumi secret"


def _condition(condition: dict[str, Any], request: dict[str, Any]) -> bool:
    kind, op = condition["type"], condition["op"]
    if kind == "header":
        present = condition["key"] in request["header"]
        actual = request["header"].get(condition["key"])
    elif kind == "environment":
        present, actual = True, request["environment"]
    else:
        raise AssertionError(f"a condition this test does not model: {condition}")
    result = {"ex": present, "nex": not present, "eq": present and actual == condition.get("value"),
              "neq": not present or actual != condition.get("value")}[op]
    return result != bool(condition.get("neg", False))
