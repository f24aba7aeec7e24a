"""PLAT-WAF-001: every proxied hostname is covered by the Cloudflare Managed and OWASP Core rulesets,
running: not disabled, not skipped, not overridden off, with a threshold a request can reach.

Deny by default: a ruleset may only be a zone ruleset in a phase this pack reads (WAF, rate limits,
cache, redirects: another phase, such as custom rules, can skip the WAF); no rule anywhere skips; the
managed phase only executes the two rulesets; their overrides may only set OWASP's paranoia level
(disable `paranoia-level-2` to `-4`), and its anomaly rule's action and score threshold (at most 60,
the "Low" threshold: developers.cloudflare.com/waf/managed-rules/reference/owasp-core-ruleset/
concepts/#score-threshold). A host counts as covered only by an enabled rule whose expression this
rule can read and that matches it. In production PLAT-WAF-002 holds each host to a blocking OWASP instead
(a migrating tenant's hosts are left out of OWASP's one execution there, under a waiver). A managed ruleset
executed twice in one zone and phase is refused: Cloudflare deploys each once per zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.edge import (
    MANAGED,
    OWASP,
    OWASP_ANOMALY,
    RULESET,
    enabled_rules,
    host_matcher,
    proxied_hosts,
)
from policies.rule import Finding, Resource, Violation, as_list, as_map, is_unknown, stack_kind

PHASES = ("http_request_firewall_managed", "http_ratelimit", "http_request_cache_settings",
          "http_request_dynamic_redirect", "http_config_settings", "http_request_late_transform",
          "http_request_firewall_custom")
# Custom rules run before rate limiting and the managed WAF and can skip either. The one form allowed: skip
# the rate-limiting phase (nothing else) for requests to one host carrying one header EQUAL to a secret of at
# least 32 characters (the storefront's server-side key, components/edge.py `storefront_ssr_rules`): a header
# anyone can set exempts nobody, a presence test or a short value is refused. The secret is never echoed.
SECRET_SKIP = re.compile(r'^http\.host eq "[^"]+" and any\(http\.request\.headers\["[a-z0-9-]+"\]\[\*\] eq '
                         r'"[A-Za-z0-9]{32,}"\)$')
# The late transform phase runs after the WAF and rate limits
# (https://developers.cloudflare.com/ruleset-engine/reference/phases-list/): it may only set or add a
# request header the origin reads (the edge's proof, X-Origin-Auth), never one that names the client
# or the host, which the origin and its logs trust.
TRUSTED_HEADERS = frozenset({"host", "cf-connecting-ip", "x-forwarded-for", "x-real-ip", "true-client-ip",
                             "x-forwarded-host", "forwarded"})
# Configuration rules may only set SSL per host (PLAT-TLS-001 judges the mode); anything else there
# (security level, Browser Integrity Check, disabling apps) weakens the edge.
CONFIG_PARAMETERS = frozenset({"ssl"})
ACTIONS = ("block", "managed_challenge", "challenge", "js_challenge", "log")
MAX_THRESHOLD = 60
LABELS = {MANAGED: "Cloudflare Managed Ruleset", OWASP: "Cloudflare OWASP Core Ruleset"}


def override_problems(rule: Mapping[str, Any]) -> list[str]:
    """What in an execute rule's overrides turns its ruleset off or out of reach."""
    parameters = as_map(rule.get("actionParameters"))
    ruleset = parameters.get("id")
    overrides = as_map(parameters.get("overrides"))
    label = LABELS.get(str(ruleset), str(ruleset))
    problems: list[str] = []
    if overrides.get("enabled") is False:
        problems.append(f"an override disables the whole {label}")
    action = overrides.get("action")
    if action is not None and (action not in ACTIONS or (ruleset == MANAGED and action == "log")):
        problems.append(f"a ruleset-wide override sets the {label} to {action!r}")
    for category in map(as_map, as_list(overrides.get("categories"))):
        name = str(category.get("category"))
        level = re.fullmatch(r"paranoia-level-([234])", name)
        if ruleset != OWASP or level is None or category.get("enabled") is not False or "action" in category:
            problems.append(f"a category override {dict(category)} weakens the {label}; expected only "
                            "paranoia-level-2 to -4 disabled (the paranoia level)")
    for override in map(as_map, as_list(overrides.get("rules"))):
        if ruleset != OWASP or override.get("id") != OWASP_ANOMALY or override.get("enabled") is False:
            problems.append(f"a rule override {dict(override)} weakens the {label}; expected only the anomaly "
                            "rule's action and score threshold")
            continue
        if override.get("action") is not None and override.get("action") not in ACTIONS:
            problems.append(f"the anomaly rule's action {override.get('action')!r} is not one of {', '.join(ACTIONS)}")
        threshold = override.get("scoreThreshold")
        if threshold is not None and (not isinstance(threshold, int | float) or not 1 <= threshold <= MAX_THRESHOLD):
            problems.append(f"the anomaly score threshold {threshold!r} is out of reach; expected 1 to {MAX_THRESHOLD} "
                            "(Cloudflare's High 25, Medium 40, Low 60)")
    return problems


def secret_skip(rule: Mapping[str, Any]) -> bool:
    """The one custom rule allowed: skip only http_ratelimit for a request proving a secret (`SECRET_SKIP`).
    Until apply the generated secret, so the whole expression, is unknown; the engine runs the pack again
    at `pulumi up` with the value known, where it is judged."""
    parameters = as_map(rule.get("actionParameters"))
    expression = rule.get("expression")
    return (rule.get("action") == "skip" and set(parameters) == {"phases"}
            and list(as_list(parameters.get("phases"))) == ["http_ratelimit"]
            and (is_unknown(expression) or (isinstance(expression, str) and SECRET_SKIP.match(expression) is not None)))


def _executed_twice(resources: Sequence[Resource]) -> list[tuple[str, Finding]]:
    """A managed ruleset executed twice in one zone and phase: "At the zone level, you can only deploy each
    managed ruleset once" (https://developers.cloudflare.com/waf/managed-rules/#zone-level-deployment), so
    Cloudflare refuses the entry point, and the pack must not count the second execution as coverage."""
    seen: dict[tuple[Any, Any, Any], int] = {}
    out: list[tuple[str, Finding]] = []
    for r in (r for r in resources if r.type == RULESET):
        for rule in enabled_rules(r):
            ruleset = as_map(rule.get("actionParameters")).get("id")
            if rule.get("action") != "execute":
                continue
            key = (r.get("zoneId"), r.get("phase"), ruleset)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 2:
                out.append((r.urn, f"the {LABELS.get(str(ruleset), str(ruleset))} is executed more than once in zone "
                                   f"{r.get('zoneId')} ({r.get('phase')}); Cloudflare deploys each managed ruleset "
                                   "once per zone, so expected one execute rule for it"))
    return out


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    hosts = proxied_hosts(resources)
    out: list[tuple[str, Finding]] = []
    usable: dict[Any, list[Mapping[str, Any]]] = {}
    for r in (r for r in resources if r.type == RULESET):
        phase, kind = r.get("phase"), r.get("kind")
        if kind != "zone":
            out.append((r.urn, f"a {kind!r} ruleset; expected zone rulesets only, which this pack can read"))
        if phase not in PHASES:
            out.append((r.urn, f"a ruleset in phase {phase!r}, which can skip or weaken the WAF; expected only "
                               f"{', '.join(PHASES)}"))
        for rule in enabled_rules(r):
            if phase == "http_request_firewall_custom":
                if not secret_skip(rule):
                    out.append((r.urn, f"custom rule {rule.get('description')!r} ({rule.get('action')}) is not a "
                                       "skip of http_ratelimit alone for one host and one header equal to a secret "
                                       "of 32+ characters; expected only that (a custom rule can skip the WAF)"))
                continue
            if rule.get("action") == "skip":
                out.append((r.urn, f"rule {rule.get('description') or rule.get('expression')!r} skips "
                                   f"{dict(as_map(rule.get('actionParameters')))} for {rule.get('expression')!r}; "
                                   "expected nothing skipped"))
        if phase == "http_config_settings":
            for rule in enabled_rules(r):
                extra = set(as_map(rule.get("actionParameters"))) - CONFIG_PARAMETERS
                if rule.get("action") != "set_config" or extra:
                    out.append((r.urn, f"configuration rule {rule.get('description')!r} sets {sorted(extra)} "
                                       f"({rule.get('action')}); expected only set_config of ssl"))
        if phase == "http_request_late_transform":
            for rule in enabled_rules(r):
                parameters = as_map(rule.get("actionParameters"))
                headers = as_map(parameters.get("headers"))
                bad = sorted(str(name) for name, change in headers.items()
                             if str(name).lower() in TRUSTED_HEADERS
                             or as_map(change).get("operation") not in ("set", "add"))
                if rule.get("action") != "rewrite" or set(parameters) - {"headers"} or bad or not headers:
                    out.append((r.urn, f"transform rule {rule.get('description')!r} ({rule.get('action')}) changes "
                                       f"{sorted(parameters)} {bad}; expected only request headers set or added, "
                                       "none that names the client or the host"))
        if phase != "http_request_firewall_managed":
            continue
        for rule in enabled_rules(r):
            ruleset = as_map(rule.get("actionParameters")).get("id")
            if rule.get("action") == "skip":
                continue
            if rule.get("action") != "execute" or ruleset not in LABELS:
                out.append((r.urn, f"rule {rule.get('description')!r} ({rule.get('action')} {ruleset}) is not one "
                                   "this pack reads; expected only the Managed and OWASP rulesets executed"))
                continue
            problems = override_problems(rule)
            matcher = host_matcher(rule.get("expression"))
            subjects = tuple(sorted(h.host for h in hosts if matcher is not None and matcher(h.host)))
            out += [(r.urn, Violation(p, subjects)) for p in problems]
            if not problems:
                usable.setdefault(r.get("zoneId"), []).append(rule)
    out += _executed_twice(resources)
    for host in hosts:
        rules = usable.get(host.zone, [])
        for ruleset, label in LABELS.items():
            matchers = [host_matcher(r.get("expression")) for r in rules
                        if as_map(r.get("actionParameters")).get("id") == ruleset]
            if any(m is None for m in matchers):
                out.append((host.resource.urn, Violation(f"{host.host}: cannot tell whether the {label} covers it "
                                                         "(an expression this rule does not read)", (host.host,))))
            elif ruleset == OWASP and stack_kind(host.resource.stack) == "prod":
                continue  # PLAT-WAF-002 holds every prod host to a *blocking* OWASP (waivable per tenant)
            elif not any(m(host.host) for m in matchers if m is not None):
                out.append((host.resource.urn, Violation(f"{host.host} is proxied but not covered by the {label} "
                                                         "(enabled, not skipped, not overridden off)", (host.host,))))
    return out
