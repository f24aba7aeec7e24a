"""Cloudflare Access in front of a host the edge tunnels to an operator's UI (#22 item 11): the docker backend's
Grafana at `grafana.<zone>`, which the tunnel publishes.

A self-hosted Access application on the host, its policies reusable ones referenced by id and precedence
(cloudflare provider v6: `ZeroTrustAccessApplication.policies` takes `{id, precedence}` of
`ZeroTrustAccessPolicy` resources): the people who receive the stack's alerts, signed in with their e-mail
(decision `allow`, one `email` rule each), and the deploy's Grafana provider with a service token (decision
`non_identity`, "Service Auth": a service token is sent as the `CF-Access-Client-Id` and `CF-Access-Client-Secret`
request headers, developers.cloudflare.com/cloudflare-one/identity/service-tokens/). Nobody else reaches
Grafana's login page or API: Access answers first, at Cloudflare's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare

SESSION = "8h"
"""How long an operator's Access session lasts before Access asks again."""
TOKEN_DURATION = "8760h"
"""The service token's life (a year): rotated by a deploy before then (`client_secret_version`)."""


@dataclass(frozen=True)
class AccessArgs:
    hostname: str
    zone_id: str
    account_id: str
    environment: str
    operators: Sequence[str]
    """E-mail addresses admitted (the stack's alert recipients)."""


class OperatorAccess(pulumi.ComponentResource):
    """An Access application on one host: its operators by e-mail, the deploy by a service token."""

    application: cloudflare.ZeroTrustAccessApplication
    headers: pulumi.Output[dict[str, str]]
    """What a program client sends to pass Access (a secret)."""

    def __init__(self, name: str, args: AccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:edge:OperatorAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if not args.operators:
            raise ValueError(f"{args.hostname}: Access needs at least one operator e-mail")
        token = cloudflare.ZeroTrustAccessServiceToken(
            f"{name}-deploy", account_id=args.account_id, name=f"{args.environment} deploy: {args.hostname}",
            duration=TOKEN_DURATION, opts=child)
        operators = cloudflare.ZeroTrustAccessPolicy(
            f"{name}-operators", account_id=args.account_id, name=f"{args.environment} operators: {args.hostname}",
            decision="allow", includes=[{"email": {"email": email}} for email in args.operators],
            session_duration=SESSION, opts=child)
        deploy = cloudflare.ZeroTrustAccessPolicy(
            f"{name}-deploy", account_id=args.account_id, name=f"{args.environment} deploy: {args.hostname}",
            decision="non_identity", includes=[{"service_token": {"token_id": token.id}}], opts=child)
        self.application = cloudflare.ZeroTrustAccessApplication(
            f"{name}-app", zone_id=args.zone_id, name=f"{args.environment} {args.hostname}", domain=args.hostname,
            type="self_hosted", session_duration=SESSION, app_launcher_visible=False,
            policies=[{"id": operators.id, "precedence": 1}, {"id": deploy.id, "precedence": 2}], opts=child)
        self.headers = pulumi.Output.secret(pulumi.Output.all(token.client_id, token.client_secret).apply(
            lambda pair: {"CF-Access-Client-Id": str(pair[0]), "CF-Access-Client-Secret": str(pair[1])}))
        self.register_outputs({})
