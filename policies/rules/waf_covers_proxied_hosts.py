"""PLAT-WAF-001: every proxied hostname is covered by the Cloudflare Managed and OWASP Core rulesets."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Resource

MANAGED = "efb7b8c949ac4650a09736fc376e9aee"
OWASP = "4814384a9e5d4991b9815dcfc25d2f1f"
HOST_SET = re.compile(r'^(not )?http\.host in \{([^}]*)\}$')


def covers(expression: str, host: str) -> bool | None:
    """Whether a WAF rule's expression matches the host; None when the expression is not one this reads."""
    if expression.strip() == "true":
        return True
    match = HOST_SET.match(expression.strip())
    if match is None:
        return None
    return (host in re.findall(r'"([^"]*)"', match.group(2))) != bool(match.group(1))


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, str]]:
    waf: dict[Any, list[dict[str, Any]]] = {}
    for r in resources:
        if r.type == "cloudflare:index/ruleset:Ruleset" and r.props.get("phase") == "http_request_firewall_managed":
            waf.setdefault(r.props.get("zoneId"), []).extend(r.props.get("rules", []))
    hosts = [(r, r.props.get("name")) for r in resources
             if r.type == "cloudflare:index/dnsRecord:DnsRecord" and r.props.get("proxied")]
    hosts += [(r, r.props.get("hostname")) for r in resources
              if r.type == "cloudflare:index/customHostname:CustomHostname"]
    violations: list[tuple[str, str]] = []
    for resource, host in hosts:
        rules = waf.get(resource.props.get("zoneId"), [])
        for ruleset_id, label in ((MANAGED, "Cloudflare Managed Ruleset"), (OWASP, "Cloudflare OWASP Core Ruleset")):
            executing = [r for r in rules if r.get("action") == "execute"
                         and r.get("actionParameters", {}).get("id") == ruleset_id]
            verdicts = [covers(str(r.get("expression", "")), str(host)) for r in executing]
            if None in verdicts:
                violations.append((resource.urn, f"{host}: cannot tell whether the {label} covers it "
                                                 "(an expression this rule does not read)"))
            elif not any(verdicts):
                violations.append((resource.urn, f"{host} is proxied but not covered by the {label}"))
    return violations
