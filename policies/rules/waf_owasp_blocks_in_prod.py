"""PLAT-WAF-002: in production the OWASP ruleset blocks; log-only mode there needs a waiver naming
the tenant or host it is for.

Production is the stack, not the profile: every stack but `integration` and `staging` is held to it.
The action read is the one Cloudflare applies: a ruleset-wide override first, else the anomaly
rule's own override; none at all is refused (deny by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.edge import OWASP, OWASP_ANOMALY, RULESET, enabled_rules, host_matcher, proxied_hosts
from policies.rule import Finding, Resource, Violation, as_list, as_map, stack_kind

BLOCKING = ("block", "managed_challenge")


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    out: list[tuple[str, Finding]] = []
    for r in resources:
        if r.type != RULESET or r.get("phase") != "http_request_firewall_managed" or stack_kind(r.stack) != "prod":
            continue
        hosts = [h.host for h in proxied_hosts(resources) if h.zone == r.get("zoneId")]
        for rule in enabled_rules(r):
            parameters = as_map(rule.get("actionParameters"))
            if rule.get("action") != "execute" or parameters.get("id") != OWASP:
                continue
            overrides = as_map(parameters.get("overrides"))
            anomaly = [as_map(o).get("action") for o in as_list(overrides.get("rules"))
                       if as_map(o).get("id") == OWASP_ANOMALY]
            action = overrides.get("action")
            if action is None:
                action = anomaly[0] if anomaly else None
            if action in BLOCKING:
                continue
            matcher = host_matcher(rule.get("expression"))
            subjects = tuple(sorted(h for h in hosts if matcher is not None and matcher(h)))
            out.append((r.urn, Violation(f"OWASP runs with action {action!r} on {rule.get('expression')!r}"
                                         f"{' (' + ', '.join(subjects) + ')' if subjects else ''}; expected block in "
                                         "production", subjects)))
    return out
