"""PLAT-DNS-001: DNS records of web hosts go through the proxy, so the WAF sees their traffic.

Deny by default: every Cloudflare DNS record type (`dnsRecord`, and the deprecated `record` the
provider still accepts) is read; an A, AAAA or CNAME record is proxied unless it is an ACME DNS-01
challenge; a record type or `proxied` value not known at preview is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict, Violation, is_unknown

RECORD_TYPES = ("cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/record:Record")


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type not in RECORD_TYPES:
        return NotApplicable("not a DNS record")
    kind, name = resource.props.get("type"), resource.props.get("name")
    subject = (str(name),) if isinstance(name, str) else ()
    if is_unknown(kind) or is_unknown(name):
        return [Violation("the record's type or name is not known until apply; expected both known", subject)]
    if kind not in ("A", "AAAA", "CNAME"):
        return NotApplicable(f"{kind} records do not carry web traffic")
    if kind == "CNAME" and str(name).startswith("_acme-challenge."):
        # A DNS-01 challenge (RFC 8555 section 8.4) is looked up, never browsed, and must not be
        # proxied; no other underscore name is exempt (an A record there would still serve HTTP).
        return NotApplicable("an ACME DNS-01 challenge record is looked up, never browsed")
    if is_unknown(resource.props.get("proxied")):
        return [Violation(f"{name}: proxied is not known until apply; expected proxied: true", subject)]
    if resource.props.get("proxied") is not True:
        return [Violation(f"{name} is not proxied, so the WAF never sees it; expected proxied: true", subject)]
    return []
