"""PLAT-WAF-002: in production the OWASP ruleset blocks; log-only mode there needs a waiver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict

OWASP = "4814384a9e5d4991b9815dcfc25d2f1f"


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    phase = resource.props.get("phase")
    if resource.type != "cloudflare:index/ruleset:Ruleset" or phase != "http_request_firewall_managed":
        return NotApplicable("not a WAF ruleset")
    if resource.stack not in config["production_stacks"]:
        return NotApplicable(f"stack {resource.stack!r} is not production")
    problems: list[str] = []
    for rule in resource.props.get("rules", []):
        parameters = rule.get("actionParameters", {})
        if rule.get("action") != "execute" or parameters.get("id") != OWASP:
            continue
        for override in parameters.get("overrides", {}).get("rules", []):
            if override.get("action") not in ("block", "managed_challenge"):
                problems.append(f"OWASP runs with action {override.get('action')!r} on "
                                f"{rule.get('expression')!r}; expected block in production")
    return problems
