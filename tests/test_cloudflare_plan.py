"""The edge against the zone's Cloudflare plan: config validation refuses (exit 2, before anything is
declared) an edge its plan cannot hold, and every planned Cloudflare resource fits the plan. The
limits come from Cloudflare's docs (stacks/cloudflare.py cites each); these tests restate the few
numbers the acceptance names from those pages, not from the table."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.plan import Plan
from tests.conftest import STACKS, CliResult, stack_document, write_stack

# https://developers.cloudflare.com/waf/rate-limiting-rules/#availability: "Number of rules | 1 | 2 | 5"
RATE_LIMIT_RULES = {"free": 1, "pro": 2, "business": 5}
# https://developers.cloudflare.com/ruleset-engine/rules-language/expressions/
EXPRESSION_MAX = 4096


def _plan(tmp_path: Path, run_cli: Callable[..., CliResult], stack: str, document: dict[str, Any]) -> CliResult:
    path = write_stack(tmp_path, document, name=f"Pulumi.{stack}.yaml")
    return run_cli("plan", "--stack", stack, "--config-file", str(path))


def _lines(result: CliResult, key: str) -> list[str]:
    return [line for line in result.err.splitlines() if f": {key}: " in line]


def test_a_stack_file_without_a_zone_plan_exits_2_naming_it(
        tmp_path: Path, run_cli: Callable[..., CliResult], registrations: list[str]) -> None:
    document = stack_document("prod")
    del document["config"]["platform:zone"]["plan"]

    result = _plan(tmp_path, run_cli, "prod", document)

    assert result.code == 2 and registrations == []
    assert _lines(result, "platform:zone.plan") == ["Pulumi.prod.yaml: platform:zone.plan: is required but missing"]


def test_prod_on_pro_exits_2_naming_its_rule_count_and_the_plans_limit(
        tmp_path: Path, run_cli: Callable[..., CliResult], registrations: list[str]) -> None:
    document = stack_document("prod")
    document["config"]["platform:zone"]["plan"] = "pro"

    result = _plan(tmp_path, run_cli, "prod", document)

    assert result.code == 2 and registrations == [] and "Traceback" not in result.err
    [line] = [ln for ln in _lines(result, "platform:zone.plan") if "rate-limiting rules" in ln]
    assert f"'pro' allows {RATE_LIMIT_RULES['pro']} rate-limiting rules per zone" in line
    assert "needs 3" in line and "business" in line


def test_prod_on_business_passes(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    document["config"]["platform:zone"]["plan"] = "business"

    assert _plan(tmp_path, run_cli, "prod", document).code == 0


def test_a_free_zone_cannot_run_the_waf_or_count_over_a_minute(
        tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("integration")
    document["config"]["platform:zone"]["plan"] = "free"

    result = _plan(tmp_path, run_cli, "integration", document)

    assert result.code == 2
    text = "\n".join(_lines(result, "platform:zone.plan"))
    assert "cannot run the Cloudflare Managed Ruleset and the Cloudflare OWASP Core Ruleset" in text
    assert "counts over 10 seconds, but the rate-limiting rule" in text
    assert "cannot match on http.host" in text


def test_tenants_with_the_same_limit_share_one_rule(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    """Per-tenant limits are grouped by value: a zone's rule count cannot grow with its tenants."""
    document = stack_document("prod")
    tenants = document["config"]["platform:tenants"]
    tenants += [{"slug": f"loja{i}", "name": f"Loja {i}", "currency": "BRL", "rateLimitPerMinute": 1800}
                for i in range(40)]

    result = _plan(tmp_path, run_cli, "prod", document)

    assert result.code == 0, result.err
    plan = run_cli("plan", "--stack", "prod", "--config-file", str(tmp_path / "Pulumi.prod.yaml"), "--json")
    assert plan.out.count('"requestsPerPeriod"') == 3  # API, the 1800 group, the storefronts


def test_hosts_listed_beyond_the_expression_limit_exit_2(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    tenants = document["config"]["platform:tenants"]
    tenants += [{"slug": f"loja-em-migracao-{i}", "name": f"Loja {i}", "currency": "BRL", "wafMode": "log"}
                for i in range(EXPRESSION_MAX // 30)]

    result = _plan(tmp_path, run_cli, "prod", document)

    assert result.code == 2
    [line, *_] = _lines(result, "platform:tenants")
    assert "Cloudflare's limit is 4,096" in line


# ---------------------------------------------------------------------------------------------
# Every planned Cloudflare resource, read as the API would receive it, against the zone's plan.

_FIELDS = re.compile(r"\b(?:http|ip|cf)(?:\.[a-z0-9_]+)+")
# The same pages: "Counting periods: 10 s | up to 1 min | up to 10 min", "Available fields in rule
# expression: Path, Verified Bot | Host, URI, Path, Full URI, Query, Verified Bot | ... Method, Source IP".
PERIODS = {"free": {10}, "pro": {10, 60}, "business": {10, 60, 120, 300, 600}}
FIELDS = {"free": {"http.request.uri.path"},
          "pro": {"http.host", "http.request.uri", "http.request.uri.path", "http.request.full_uri",
                  "http.request.uri.query"}}
FIELDS["business"] = FIELDS["pro"] | {"http.request.method", "ip.src", "http.user_agent"}


def _unwrap(value: Any) -> Any:
    return value["value"] if isinstance(value, dict) and "value" in value else value


@pytest.mark.parametrize("stack", STACKS)
def test_every_planned_cloudflare_resource_fits_its_zones_plan(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    plan_name = stack_document(stack)["config"]["platform:zone"]["plan"]
    plan = committed_plans[stack]
    # As the API receives them: a ruleset holding a secret (the edge's origin proof) is masked in the
    # plan's display form, so read the wire form, unwrapping the secret.
    rulesets = {r.inputs["phase"]: _unwrap(r.wire_inputs["rules"]) for r in plan.resources
                if r.type == "cloudflare:index/ruleset:Ruleset"}

    rate_limits = rulesets.get("http_ratelimit", [])
    assert len(rate_limits) <= RATE_LIMIT_RULES.get(plan_name, 100)
    for rule in rate_limits:
        assert rule["ratelimit"]["period"] in PERIODS.get(plan_name, {rule["ratelimit"]["period"]})
        assert set(_FIELDS.findall(rule["expression"])) <= FIELDS.get(plan_name, set(_FIELDS.findall(rule["expression"])))
    for phase_rules in rulesets.values():
        for rule in phase_rules:
            assert len(rule["expression"]) <= EXPRESSION_MAX
    if plan_name != "enterprise":
        # Custom cache keys and Host header overrides: Enterprise only (cache rules, origin rules docs).
        for rule in rulesets.get("http_request_cache_settings", []):
            assert "customKey" not in (rule["actionParameters"].get("cacheKey") or {}), rule["description"]
        for rule in rulesets.get("http_request_origin", []):
            assert "hostHeader" not in rule["actionParameters"], rule["description"]
    # Custom metadata on custom hostnames: "403 | 1413 | No custom metadata access has been allocated".
    for hostname in (r.inputs for r in plan.resources if r.type == "cloudflare:index/customHostname:CustomHostname"):
        assert "customMetadata" not in hostname, hostname["hostname"]
