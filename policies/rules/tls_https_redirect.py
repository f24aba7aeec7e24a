"""PLAT-TLS-002: plain HTTP is redirected to HTTPS in every zone the stack configures: "Always Use
HTTPS" on, or an enabled single redirect of `not ssl` (ACME HTTP-01 challenges excepted) to the
same URL over https with a redirect status. Anything else (a disabled rule, another expression, a
target that is not https) does not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.edge import RULESET, SETTING, enabled_rules, redirects_to_https, zones
from policies.rule import Finding, Resource


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    forced = {r.get("zoneId") for r in resources
              if r.type == SETTING and r.get("settingId") == "always_use_https" and r.get("value") == "on"}
    forced |= {r.get("zoneId") for r in resources
               if r.type == RULESET and r.get("phase") == "http_request_dynamic_redirect"
               and any(redirects_to_https(rule) for rule in enabled_rules(r))}
    out: list[tuple[str, Finding]] = []
    for zone in zones(resources):
        if zone not in forced:
            first = next(r for r in resources if r.get("zoneId") == zone)
            out.append((first.urn, f"zone {zone} serves plain HTTP; expected a redirect to HTTPS"))
    return out
