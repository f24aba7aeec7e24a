"""PLAT-IAM-001: a Cloudflare API token covers exactly one zone, allowed permission groups only, and expires."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict

ZONE_RESOURCE = re.compile(r"^com\.cloudflare\.api\.account\.zone\.[0-9a-f]{32}$")


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != "cloudflare:index/apiToken:ApiToken":
        return NotApplicable("not a Cloudflare API token")
    problems: list[str] = []
    allowed = set(config["allowed_permission_groups"])
    for i, policy in enumerate(resource.props.get("policies", [])):
        scope = json.loads(policy.get("resources") or "{}")
        if len(scope) != 1 or not all(ZONE_RESOURCE.match(key) for key in scope):
            problems.append(f"policies[{i}] covers {sorted(scope)}; expected exactly one zone "
                            "(com.cloudflare.api.account.zone.<zone id>)")
        groups = {g.get("id") for g in policy.get("permissionGroups", [])}
        if groups - allowed:
            problems.append(f"policies[{i}] grants permission groups {sorted(groups - allowed)} outside the allow-list")
    expires = resource.props.get("expiresOn")
    if not expires:
        problems.append("the token never expires; expected expiresOn")
    else:
        lifetime = dt.datetime.fromisoformat(str(expires).replace("Z", "+00:00")) - dt.datetime.now(dt.UTC)
        if lifetime.days > int(config["max_lifetime_days"]):
            problems.append(f"the token expires on {expires}, {lifetime.days} days from now; "
                            f"expected at most {int(config['max_lifetime_days'])} days")
    return problems
