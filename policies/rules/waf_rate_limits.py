"""PLAT-WAF-003: every rate-limit rule has a bounded per-client budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != "cloudflare:index/ruleset:Ruleset" or resource.props.get("phase") != "http_ratelimit":
        return NotApplicable("not a rate-limit ruleset")
    ceiling = int(config["max_requests_per_minute"])
    problems: list[str] = []
    for rule in resource.props.get("rules", []):
        limit = rule.get("ratelimit", {})
        period = int(limit.get("period", 0)) or 60
        per_minute = int(limit.get("requestsPerPeriod", 0)) * 60 // period
        if "ip.src" not in limit.get("characteristics", []):
            problems.append(f"{rule.get('description')!r} does not count per client IP")
        if per_minute > ceiling:
            problems.append(f"{rule.get('description')!r} allows {per_minute} requests per minute per client; "
                            f"expected at most {ceiling}")
    return problems
