"""The docker backend's way in from the edge: a Cloudflare Tunnel (L5, S2).

The Docker host publishes nothing to the internet. `cloudflared`, a container on the platform's
private network, holds outbound connections to Cloudflare, and the tunnel's ingress rules forward
each public hostname (`api.<zone>`, `grafana.<zone>`) to a service on that network. Each hostname is
a proxied CNAME to `<tunnel id>.cfargotunnel.com`, so its requests pass the zone's WAF and rate
limits like any other (https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/).
The API token behind `cloudflare:apiToken` needs "Account: Cloudflare Tunnel: Edit" for this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare

from components.backends.service import ContainerSpec, DnsEntry
from components.backends.targets import Targets, deploy
from stacks.profile import ServiceProfile

CLOUDFLARED_IMAGE = "cloudflare/cloudflared:2025.11.1"


@dataclass(frozen=True)
class TunnelArgs:
    account_id: str
    environment: str
    routes: Mapping[str, str]
    """Public hostname -> the service on the private network it reaches, e.g. http://grafana:3000."""
    targets: Targets
    size: ServiceProfile


class OriginTunnel(pulumi.ComponentResource):
    dns: list[DnsEntry]
    """The proxied records the zone needs, one per route."""
    ready: list[pulumi.Resource]
    """What a client of a route waits for: the tunnel's configuration and its connector."""

    def __init__(self, name: str, args: TunnelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:edge:OriginTunnel", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tunnel = cloudflare.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel", account_id=args.account_id, name=f"platform-{args.environment}",
            config_src="cloudflare", opts=child)
        config = cloudflare.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-config", account_id=args.account_id, tunnel_id=tunnel.id,
            config={"ingresses": [*({"hostname": host, "service": service}
                                    for host, service in sorted(args.routes.items())),
                                  # cloudflared requires a last rule that matches everything.
                                  {"service": "http_status:404"}]},
            opts=child)
        token = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=args.account_id, tunnel_id=tunnel.id, opts=pulumi.InvokeOutputOptions(parent=self))
        connector = deploy(f"{name}-cloudflared", ContainerSpec(
            name="cloudflared", image=CLOUDFLARED_IMAGE, port=2000, size=args.size,
            command=["tunnel", "--no-autoupdate", "--metrics", "0.0.0.0:2000", "run"],
            # cloudflared reads the token from TUNNEL_TOKEN: it never appears in the command line.
            secret_env={"TUNNEL_TOKEN": pulumi.Output.secret(token.token)}), args.targets, self)
        self.ready = [config, *connector.resources]
        target = tunnel.id.apply(lambda i: f"{i}.cfargotunnel.com")
        self.dns = [DnsEntry(host.split(".")[0], host, "CNAME", target, proxied=True) for host in sorted(args.routes)]
        self.register_outputs({})
