"""Vercel's server-side rendering is not throttled as one client (issue #20 item 15).

The storefront's SSR calls `api.<zone>` from a few Vercel egress addresses shared by every visitor, so a
per-IP limit on the API counts all shoppers as one client and blocks the storefront itself under load.
Below Enterprise a rate-limiting rule counts by IP only and cannot read request headers ("Counting
characteristics: IP | IP | IP, IP with NAT support", "Available fields in rule expression" without headers:
https://developers.cloudflare.com/waf/rate-limiting-rules/#availability), so the storefront's server proves
itself with a secret header and a custom rule skips the rate-limiting phase for exactly that proof ("Skip
phases ... http_ratelimit": https://developers.cloudflare.com/waf/custom-rules/skip/options/). Shoppers are
still limited per client IP where their address is seen: at the storefront hosts, before Vercel. A header
anyone can set (a missing, empty or wrong value) exempts nobody."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest

from infra.plan import Plan
from policies.rule import UNKNOWN, Resource, Violation
from policies.rules import waf_covers_proxied_hosts
from tests.conftest import STACKS

ZONES = {"integration": "acme-commerce-int.dev", "staging": "acme-commerce-staging.dev", "prod": "acme-commerce.com"}
RULESET = "cloudflare:index/ruleset:Ruleset"
# The only form a skip may take: the API host and a header equal to a value (Rules language:
# https://developers.cloudflare.com/ruleset-engine/rules-language/fields/reference/http.request.headers/,
# header names are lowercase; `any(...[*] eq ...)` is true when one of the header's values is equal).
SKIP = re.compile(r'^http\.host eq "(?P<host>[^"]+)" and '
                  r'any\(http\.request\.headers\["(?P<header>[a-z0-9-]+)"\]\[\*\] eq "(?P<value>[^"]*)"\)$')


def _plain(value: Any) -> Any:
    """A wire value with its secret markers removed (the value the API receives)."""
    if isinstance(value, dict):
        document = cast(dict[str, Any], value)
        if "4dabf18193072939515e22adb298388d" in document:
            return _plain(document.get("value"))
        return {k: _plain(v) for k, v in document.items()}
    if isinstance(value, list):
        return [_plain(v) for v in cast(list[Any], value)]
    return value


def _phase(plan: Plan, phase: str) -> list[dict[str, Any]]:
    rulesets = [_plain(r.wire_inputs["rules"]) for r in plan.resources
                if r.type == RULESET and r.inputs["phase"] == phase]
    return [rule for rules in rulesets for rule in rules]


def _exempt(plan: Plan, host: str, headers: dict[str, str]) -> bool:
    """Whether Cloudflare skips the rate-limiting phase for a request to `host` with `headers`."""
    for rule in _phase(plan, "http_request_firewall_custom"):
        if rule.get("action") != "skip" or rule.get("enabled") is False:
            continue
        found = SKIP.match(rule["expression"])
        assert found is not None, f"a skip rule this test cannot read: {rule['expression']!r}"
        if found["host"] == host and headers.get(found["header"]) == found["value"] \
                and "http_ratelimit" in rule["actionParameters"].get("phases", []):
            return True
    return False


def _storefront_key(plan: Plan) -> tuple[str, str, dict[str, Any]]:
    """(variable name, value, resource inputs) of the Vercel variable carrying the storefront's edge key."""
    found = [r for r in plan.resources if r.type == "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable"
             and r.inputs["key"] == "API_EDGE_KEY"]
    assert len(found) == 1, ("the storefront has no server-side key to prove itself to the edge, so its SSR is "
                             "counted per Vercel egress IP as one client")
    [variable] = found
    return variable.inputs["key"], _plain(variable.wire_inputs["value"]), variable.inputs


@pytest.mark.parametrize("stack", STACKS)
def test_the_storefronts_server_calls_are_not_counted_per_ip_but_anyone_elses_are(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    api = f"api.{ZONES[stack]}"
    _, key, variable = _storefront_key(plan)

    assert len(key) >= 32  # generated, unguessable
    assert _exempt(plan, api, {"x-storefront-key": key})
    for headers in ({}, {"x-storefront-key": ""}, {"x-storefront-key": "guess"}, {"x-storefront-key": key[:-1]}):
        assert not _exempt(plan, api, headers), headers
    assert not _exempt(plan, f"lojabrasil.{ZONES[stack]}", {"x-storefront-key": key})
    # Everybody else on the API is still counted per client IP.
    [api_limit] = [r for r in _phase(plan, "http_ratelimit") if r["expression"] == f'http.host eq "{api}"']
    assert "ip.src" in api_limit["ratelimit"]["characteristics"]
    # The key is server-side only: sensitive, production deployments only (previews build any branch).
    assert variable["sensitive"] is True and variable["targets"] == ["production"]


# ---------------------------------------------------------------------------------------------
# The pack (PLAT-WAF-001) allows that one form of custom rule and nothing looser.

def _custom(expression: str, parameters: dict[str, Any]) -> list[Resource]:
    zone = "7c9e1f3a5b7d4c6e8f0a1b2c3d4e5f60"
    record = Resource("cloudflare:index/dnsRecord:DnsRecord", "api",
                      "urn:pulumi:prod::platform::cloudflare:index/dnsRecord:DnsRecord::api",
                      {"zoneId": zone, "type": "CNAME", "name": "api.acme.com", "proxied": True})
    custom = Resource(RULESET, "edge-storefront-key", f"urn:pulumi:prod::platform::{RULESET}::edge-storefront-key",
                      {"zoneId": zone, "kind": "zone", "phase": "http_request_firewall_custom",
                       "rules": [{"action": "skip", "expression": expression, "description": "ssr",
                                  "actionParameters": parameters}]})
    return [record, custom]


SECRET = "Q" * 48


@pytest.mark.parametrize(("expression", "parameters"), [
    # a header anyone can set: presence, or a guessable value
    ('http.host eq "api.acme.com" and len(http.request.headers["x-storefront-key"]) > 0', {"phases": ["http_ratelimit"]}),
    ('http.host eq "api.acme.com" and any(http.request.headers["x-storefront-key"][*] eq "ssr")',
     {"phases": ["http_ratelimit"]}),
    # the right proof, but skipping the WAF too, or every remaining custom rule
    (f'http.host eq "api.acme.com" and any(http.request.headers["x-storefront-key"][*] eq "{SECRET}")',
     {"phases": ["http_ratelimit", "http_request_firewall_managed"]}),
    (f'http.host eq "api.acme.com" and any(http.request.headers["x-storefront-key"][*] eq "{SECRET}")',
     {"ruleset": "current"}),
    (f'true or any(http.request.headers["x-storefront-key"][*] eq "{SECRET}")', {"phases": ["http_ratelimit"]}),
])
def test_the_pack_refuses_any_looser_exemption_without_echoing_it(expression: str, parameters: dict[str, Any]) -> None:
    found = waf_covers_proxied_hosts.check(_custom(expression, parameters), {})

    messages = [f.message if isinstance(f, Violation) else f for _, f in found]
    assert any("custom rule 'ssr'" in m for m in messages), messages
    assert not any(SECRET in m for m in messages)


def test_the_pack_allows_the_secret_proof_known_or_still_unknown_at_preview() -> None:
    proof = f'http.host eq "api.acme.com" and any(http.request.headers["x-storefront-key"][*] eq "{SECRET}")'
    for expression in (proof, UNKNOWN):
        found = waf_covers_proxied_hosts.check(_custom(cast(str, expression), {"phases": ["http_ratelimit"]}), {})
        assert not [f for _, f in found if "custom rule" in str(f)], found
