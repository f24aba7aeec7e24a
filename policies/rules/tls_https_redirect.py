"""PLAT-TLS-002: plain HTTP is redirected to HTTPS in every zone the stack configures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Resource

RULESET = "cloudflare:index/ruleset:Ruleset"
SETTING = "cloudflare:index/zoneSetting:ZoneSetting"


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, str]]:
    zones = {r.props.get("zoneId"): r for r in resources if r.type == SETTING and r.props.get("settingId") == "ssl"}
    forced = {r.props.get("zoneId") for r in resources
              if r.type == SETTING and r.props.get("settingId") == "always_use_https" and r.props.get("value") == "on"}
    forced |= {r.props.get("zoneId") for r in resources
               if r.type == RULESET and r.props.get("phase") == "http_request_dynamic_redirect"
               and any(rule.get("action") == "redirect" and str(rule.get("expression", "")).startswith("not ssl")
                       for rule in r.props.get("rules", []))}
    return [(setting.urn, f"zone {zone} serves plain HTTP; expected a redirect to HTTPS")
            for zone, setting in zones.items() if zone not in forced]
