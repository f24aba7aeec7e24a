"""PLAT-FE-003: the storefront's production answers only what the Cloudflare edge forwarded (issue #22 item 5).

The edge adds `x-storefront-edge-auth` to the requests it forwards to the storefront hosts (components/edge.py);
Vercel's firewall (`vercel:index/firewallConfig:FirewallConfig`) must deny, in production, every request without
that header and every request whose value differs. Otherwise the project's `*.vercel.app` URLs and its domains
answer around the edge's WAF and rate limits.

How Vercel reads the configuration (pulumiverse_vercel 5.21.1 `firewall_config.py`, `_inputs.py`
`FirewallConfigRules*`): `enabled` turns the whole firewall on; `rules.rules[]` are custom rules, each `active`
(default on), an `action.action` (deny, challenge, log, bypass, rate_limit, redirect) and `conditionGroups`, ORed,
each of `conditions` ANDed: `{type, key, op, value, neg}` with `op` eq, neq, ex, nex, ... and `neg` negating it.
`ipRules.rules[]` act per IP before the custom rules. A `bypass` lets matching requests skip the firewall's later
rules (vercel.com/docs/vercel-firewall/vercel-waf/custom-rules, rule-configuration: actions "deny, challenge, log,
bypass, rate_limit, redirect"), so any bypass is a way around the edge's deny and is refused. A `log` rule only
records (it denies nothing).

A deny counts when one of its groups matches exactly "the header does not exist" (`nex`, or `ex` negated) and one
matches exactly "the header differs from a value" (`eq` negated, or `neq`), each alone or with
`environment eq production`: any other condition in the group (a path, a host) narrows the deny to part of the
traffic, which lets the rest around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict, as_list, as_map, is_unknown

FIREWALL_CONFIG = "vercel:index/firewallConfig:FirewallConfig"
EDGE_HEADER = "x-storefront-edge-auth"
"""components/edge.py STOREFRONT_AUTH_HEADER (HTTP header names are case-insensitive: RFC 9110 5.1)."""
PRODUCTION = {"type": "environment", "op": "eq", "value": "production"}


def _condition(raw: Any) -> dict[str, Any]:
    c = dict(as_map(raw))
    return {"type": c.get("type"), "key": str(c.get("key") or "").lower(), "op": c.get("op"),
            "value": c.get("value"), "neg": c.get("neg") is True}


def _is_production(c: dict[str, Any]) -> bool:
    return c["type"] == "environment" and c["op"] == "eq" and c["value"] == "production" and not c["neg"]


def _group_kind(group: Any) -> str | None:
    """'missing' or 'differs' when the group denies exactly that of the edge header (in production or
    everywhere), None otherwise."""
    conditions = [_condition(c) for c in as_list(as_map(group).get("conditions"))]
    header = [c for c in conditions if not _is_production(c)]
    if len(header) != 1 or header[0]["type"] != "header" or header[0]["key"] != EDGE_HEADER:
        return None
    c = header[0]
    if (c["op"] == "nex" and not c["neg"]) or (c["op"] == "ex" and c["neg"]):
        return "missing"
    value = c["value"]
    if ((c["op"] == "eq" and c["neg"]) or (c["op"] == "neq" and not c["neg"])) \
            and (is_unknown(value) or (isinstance(value, str) and len(value) >= 32)):
        return "differs"
    return None


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-FE-003."""
    if resource.type != FIREWALL_CONFIG:
        return NotApplicable("not a Vercel firewall")
    out: list[str] = []
    if resource.get("enabled") is not True:
        out.append(f"the Vercel firewall is enabled={resource.get('enabled')!r}, so no rule of it runs; expected "
                   "enabled true, set explicitly")
    rules = as_map(resource.get("rules")).get("rules")
    if is_unknown(rules) or is_unknown(resource.get("rules")):
        return [*out, "the firewall's rules are not known until apply; expected them known"]
    active = [as_map(r) for r in as_list(rules) if as_map(r).get("active") is not False]
    kinds: set[str] = set()
    for rule in active:
        action = as_map(rule.get("action")).get("action")
        if action == "bypass":
            out.append(f"firewall rule {rule.get('name')!r} bypasses the firewall for what it matches, around the "
                       f"deny of requests without {EDGE_HEADER}; expected no bypass rule")
        elif action == "deny":
            kinds |= {k for k in map(_group_kind, as_list(rule.get("conditionGroups"))) if k}
    for ip_rule in map(as_map, as_list(as_map(resource.get("ipRules")).get("rules"))):
        if ip_rule.get("action") == "bypass":
            out.append(f"IP rule for {ip_rule.get('ip')!r} on {ip_rule.get('hostname')!r} bypasses the firewall; "
                       "expected no bypass")
    for kind, what in (("missing", "without"), ("differs", "with a different value of")):
        if kind not in kinds:
            out.append(f"no active deny rule refuses every production request {what} {EDGE_HEADER} (alone, or with "
                       "environment eq production only), so requests the edge did not forward reach the storefront; "
                       "expected one")
    return out
