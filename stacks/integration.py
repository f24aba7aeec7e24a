"""integration: the whole back end on one Docker host, permissive edge, short-lived everything."""

from stacks.profile import (
    CanaryProfile,
    DisasterRecoveryProfile,
    EdgeProfile,
    FrontendProfile,
    Profile,
    ServiceProfile,
)

PROFILE = Profile(
    environment="integration",
    services={
        "engine": ServiceProfile("docker", 1000, 512, 1000, 512, 1, 1, public=True),
        "pocketbase": ServiceProfile("docker", 1000, 2048, 1000, 2048, 1, 1),
        "redis": ServiceProfile("docker", 1000, 1024, 1000, 1024, 1, 1),
    },
    edge=EdgeProfile(
        hsts_max_age_seconds=300,
        hsts_preload=False,
        waf_action="log",
        owasp_paranoia_level=1,
        owasp_score_threshold=60,
        api_rate_limit_per_minute=1200,
        storefront_rate_limit_per_minute=1200,
        catalog_edge_ttl_seconds=86400,
        token_permissions=("Cache Purge",),
    ),
    frontend=FrontendProfile(isr_revalidate_seconds=60, preview_deployments=True),
    canary=CanaryProfile(
        enabled=False, traffic_steps_percent=(100,), rollback_error_rate_percent=0.5,
        rollback_p95_latency_ms=700,
    ),
    disaster_recovery=DisasterRecoveryProfile(
        backup_cron="0 3 * * *", backup_retention_days=7, failover_region_enabled=False,
        rto_minutes=240, log_retention_days=90,
    ),
)
