"""prod: the engine on Cloud Run (1 warm -> 5) with Memorystore Redis, PocketBase on a private VM, WAF blocking."""

from stacks.profile import (
    CanaryProfile,
    DisasterRecoveryProfile,
    EdgeProfile,
    FrontendProfile,
    Profile,
    ServiceProfile,
)

PROFILE = Profile(
    environment="prod",
    services={
        "engine": ServiceProfile("cloudrun", 1000, 1024, 1000, 1024, 1, 5, public=True),
        # A VM with a persistent disk in the engine's region and VPC: private, near the engine (M1, B4).
        "pocketbase": ServiceProfile("gce", 1000, 2048, 2000, 4096, 1, 1),
        # Redis is private only, so it lives where the engine's private network is: on Cloud Run's
        # side that is Memorystore, reached over Direct VPC egress.
        "redis": ServiceProfile("cloudrun", 1000, 1024, 1000, 1024, 1, 1),
    },
    edge=EdgeProfile(
        # Two years with preload: the value hstspreload.org requires.
        hsts_max_age_seconds=63072000,
        hsts_preload=True,
        waf_action="block",
        owasp_paranoia_level=2,
        owasp_score_threshold=40,
        api_rate_limit_per_minute=600,
        storefront_rate_limit_per_minute=900,
        catalog_edge_ttl_seconds=86400,
        token_permissions=("Cache Purge",),
    ),
    frontend=FrontendProfile(isr_revalidate_seconds=600, preview_deployments=True),
    canary=CanaryProfile(
        enabled=True, traffic_steps_percent=(10, 50, 100), rollback_error_rate_percent=0.5,
        rollback_p95_latency_ms=700,
    ),
    disaster_recovery=DisasterRecoveryProfile(
        backup_cron="0 3 * * *", backup_retention_days=30, failover_region_enabled=True,
        rto_minutes=60, log_retention_days=90,
    ),
)
