"""The front-end layer: the storefront's Vercel project (L1, D1, C4).

Commits to the production branch deploy automatically through Vercel's git integration (D1); the
project's environment variables carry what differs per environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
import pulumiverse_vercel as vercel

from stacks.profile import FrontendProfile

EDGE_AUTH_HEADER = "x-storefront-edge-auth"
"""components/edge.py STOREFRONT_AUTH_HEADER: what the edge adds to the storefront hosts' requests."""


@dataclass(frozen=True)
class StorefrontArgs:
    project_name: str
    repository: str
    """`owner/name` on GitHub."""
    production_branch: str
    function_region: str
    """Vercel region for server-side rendering and route handlers: near the engine and its data."""
    api_url: str
    settings: FrontendProfile
    root_directory: str | None = None
    """Left out, the repository root."""
    team_id: str | None = None
    """Left out, the provider's default team (`vercel:team`)."""


class Storefront(pulumi.ComponentResource):
    project_id: pulumi.Output[str]
    revalidate_token: pulumi.Output[str]
    edge_key: pulumi.Output[str]
    """Sent by the storefront's server-side code as `X-Storefront-Key` on its calls to the API: the edge does
    not count those per client IP, since they all leave from Vercel's few egress addresses (issue #20.15)."""
    edge_auth: pulumi.Output[str]
    """What the edge adds as `x-storefront-edge-auth` to the storefront hosts' requests (components/edge.py);
    Vercel's firewall denies a production request without it (#22.5)."""

    def __init__(self, name: str, args: StorefrontArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:frontend:Storefront", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        project = vercel.Project(
            f"{name}-project",
            name=args.project_name,
            framework="nextjs",
            team_id=args.team_id,
            git_repository={"type": "github", "repo": args.repository,
                            "production_branch": args.production_branch},
            root_directory=args.root_directory,
            # `serverless_function_region` is deprecated for this (pulumiverse-vercel 5.x, Project docs).
            resource_config={"function_default_regions": [args.function_region]},
            preview_deployments_disabled=not args.settings.preview_deployments,
            # Previews need a Vercel login; production is public.
            vercel_authentication={"deployment_type": "standard_protection"},
            # A fork's pull request deploys with the project's variables only once a team member authorizes it
            # (Defaults to true, pulumiverse_vercel Project; set so the pack sees it: PLAT-FE-001).
            git_fork_protection=True,
            automatically_expose_system_environment_variables=True,
            opts=child,
        )
        self.project_id = project.id

        # Shared by the engine and the storefront: authorises on-demand ISR revalidation calls.
        token = random.RandomPassword(f"{name}-revalidate-token", length=48, special=False, opts=child)
        self.revalidate_token = pulumi.Output.secret(token.result)
        edge_key = random.RandomPassword(f"{name}-edge-key", length=48, special=False, opts=child)
        self.edge_key = pulumi.Output.secret(edge_key.result)
        edge_auth = random.RandomPassword(f"{name}-edge-auth", length=48, special=False, opts=child)
        self.edge_auth = pulumi.Output.secret(edge_auth.result)

        # Only what came through the edge reaches production (#22.5). Each tenant host is also a domain of this
        # project, and production answers at its `*.vercel.app` URLs too: a request there goes around the edge's
        # WAF and rate limits. Vercel's firewall runs "before the cache" on every request to the project
        # (https://vercel.com/docs/vercel-firewall/vercel-waf/custom-rules), on any of its domains: a production
        # request whose `x-storefront-edge-auth` is missing or differs is denied. Condition groups are ORed, the
        # conditions of a group ANDed (pulumiverse-vercel FirewallConfig `condition_groups`/`conditions`);
        # `environment` is a condition type of Vercel's firewall API (@vercel/sdk FirewallConfig types:
        # "host" | "path" | ... | "environment"). Previews stay behind Vercel Authentication (`vercel_authentication`
        # above): the edge never forwards to them, so denying them here would lock developers out for nothing.
        # The value is readable by the project's members in the firewall's settings and by the zone's members in
        # its transform rule: it proves the edge forwarded a request, it grants nothing else.
        def production_and(condition: vercel.FirewallConfigRulesRuleConditionGroupConditionArgsDict,
                           ) -> vercel.FirewallConfigRulesRuleConditionGroupArgsDict:
            return {"conditions": [{"type": "environment", "op": "eq", "value": "production"}, condition]}

        vercel.FirewallConfig(
            f"{name}-firewall", project_id=project.id, team_id=args.team_id, enabled=True,
            rules={"rules": [{
                "name": "edge only",
                "description": "production answers only what the Cloudflare edge forwarded",
                "active": True,
                "condition_groups": [
                    production_and({"type": "header", "key": EDGE_AUTH_HEADER, "op": "nex"}),
                    production_and({"type": "header", "key": EDGE_AUTH_HEADER, "op": "eq", "value": self.edge_auth,
                                    "neg": True}),
                ],
                "action": {"action": "deny"},
            }]},
            opts=child)

        # A secret reaches production only: preview deployments build any branch's code.
        variables: list[tuple[str, pulumi.Input[str], bool]] = [
            ("NEXT_PUBLIC_API_URL", args.api_url, False),
            ("CATALOG_REVALIDATE_SECONDS", str(args.settings.isr_revalidate_seconds), False),
            ("REVALIDATE_TOKEN", self.revalidate_token, True),
            ("API_EDGE_KEY", self.edge_key, True),
        ]
        for key, value, sensitive in variables:
            vercel.ProjectEnvironmentVariable(
                f"{name}-env-{key.lower().replace('_', '-')}",
                project_id=project.id,
                team_id=args.team_id,
                key=key,
                value=value,
                targets=["production"] if sensitive else ["production", "preview"],
                sensitive=sensitive,
                opts=child,
            )

        self.register_outputs({"project_id": self.project_id})
