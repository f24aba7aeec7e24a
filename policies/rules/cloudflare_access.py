"""PLAT-EDGE-005: Cloudflare Access admits named people or the stack's one service token, for a bounded time
(issue #22 item 11: integration's Grafana behind Access, components/access.py).

What Access does (cloudflare provider v6, pulumi_cloudflare 6.x `zero_trust_access_application.py`,
`zero_trust_access_policy.py`, `zero_trust_access_service_token.py`):
- an application (`type: self_hosted`, `domain`) answers its host at Cloudflare's edge and lets through whoever a
  policy it references (`policies: [{id, precedence}]`) admits; with no policy nobody is admitted, but an
  application that lists none protects nothing the pack can read, so it is refused;
- a policy's `decision` is allow, deny, non_identity ("Service Auth") or bypass. `bypass` turns Access off for
  whoever it matches (developers.cloudflare.com/cloudflare-one/policies/access/#bypass), so it is refused;
- `includes` are ORed: `everyone`, `emailDomain`, `ip`, `anyValidServiceToken`, `geo`, identity-provider groups...
  admit people or machines nobody named; allowed here are `email` and `emailList` (named people) under `allow`,
  and exactly one `serviceToken` under `non_identity` (a service token is sent as `CF-Access-Client-Id` and
  `CF-Access-Client-Secret`: developers.cloudflare.com/cloudflare-one/identity/service-tokens/); `requires` and
  `excludes` only narrow;
- `sessionDuration` (application and policy, Go durations such as `8h`, `30m`; "Defaults to `24h`") bounds how long
  a sign-in lasts: at most `max_session_hours`; `optionsPreflightBypass` lets CORS preflights around Access;
- a service token's `duration` ("`forever` for non-expiring tokens", default 8760h): at most
  `max_service_token_hours`, and one per stack (the deploy's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Finding, Resource, as_list, as_map, is_unknown

APPLICATION = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
SERVICE_TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"
IDENTITIES = frozenset({"email", "emailList"})
_UNITS = {"ns": 1e-9 / 3600, "us": 1e-6 / 3600, "µs": 1e-6 / 3600, "ms": 1e-3 / 3600, "s": 1 / 3600,
          "m": 1 / 60, "h": 1.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")


def hours(value: Any) -> float | None:
    """A Go duration (`8h`, `2h45m`) in hours, None when it is not one."""
    if not isinstance(value, str) or not _DURATION.match(value):
        return None
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value))


def _session(what: str, value: Any, limit: float, default_ok: bool) -> list[str]:
    if value is None and default_ok:
        return []  # Cloudflare's default is 24h
    length = hours(value)
    if length is None or length > limit:
        return [f"{what} sessionDuration {value!r}; expected a duration of at most {limit:g}h, so a sign-in ends"]
    return []


def _policy_problems(r: Resource, limit: float) -> list[str]:
    decision, name = r.get("decision"), r.get("name")
    out: list[str] = []
    includes = [dict(as_map(i)) for i in as_list(r.get("includes"))]
    if is_unknown(r.get("includes")) or is_unknown(decision):
        return [f"Access policy {name!r} is not known until apply; expected its decision and includes known"]
    if not includes:
        out.append(f"Access policy {name!r} includes nobody; expected named people or the deploy's service token")
    kinds = [k for i in includes for k, v in i.items() if v is not None]
    if decision == "allow":
        wide = sorted(set(kinds) - IDENTITIES)
        if wide:
            out.append(f"Access policy {name!r} admits {wide}, people or machines nobody named; expected only email "
                       "or emailList includes")
    elif decision == "non_identity":
        if kinds != ["serviceToken"]:
            out.append(f"Access policy {name!r} (service auth) includes {kinds}; expected exactly one serviceToken, "
                       "the deploy's")
    elif decision != "deny":
        out.append(f"Access policy {name!r} has decision {decision!r}"
                   f"{' (it turns Access off for whoever it matches)' if decision == 'bypass' else ''}; expected "
                   "allow for named people or non_identity for the deploy's service token")
    out += _session(f"Access policy {name!r}", r.get("sessionDuration"), limit, default_ok=True)
    return out


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-EDGE-005."""
    session_limit = float(config["max_session_hours"])
    token_limit = float(config["max_service_token_hours"])
    out: list[tuple[str, Finding]] = []
    for r in resources:
        if r.type == POLICY:
            out += [(r.urn, f) for f in _policy_problems(r, session_limit)]
        elif r.type == APPLICATION:
            name = r.get("name")
            if r.get("type") != "self_hosted":
                out.append((r.urn, f"Access application {name!r} is of type {r.get('type')!r}; expected self_hosted "
                                   "on one host"))
            policies = [as_map(p) for p in as_list(r.get("policies"))]
            if not policies or is_unknown(r.get("policies")):
                out.append((r.urn, f"Access application {name!r} references no policy the pack can read; expected "
                                   "reusable policies of this stack by id"))
            inline = [p for p in policies if p.get("decision") is not None or p.get("includes") is not None]
            if inline:
                out.append((r.urn, f"Access application {name!r} declares policies inline; expected references to "
                                   "this stack's ZeroTrustAccessPolicy resources, each judged here"))
            if r.get("optionsPreflightBypass") is True:
                out.append((r.urn, f"Access application {name!r} lets OPTIONS preflights around Access; expected not"))
            out += [(r.urn, f) for f in _session(f"Access application {name!r}", r.get("sessionDuration"),
                                                session_limit, default_ok=True)]
        elif r.type == SERVICE_TOKEN:
            length = hours(r.props.get("duration", "8760h"))  # the provider's default
            if length is None or length > token_limit:
                out.append((r.urn, f"Access service token {r.get('name')!r} lasts {r.get('duration')!r}; expected at "
                                   f"most {token_limit:g}h, rotated by a deploy before then"))
    tokens = [r for r in resources if r.type == SERVICE_TOKEN]
    out += [(r.urn, f"{len(tokens)} Access service tokens; expected the deploy's one") for r in tokens[1:]]
    return out
