"""PLAT-DNS-001: DNS records of web hosts go through the proxy, so the WAF sees their traffic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != "cloudflare:index/dnsRecord:DnsRecord":
        return NotApplicable("not a DNS record")
    if resource.props.get("type") not in ("A", "AAAA", "CNAME"):
        return NotApplicable(f"{resource.props.get('type')} records do not carry web traffic")
    if resource.props.get("proxied") is not True:
        return [f"{resource.props.get('name')} is not proxied, so the WAF never sees it; expected proxied: true"]
    return []
