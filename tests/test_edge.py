"""The edge under the mock engine, per stack: strict TLS and the managed + OWASP WAF in front of every
proxied hostname, the 24 h catalog cache (C5), Vercel's exceptions, and zone-scoped tokens (S3)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.edge import MANAGED_RULESET_ID, OWASP_RULESET_ID
from infra.plan import Plan
from tests.cloudflare_rules import Request, cache_settings
from tests.conftest import STACKS, stack_document

ZONES = {"integration": "acme-commerce-int.dev", "staging": "acme-commerce-staging.dev", "prod": "acme-commerce.com"}

HOST_SET = re.compile(r'^(not )?http\.host in \{([^}]*)\}$')


def _inputs(plan: Plan, type_suffix: str) -> list[dict[str, Any]]:
    return [r.inputs for r in plan.resources if r.type.endswith(type_suffix)]


def _ruleset(plan: Plan, phase: str) -> list[dict[str, Any]]:
    [ruleset] = [i for i in _inputs(plan, ":Ruleset") if i["phase"] == phase]
    return ruleset["rules"]


def _matches_host(expression: str, host: str) -> bool:
    """Evaluate the host conditions the edge writes: `true`, `http.host in {...}`, `not http.host in {...}`."""
    if expression == "true":
        return True
    match = HOST_SET.match(expression)
    assert match is not None, f"unexpected WAF expression {expression!r}"
    hosts = set(re.findall(r'"([^"]*)"', match.group(2)))
    return (host in hosts) != bool(match.group(1))


def _left_out_of_blocking_owasp(stack: str) -> set[str]:
    """prod blocks on OWASP and runs it once per zone, so its `wafMode: log` tenants' hosts are outside it
    (components/edge.py `waf_rules`; PLAT-WAF-002 and the stack's waiver name them)."""
    if stack != "prod":
        return set()
    tenants = stack_document(stack)["config"]["platform:tenants"]
    return {h for t in tenants if t.get("wafMode") == "log"
            for h in (f"{t['slug']}.{ZONES[stack]}", *t.get("domains", []))}


def _proxied_hostnames(plan: Plan) -> set[tuple[str, str]]:
    records = {(i["zoneId"], i["name"]) for i in _inputs(plan, ":DnsRecord") if i.get("proxied")}
    custom = {(i["zoneId"], i["hostname"]) for i in _inputs(plan, ":CustomHostname")}
    return records | custom


@pytest.mark.parametrize("stack", STACKS)
def test_every_proxied_hostname_sits_in_a_zone_with_strict_tls_and_the_managed_and_owasp_waf(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    plan = committed_plans[stack]
    settings = {(i["zoneId"], i["settingId"]): i["value"] for i in _inputs(plan, ":ZoneSetting")}
    waf = _ruleset(plan, "http_request_firewall_managed")
    hostnames = _proxied_hostnames(plan)

    assert hostnames, "a stack with no proxied hostname proves nothing"
    for zone_id, host in hostnames:
        assert settings[(zone_id, "ssl")] == "strict"
        assert settings[(zone_id, "min_tls_version")] == "1.2"
        assert settings[(zone_id, "tls_1_3")] == "on"
        for ruleset_id in (MANAGED_RULESET_ID, OWASP_RULESET_ID):
            if ruleset_id == OWASP_RULESET_ID and host in _left_out_of_blocking_owasp(stack):
                continue
            covering = [r for r in waf if r["action"] == "execute" and r["actionParameters"]["id"] == ruleset_id
                        and _matches_host(r["expression"], host)]
            assert covering, f"{host} is not covered by ruleset {ruleset_id}"


@pytest.mark.parametrize("stack", STACKS)
def test_the_catalog_is_cached_at_the_edge_for_24_hours_and_vercel_paths_never(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    rules = _ruleset(committed_plans[stack], "http_request_cache_settings")
    api = f"api.{ZONES[stack]}"

    catalog = cache_settings(rules, Request(api, "/v1/catalog/lojabrasil"))
    assert catalog["cache"] is True and catalog["edgeTtl"] == {"mode": "override_origin", "default": 86400}
    assert cache_settings(rules, Request("lojabrasil." + ZONES[stack], "/.well-known/vercel/x")) == {"cache": False}
    for path in ("/v1/catalog", "/v1/orders", "/v1/affiliates/a1/commissions"):
        assert cache_settings(rules, Request(api, path))["cache"] is False, path


@pytest.mark.parametrize("stack", STACKS)
def test_a_single_url_purge_evicts_a_tenants_catalog(stack: str, committed_plans: dict[str, Plan]) -> None:
    """Cloudflare: single-file purge "may not work" if the cache rule sets a custom cache key or matches
    only GET, "because purge requests use a different HTTP method internally"
    (https://developers.cloudflare.com/cache/how-to/cache-rules/settings/). So the copy must be keyed
    by its URL alone, and the rule must match the purge's request as well as the GET that filled it."""
    rules = _ruleset(committed_plans[stack], "http_request_cache_settings")
    url = Request(f"api.{ZONES[stack]}", "/v1/catalog/lojabrasil")

    for method in ("GET", "HEAD", "PURGE"):
        settings = cache_settings(rules, Request(url.host, url.path, method))
        assert settings["cache"] is True, method
        assert "cacheKey" not in settings, "the cache key is the URL: the one the engine purges"


@pytest.mark.parametrize("stack", STACKS)
def test_https_is_forced_everywhere_except_acme_challenges(stack: str, committed_plans: dict[str, Plan]) -> None:
    [redirect] = _ruleset(committed_plans[stack], "http_request_dynamic_redirect")

    assert redirect["expression"].startswith("not ssl and ")
    assert 'not starts_with(http.request.uri.path, "/.well-known/acme-challenge/")' in redirect["expression"]
    assert redirect["actionParameters"]["fromValue"]["statusCode"] == 301


@pytest.mark.parametrize("stack", STACKS)
def test_no_token_reaches_beyond_one_zone_or_lives_forever(stack: str, committed_plans: dict[str, Plan]) -> None:
    """The stack creates no token (a deploy token that could would need API Tokens Write, #22.3); the engine's
    purge token comes from the environment's bootstrap, scoped to this zone, Cache Purge only, expiring."""
    from infra.bootstrap.plan import bootstrap_plan

    plan = committed_plans[stack]
    [zone_id] = {i["zoneId"] for i in _inputs(plan, ":ZoneSetting")}
    tokens = [r.inputs for r in bootstrap_plan(stack).resources if r.name == "catalog-purge-token"]

    assert not _inputs(plan, ":ApiToken")
    assert tokens
    for token in tokens:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00Z", token["expiresOn"])
        for policy in token["policies"]:
            assert json.loads(policy["resources"]) == {f"com.cloudflare.api.account.zone.{zone_id}": "*"}
            assert [g["id"] for g in policy["permissionGroups"]] == ["e17beae8b8cb423a99b1730f21238bed"]


def test_prod_blocks_and_preloads_hsts_while_staging_logs(committed_plans: dict[str, Plan]) -> None:
    def owasp_action(stack: str) -> str:
        """The action of the OWASP rule that covers every host not in log-only mode."""
        [rule] = [r for r in _ruleset(committed_plans[stack], "http_request_firewall_managed")
                  if r["actionParameters"]["id"] == OWASP_RULESET_ID and not r["expression"].startswith("http.host")]
        return rule["actionParameters"]["overrides"]["rules"][0]["action"]

    def hsts(stack: str) -> dict[str, Any]:
        [value] = [i["value"] for i in _inputs(committed_plans[stack], ":ZoneSetting")
                   if i["settingId"] == "security_header"]
        return value["strict_transport_security"]

    assert owasp_action("prod") == "block"
    assert owasp_action("staging") == "log"
    assert hsts("prod")["max_age"] >= 31536000 and hsts("prod")["preload"] is True
    assert hsts("staging")["max_age"] < 31536000 and hsts("staging")["preload"] is False


def test_a_tenant_in_waf_log_mode_is_never_blocked_by_owasp_and_still_under_the_managed_ruleset(
    committed_plans: dict[str, Plan],
) -> None:
    """prod blocks on OWASP matches, and a zone runs OWASP once (Cloudflare: "At the zone level, you can only
    deploy each managed ruleset once"), so a migrating tenant's hosts are left out of that one execution."""
    waf = _ruleset(committed_plans["prod"], "http_request_firewall_managed")
    host = "loja.cafedoce.com.br"  # cafedoce is `wafMode: log` in Pulumi.prod.yaml

    owasp = [r for r in waf if r["actionParameters"]["id"] == OWASP_RULESET_ID]
    managed = [r for r in waf if r["actionParameters"]["id"] == MANAGED_RULESET_ID]

    assert len(owasp) == 1 and not _matches_host(owasp[0]["expression"], host)
    assert _matches_host(owasp[0]["expression"], "www.lojabrasil.com.br")
    assert managed and all(_matches_host(r["expression"], host) for r in managed)


def test_owasp_paranoia_level_two_switches_off_levels_three_and_four(committed_plans: dict[str, Plan]) -> None:
    [rule] = [r for r in _ruleset(committed_plans["prod"], "http_request_firewall_managed")
              if r["actionParameters"]["id"] == OWASP_RULESET_ID and r["expression"].startswith("not ")]

    categories = rule["actionParameters"]["overrides"]["categories"]

    assert categories == [{"category": "paranoia-level-3", "enabled": False},
                          {"category": "paranoia-level-4", "enabled": False}]


@pytest.mark.parametrize("stack", STACKS)
def test_the_storefront_project_deploys_from_git_and_marks_its_secret_variable_sensitive(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    plan = committed_plans[stack]
    [project] = _inputs(plan, ":Project")
    variables = {i["key"]: i for i in _inputs(plan, ":ProjectEnvironmentVariable")}

    assert project["framework"] == "nextjs"
    assert project["gitRepository"]["repo"] == "acme-commerce/storefront"
    assert variables["REVALIDATE_TOKEN"]["sensitive"] is True
    assert variables["NEXT_PUBLIC_API_URL"]["sensitive"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_token_policies_are_declared_in_the_form_the_api_returns_them(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    """The provider compares `policies[].resources` with what Cloudflare returns, as a string
    (terraform-provider-cloudflare, internal/services/api_token): anything but the API's compact JSON
    with its keys in order shows an update on every preview."""
    for token in _inputs(committed_plans[stack], ":ApiToken"):
        for policy in token["policies"]:
            declared = policy["resources"]
            assert declared == json.dumps(json.loads(declared), separators=(",", ":"), sort_keys=True)
