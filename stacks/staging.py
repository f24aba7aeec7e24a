"""staging: production's shape on Railway, WAF in log mode so false positives show before prod."""

from stacks.profile import (
    CanaryProfile,
    DisasterRecoveryProfile,
    EdgeProfile,
    FrontendProfile,
    Profile,
    ServiceProfile,
)

PROFILE = Profile(
    environment="staging",
    services={
        # Railway has no autoscaling: a fixed two replicas keeps a warm spare during deploys.
        "engine": ServiceProfile("railway", 1000, 1024, 2000, 2048, 2, 2, public=True),
        "pocketbase": ServiceProfile("railway", 1000, 2048, 2000, 4096, 1, 1),
        "redis": ServiceProfile("railway", 1000, 1024, 1000, 1024, 1, 1),
    },
    edge=EdgeProfile(
        hsts_max_age_seconds=86400,
        hsts_preload=False,
        waf_action="log",
        owasp_paranoia_level=2,
        owasp_score_threshold=40,
        api_rate_limit_per_minute=600,
        storefront_rate_limit_per_minute=900,
        catalog_edge_ttl_seconds=86400,
        token_permissions=("Cache Purge",),
    ),
    frontend=FrontendProfile(isr_revalidate_seconds=300, preview_deployments=True),
    canary=CanaryProfile(
        enabled=False, traffic_steps_percent=(100,), rollback_error_rate_percent=0.5,
        rollback_p95_latency_ms=700,
    ),
    disaster_recovery=DisasterRecoveryProfile(
        backup_cron="0 3 * * *", backup_retention_days=14, failover_region_enabled=False,
        rto_minutes=120, log_retention_days=90,
    ),
)
