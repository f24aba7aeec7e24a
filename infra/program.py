"""The composition: the one place that wires the layers together for one stack."""

from __future__ import annotations

import pulumi

from components.edge import Edge, EdgeArgs, RateLimitOverride
from components.frontend import Storefront, StorefrontArgs
from components.tenant import TenantSite, TenantSiteArgs
from infra.config import ConfigError, RawConfig, load_model
from infra.model import StackModel


def declare(model: StackModel) -> None:
    """Declare every resource of the stack described by `model`, and the stack's outputs."""
    zone = model.zone
    api_url = f"https://{zone.api_hostname}"

    storefront = Storefront("storefront", StorefrontArgs(
        project_name=model.frontend.project_name,
        repository=model.frontend.repository,
        production_branch=model.frontend.production_branch,
        function_region=model.frontend.function_region,
        api_url=api_url,
        settings=model.profile.frontend,
        root_directory=model.frontend.root_directory,
        team_id=model.frontend.team_id,
    ))

    edge = Edge("edge", EdgeArgs(
        zone_id=zone.zone_id,
        zone_name=zone.name,
        tokens_expire_on=zone.tokens_expire_on,
        settings=model.profile.edge,
        custom_domains_enabled=any(t.custom_domains for t in model.tenants),
        rate_limit_overrides=[RateLimitOverride(t.hostnames, t.rate_limit_per_minute)
                              for t in model.tenants if t.rate_limit_per_minute is not None],
        waf_log_only_hosts=[h for t in model.tenants if t.waf_log_only for h in t.hostnames],
    ))

    tenants: dict[str, object] = {}
    for tenant in model.tenants:
        site = TenantSite(f"tenant-{tenant.slug}", TenantSiteArgs(
            slug=tenant.slug,
            platform_hostname=tenant.platform_hostname,
            custom_domains=tenant.custom_domains,
            zone_id=zone.zone_id,
            vercel_project_id=storefront.project_id,
            saas_cname_target=edge.saas_cname_target,
            vercel_team_id=model.frontend.team_id,
            fallback_origin=edge.fallback_origin,
        ))
        tenants[tenant.slug] = {
            "urls": [f"https://{h}" for h in site.hostnames],
            "dnsRecordsForTenant": [{"name": r.name, "type": r.type, "value": r.value}
                                    for r in site.dns_instructions],
        }

    pulumi.export("environment", model.environment)
    pulumi.export("apiUrl", api_url)
    pulumi.export("tenants", tenants)
    pulumi.export("catalogPurgeToken", edge.catalog_purge_token)
    pulumi.export("revalidateToken", storefront.revalidate_token)


def run_under_pulumi() -> None:
    """`pulumi up`/`preview`: read the engine's config; a mistake stops before any resource."""
    try:
        model = load_model(RawConfig.from_pulumi_runtime())
    except ConfigError as err:
        # RunError ends the program with this message and no traceback.
        raise pulumi.RunError(f"invalid stack config:\n{err}") from None
    declare(model)
