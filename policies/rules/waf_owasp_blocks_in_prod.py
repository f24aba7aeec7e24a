"""PLAT-WAF-002: in production the OWASP ruleset blocks on every proxied host; a host where it does not
(log-only, or left out of its one execution) needs a waiver naming the tenant or host it is for.

Production is the stack, not the profile: every stack but `integration` and `staging` is held to it.
The action read is the one Cloudflare applies: a ruleset-wide override first, else the anomaly
rule's own override; none at all is refused (deny by default). A zone runs each managed ruleset once
(https://developers.cloudflare.com/waf/managed-rules/#zone-level-deployment), so a migrating tenant's
hosts are left out of the one blocking execution (components/edge.py, `waf_rules`): each such host is
reported here, on the WAF ruleset, with the host as its subject. In production this rule, not
PLAT-WAF-001, holds every host to OWASP; elsewhere PLAT-WAF-001 holds every host to a running OWASP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policies.edge import OWASP, OWASP_ANOMALY, RULESET, enabled_rules, host_matcher, proxied_hosts
from policies.rule import Finding, Resource, Violation, as_list, as_map, stack_kind

BLOCKING = ("block", "managed_challenge")


def owasp_action(rule: Mapping[str, Any]) -> Any:
    """The action Cloudflare applies on an OWASP match: a ruleset-wide override, else the anomaly rule's."""
    overrides = as_map(as_map(rule.get("actionParameters")).get("overrides"))
    anomaly = [as_map(o).get("action") for o in as_list(overrides.get("rules")) if as_map(o).get("id") == OWASP_ANOMALY]
    action = overrides.get("action")
    return action if action is not None else (anomaly[0] if anomaly else None)


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    out: list[tuple[str, Finding]] = []
    for r in resources:
        if r.type != RULESET or r.get("phase") != "http_request_firewall_managed" or stack_kind(r.stack) != "prod":
            continue
        hosts = [h.host for h in proxied_hosts(resources) if h.zone == r.get("zoneId")]
        owasp = [rule for rule in enabled_rules(r) if rule.get("action") == "execute"
                 and as_map(rule.get("actionParameters")).get("id") == OWASP]
        matchers: list[Callable[[str], bool] | None] = []
        for rule in owasp:
            matcher = host_matcher(rule.get("expression"))
            matchers.append(matcher)
            action = owasp_action(rule)
            if action in BLOCKING:
                continue
            subjects = tuple(sorted(h for h in hosts if matcher is not None and matcher(h)))
            out.append((r.urn, Violation(f"OWASP runs with action {action!r} on {rule.get('expression')!r}"
                                         f"{' (' + ', '.join(subjects) + ')' if subjects else ''}; expected block in "
                                         "production", subjects)))
        if any(m is None for m in matchers):
            continue  # PLAT-WAF-001 reports an expression nobody can read
        for host in sorted(hosts):
            if not any(m is not None and m(host) for m in matchers):
                out.append((r.urn, Violation(f"{host}: OWASP does not run on it (left out of its execution), so "
                                             "nothing blocks OWASP matches there; expected block in production",
                                             (host,))))
    return out
