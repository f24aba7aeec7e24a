"""PLAT-IAM-001: Cloudflare API tokens: user-owned, one policy, one zone of this stack, allowed
permission groups only, and an RFC 3339 expiry within the allowed lifetime.

Deny by default: any Cloudflare resource whose type is a token other than `apiToken` (an
`accountToken` outlives the people who created it) is refused; so is a token with several
policies (each may name one zone, together they name several), a zone the stack does not
configure, or an expiry the rule cannot read (a date alone is not the RFC 3339 timestamp the API
takes: developers.cloudflare.com/api/resources/user/subresources/tokens/methods/create/).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Finding, Resource, as_list, as_map, unknown_paths

API_TOKEN = "cloudflare:index/apiToken:ApiToken"
ZONE_RESOURCE = re.compile(r"^com\.cloudflare\.api\.account\.zone\.([0-9a-f]{32})$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


NOT_API_TOKENS = frozenset({
    # An Access service token opens Access applications whose policies name it, nothing of Cloudflare's API:
    # PLAT-EDGE-005 judges it (developers.cloudflare.com/cloudflare-one/identity/service-tokens/).
    "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken",
})


def is_token(resource: Resource) -> bool:
    """A credential for Cloudflare's API: deny by default, every Cloudflare type that says token but those
    known to be something else."""
    return resource.type.startswith("cloudflare:") and "token" in resource.type.lower() \
        and resource.type not in NOT_API_TOKENS


def stack_zones(resources: Sequence[Resource]) -> set[str]:
    return {str(r.get("zoneId")) for r in resources
            if r.type.startswith("cloudflare:") and isinstance(r.get("zoneId"), str)}


def expiry(value: Any) -> dt.datetime | str:
    """The expiry as an aware datetime, or why it cannot be read."""
    if not isinstance(value, str) or not RFC3339.match(value):
        return f"expiresOn {value!r} is not an RFC 3339 timestamp; expected e.g. 2027-06-30T00:00:00Z"
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return f"expiresOn {value!r} is not a real date and time; expected e.g. 2027-06-30T00:00:00Z"


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    zones = stack_zones(resources)
    out: list[tuple[str, Finding]] = []
    for r in (r for r in resources if is_token(r)):
        out += [(r.urn, problem) for problem in _token_problems(r, zones, config)]
    return out


def _token_problems(r: Resource, zones: set[str], config: Mapping[str, Any]) -> list[str]:
    if r.type != API_TOKEN:
        return [f"{r.type} is not an allowed kind of token; expected a user API token ({API_TOKEN}) scoped to one zone"]
    unknown = unknown_paths(r.props)
    if unknown:
        return [f"{', '.join(unknown)} not known until apply; expected the token's scope and expiry known at preview"]
    problems: list[str] = []
    allowed = set(config["allowed_permission_groups"])
    policies = as_list(r.props.get("policies"))
    if len(policies) != 1:
        problems.append(f"has {len(policies)} policies; expected exactly one, for one zone")
    for i, policy in enumerate(map(as_map, policies)):
        if policy.get("effect") != "allow":
            problems.append(f"policies[{i}] has effect {policy.get('effect')!r}; expected allow")
        try:
            scope = as_map(json.loads(str(policy.get("resources") or "{}")))
        except ValueError:
            problems.append(f"policies[{i}].resources is not JSON; expected one zone")
            continue
        matches = [ZONE_RESOURCE.match(key) for key in scope]
        if len(scope) != 1 or matches[0] is None or list(scope.values()) != ["*"]:
            problems.append(f"policies[{i}] covers {sorted(scope)}; expected exactly one zone "
                            "(com.cloudflare.api.account.zone.<zone id>)")
        elif matches[0].group(1) not in zones:
            problems.append(f"policies[{i}] covers zone {matches[0].group(1)}, which this stack does not configure; "
                            f"expected one of {sorted(zones) or 'the stack zones'}")
        groups = {as_map(g).get("id") for g in as_list(policy.get("permissionGroups"))}
        if not groups or groups - allowed:
            problems.append(f"policies[{i}] grants permission groups {sorted(map(str, groups - allowed))} outside the "
                            "allow-list")
    expires = r.props.get("expiresOn")
    if not expires:
        problems.append("the token never expires; expected expiresOn")
    else:
        when = expiry(expires)
        if isinstance(when, str):
            problems.append(when)
        else:
            days = (when - dt.datetime.now(dt.UTC)).days
            limit = int(config["max_lifetime_days"])
            if days > limit:
                problems.append(f"the token expires on {expires}, {days} days from now; expected at most {limit} days")
            elif days < 0:
                problems.append(f"the token expired on {expires}; expected a date ahead")
    return problems
