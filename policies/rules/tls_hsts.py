"""PLAT-TLS-003: HSTS as the stack requires, whatever profile or backend it picked.

A browser that saw HSTS never speaks plain HTTP to the host again for max-age (RFC 6797). prod (and
any stack not named integration or staging) sends it for at least a year with includeSubDomains
and preload, the preload list's minimum (hstspreload.org); staging at least a day; integration at
least five minutes. A zone with no HSTS setting at all is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.edge import SETTING, zones
from policies.rule import Finding, Resource, as_map, stack_kind

MIN_AGE = {"integration": 300, "staging": 86400, "prod": 31536000}


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    headers = {r.get("zoneId"): r for r in resources if r.type == SETTING and r.get("settingId") == "security_header"}
    out: list[tuple[str, Finding]] = []
    for zone in zones(resources):
        first = next(r for r in resources if r.get("zoneId") == zone)
        kind = stack_kind(first.stack)
        setting = headers.get(zone)
        if setting is None:
            out.append((first.urn, f"zone {zone} sends no HSTS header; expected security_header with "
                                   f"strict_transport_security (max_age >= {MIN_AGE[kind]})"))
            continue
        hsts = as_map(as_map(setting.get("value")).get("strict_transport_security"))
        problems: list[str] = []
        age = hsts.get("max_age")
        if hsts.get("enabled") is not True:
            problems.append("HSTS is not enabled")
        if not isinstance(age, int | float) or age < MIN_AGE[kind]:
            problems.append(f"max_age {age!r} is below {MIN_AGE[kind]} s, the minimum for {kind}")
        if kind == "prod" and (hsts.get("include_subdomains") is not True or hsts.get("preload") is not True):
            problems.append("prod HSTS needs include_subdomains and preload")
        out += [(setting.urn, f"{p}; expected HSTS as {first.stack} requires") for p in problems]
    return out
