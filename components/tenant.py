"""One tenant's hosts across the edge and the front end (D3, P4).

A tenant gets `<slug>.<zone>` (a proxied record to Vercel plus the Vercel project domain) and, for
each domain it owns, a Cloudflare for SaaS custom hostname plus the Vercel project domain. Resource
names derive from the slug and the hostname, so they are stable: renaming a slug replaces them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare
import pulumiverse_vercel as vercel

from components.edge import VERCEL_CNAME_TARGET


@dataclass(frozen=True)
class TenantSiteArgs:
    slug: str
    platform_hostname: str
    custom_domains: tuple[str, ...]
    zone_id: str
    vercel_project_id: pulumi.Input[str]
    saas_cname_target: str
    """Where the tenant's own domains must CNAME to."""
    vercel_team_id: str | None = None
    fallback_origin: pulumi.Resource | None = None
    """Custom hostnames wait for the zone's fallback origin."""


@dataclass(frozen=True)
class DnsInstruction:
    """A record the tenant creates at their own DNS provider."""

    name: pulumi.Input[str]
    type: str
    value: pulumi.Input[str]


def _hostname_key(hostname: str) -> str:
    return hostname.replace(".", "-")


class TenantSite(pulumi.ComponentResource):
    hostnames: list[str]
    dns_instructions: list[DnsInstruction]

    def __init__(self, name: str, args: TenantSiteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:tenant:TenantSite", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.hostnames = [args.platform_hostname, *args.custom_domains]
        self.dns_instructions = []

        cloudflare.DnsRecord(f"{name}-subdomain", zone_id=args.zone_id, name=args.platform_hostname,
                             type="CNAME", content=VERCEL_CNAME_TARGET, proxied=True, ttl=1,
                             comment=f"storefront of tenant {args.slug}", opts=child)
        for hostname in self.hostnames:
            vercel.ProjectDomain(f"{name}-vercel-{_hostname_key(hostname)}", project_id=args.vercel_project_id,
                                 domain=hostname, team_id=args.vercel_team_id, opts=child)

        depends = [args.fallback_origin] if args.fallback_origin is not None else []
        for domain in args.custom_domains:
            custom = cloudflare.CustomHostname(
                f"{name}-custom-{_hostname_key(domain)}",
                zone_id=args.zone_id,
                hostname=domain,
                # HTTP DV validation completes by itself once the tenant's CNAME reaches the zone.
                ssl={"method": "http", "type": "dv", "settings": {"min_tls_version": "1.2"}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
            ownership = custom.ownership_verification
            self.dns_instructions += [
                DnsInstruction(domain, "CNAME", args.saas_cname_target),
                DnsInstruction(ownership.name, "TXT", ownership.value),
            ]

        self.register_outputs({"hostnames": self.hostnames})
