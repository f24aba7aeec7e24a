"""PLAT-WAF-003: rate limits that limit: every proxied host is under a rule that blocks (or
challenges), counts every request per client IP, and allows a bounded budget.

Deny by default: a rule only counts when it is enabled, blocks or challenges (`log` limits nothing),
counts by `ip.src` alone (with `cf.colo.id`, which Cloudflare adds: a header or other field the
client sets would give each request a fresh budget), has no counting expression (one that matches
no response counts nothing) and an expression this rule can read; then each proxied host must match
one such rule. Characteristics: developers.cloudflare.com/waf/rate-limiting-rules/parameters/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.edge import RULESET, enabled_rules, host_matcher, proxied_hosts
from policies.rule import Finding, Resource, Violation, as_list, as_map

ACTIONS = ("block", "managed_challenge", "challenge", "js_challenge")
CHARACTERISTICS = frozenset({"ip.src", "cf.colo.id"})


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    ceiling = int(config["max_requests_per_minute"])
    hosts = proxied_hosts(resources)
    out: list[tuple[str, Finding]] = []
    limiting: dict[Any, list[Any]] = {}
    for r in (r for r in resources if r.type == RULESET and r.get("phase") == "http_ratelimit"):
        zone_hosts = [h.host for h in hosts if h.zone == r.get("zoneId")]
        for rule in enabled_rules(r):
            name = rule.get("description") or rule.get("expression")
            matcher = host_matcher(rule.get("expression"))
            subjects = tuple(sorted(h for h in zone_hosts if matcher is not None and matcher(h)))
            problems = _problems(rule, ceiling)
            if matcher is None:
                problems.append(f"{name!r}: expression {rule.get('expression')!r} is not one this rule reads")
            out += [(r.urn, Violation(p, subjects)) for p in problems]
            if not problems and matcher is not None:
                limiting.setdefault(r.get("zoneId"), []).append(matcher)
    for host in hosts:
        if not any(m(host.host) for m in limiting.get(host.zone, [])):
            out.append((host.resource.urn, Violation(f"no rate limit that blocks applies to {host.host}; expected "
                                                     "every proxied host under one", (host.host,))))
    return out


def _problems(rule: Mapping[str, Any], ceiling: int) -> list[str]:
    name = rule.get("description") or rule.get("expression")
    limit = as_map(rule.get("ratelimit"))
    problems: list[str] = []
    if rule.get("action") not in ACTIONS:
        problems.append(f"{name!r} only {rule.get('action')}s; expected block (or a challenge)")
    characteristics = {str(c) for c in as_list(limit.get("characteristics"))}
    if "ip.src" not in characteristics:
        problems.append(f"{name!r} does not count per client IP")
    if characteristics - CHARACTERISTICS:
        problems.append(f"{name!r} counts on {sorted(characteristics - CHARACTERISTICS)}, which the client chooses; "
                        "expected ip.src (and cf.colo.id) only")
    if limit.get("countingExpression"):
        problems.append(f"{name!r} counts only {limit.get('countingExpression')!r}; expected every request counted")
    try:
        period = int(limit.get("period", 0)) or 60
        per_minute = int(limit.get("requestsPerPeriod", 0)) * 60 // period
    except (TypeError, ValueError):
        return [*problems, f"{name!r} has a period or budget this rule cannot read"]
    if per_minute > ceiling or per_minute <= 0:
        problems.append(f"{name!r} allows {per_minute} requests per minute per client; expected 1 to {ceiling}")
    return problems
