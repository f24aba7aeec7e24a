"""The Cloudflare edge as the rules read it: which hosts are proxied, and which hosts an expression
of the Rules language matches.

Only the forms the platform writes are read (`true`, `http.host eq|ne "h"`, `[not] http.host in
{"a" "b"}`, joined by `and`); an expression in any other form cannot be judged, and a rule that
needs it refuses it (deny by default). Grammar: developers.cloudflare.com/ruleset-engine/rules-language/.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from policies.rule import Resource, as_list, as_map

RULESET = "cloudflare:index/ruleset:Ruleset"
SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
RECORD_TYPES = ("cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/record:Record")
CUSTOM_HOSTNAME = "cloudflare:index/customHostname:CustomHostname"
MANAGED = "efb7b8c949ac4650a09736fc376e9aee"
OWASP = "4814384a9e5d4991b9815dcfc25d2f1f"
OWASP_ANOMALY = "6179ae15870a4bb7b2d480d4843b323c"
"""949110 Inbound Anomaly Score Exceeded: the OWASP rule that carries the threshold and the action."""

_ATOM = re.compile(r'^(?P<not>not\s+)?http\.host\s+'
                   r'(?:(?P<op>eq|ne|==|!=)\s+"(?P<host>[^"]*)"|in\s+\{(?P<set>[^}]*)\})$')
_ACME = 'not starts_with(http.request.uri.path, "/.well-known/acme-challenge/")'


@dataclass(frozen=True)
class Host:
    resource: Resource
    host: str
    zone: Any


def proxied_hosts(resources: Sequence[Resource]) -> list[Host]:
    """Hosts whose traffic passes the proxy: proxied A/AAAA/CNAME records and custom hostnames."""
    out = [Host(r, str(r.get("name")), r.get("zoneId")) for r in resources
           if r.type in RECORD_TYPES and r.get("proxied") is True and r.get("type") in ("A", "AAAA", "CNAME")]
    out += [Host(r, str(r.get("hostname")), r.get("zoneId")) for r in resources if r.type == CUSTOM_HOSTNAME]
    return out


def zones(resources: Sequence[Resource]) -> list[Any]:
    """Every zone a Cloudflare resource of the stack is in, in order of appearance."""
    seen: list[Any] = []
    for r in resources:
        zone = r.get("zoneId")
        if r.type.startswith("cloudflare:") and zone is not None and zone not in seen:
            seen.append(zone)
    return seen


def rulesets(resources: Sequence[Resource], zone: Any, phase: str) -> list[Resource]:
    return [r for r in resources if r.type == RULESET and r.get("zoneId") == zone and r.get("phase") == phase]


def enabled_rules(ruleset: Resource) -> list[dict[str, Any]]:
    return [dict(as_map(rule)) for rule in as_list(ruleset.get("rules")) if as_map(rule).get("enabled") is not False]


def host_matcher(expression: Any) -> Callable[[str], bool] | None:
    """A function telling whether the expression matches a request to a host, or None if unreadable."""
    if not isinstance(expression, str):
        return None
    text = expression.strip()
    if text == "true":
        return lambda host: True
    atoms: list[Callable[[str], bool]] = []
    for part in re.split(r"\s+and\s+", text):
        match = _ATOM.match(part.strip())
        if match is None:
            return None
        negate = bool(match.group("not"))
        if match.group("set") is not None:
            members = frozenset(re.findall(r'"([^"]*)"', match.group("set")))
            atoms.append(lambda h, m=members, n=negate: (h in m) != n)
        else:
            equal, value = match.group("op") in ("eq", "=="), match.group("host")
            atoms.append(lambda h, v=value, e=equal, n=negate: ((h == v) == e) != n)
    return lambda host: all(atom(host) for atom in atoms)


def redirects_to_https(rule: dict[str, Any]) -> bool:
    """A single redirect of plain HTTP to the same URL over HTTPS (ACME challenges may stay on HTTP)."""
    expression = " ".join(str(rule.get("expression", "")).split())
    if rule.get("action") != "redirect" or expression not in ("not ssl", f"not ssl and {_ACME}"):
        return False
    from_value = as_map(as_map(rule.get("actionParameters")).get("fromValue"))
    target = as_map(from_value.get("targetUrl"))
    status = from_value.get("statusCode", 301)
    target_ok = str(target.get("expression", "")).replace(" ", "").startswith('concat("https://",http.host') \
        or str(target.get("value", "")).startswith("https://")
    return target_ok and status in (301, 302, 307, 308)
