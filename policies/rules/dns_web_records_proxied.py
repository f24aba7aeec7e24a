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
    name = str(resource.props.get("name") or "")
    if resource.props.get("type") == "CNAME" and name.startswith("_acme-challenge."):
        # A DNS-01 challenge (RFC 8555 section 8.4) is looked up, never browsed, and must not be
        # proxied; no other underscore name is exempt (an A record there would still serve HTTP).
        return NotApplicable("an ACME DNS-01 challenge record is looked up, never browsed")
    if resource.props.get("proxied") is not True:
        return [f"{resource.props.get('name')} is not proxied, so the WAF never sees it; expected proxied: true"]
    return []
