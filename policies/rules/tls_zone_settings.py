"""PLAT-TLS-001: every zone of the stack sets Full (strict) TLS, TLS 1.2 or newer and TLS 1.3, and
every custom hostname TLS 1.2 or newer.

Deny by default: a zone that does not set them keeps Cloudflare's defaults (SSL mode Full, not
strict, on zones created before 2023: developers.cloudflare.com/ssl/origin-configuration/ssl-modes/),
so absence is a violation; a zone setting this rule does not know is refused (`security_level`
`essentially_off`, `waf` `off` and the like weaken the edge), as are values it cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.edge import CUSTOM_HOSTNAME, RULESET, SETTING, enabled_rules, zones
from policies.rule import Finding, Resource, as_map, stack_kind

REQUIRED = {"ssl": {"strict"}, "min_tls_version": {"1.2", "1.3"}, "tls_1_3": {"on", "zrt"}}
# Settings that do not weaken TLS or the WAF, with the values allowed (None: any).
HARMLESS: dict[str, set[str] | None] = {
    "always_use_https": None,  # PLAT-TLS-002 judges the redirect
    "automatic_https_rewrites": None, "brotli": None, "early_hints": None, "http2": None, "http3": None,
    "ipv6": None, "0rtt": None, "websockets": None, "opportunistic_encryption": None, "always_online": None,
    "browser_cache_ttl": None, "cache_level": None, "rocket_loader": None, "security_header": None,
    "development_mode": {"off"}, "security_level": {"low", "medium", "high", "under_attack"},
    "browser_check": {"on"}, "waf": {"on"}, "email_obfuscation": None, "hotlink_protection": None,
}


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    out: list[tuple[str, Finding]] = []
    settings: dict[Any, dict[str, Resource]] = {}
    for r in (r for r in resources if r.type == SETTING):
        setting, value = str(r.get("settingId")), r.get("value")
        settings.setdefault(r.get("zoneId"), {})[setting] = r
        if setting in REQUIRED:
            if value not in REQUIRED[setting]:
                out.append((r.urn, f"{setting} is {value!r}; expected {' or '.join(sorted(REQUIRED[setting]))}"))
        elif setting not in HARMLESS:
            out.append((r.urn, f"zone setting {setting!r} is not one this rule knows; expected only "
                               f"{', '.join(sorted([*REQUIRED, *HARMLESS]))}"))
        elif HARMLESS[setting] is not None and value not in (HARMLESS[setting] or set()):
            out.append((r.urn, f"{setting} is {value!r}; expected {' or '.join(sorted(HARMLESS[setting] or set()))}"))
    for zone in zones(resources):
        present = settings.get(zone, {})
        first = next(r for r in resources if r.get("zoneId") == zone)
        out += [(first.urn, f"zone {zone} does not set {setting}, so Cloudflare's default applies; expected "
                            f"{setting} {' or '.join(sorted(allowed))}")
                for setting, allowed in REQUIRED.items() if setting not in present]
    for r in (r for r in resources if r.type == RULESET and r.get("phase") == "http_config_settings"):
        for rule in enabled_rules(r):
            ssl = as_map(rule.get("actionParameters")).get("ssl")
            allowed = {"strict"} if stack_kind(r.stack) == "prod" else {"strict", "full"}
            if ssl is not None and ssl not in allowed:
                out.append((r.urn, f"a configuration rule sets SSL {ssl!r} on {rule.get('expression')!r} in {r.stack}; "
                                   f"expected {' or '.join(sorted(allowed))}"))
    for r in (r for r in resources if r.type == CUSTOM_HOSTNAME):
        ssl_settings = as_map(as_map(r.get("ssl")).get("settings"))
        minimum = ssl_settings.get("minTlsVersion", ssl_settings.get("min_tls_version"))
        if minimum not in ("1.2", "1.3"):
            out.append((r.urn, f"{r.get('hostname')} accepts TLS {minimum!r}; expected min_tls_version 1.2 or 1.3"))
    return out
