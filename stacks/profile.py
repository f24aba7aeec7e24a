"""The shape of an environment profile. Every field carries its unit in its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["docker", "cloudrun", "railway", "gce"]

ServiceName = Literal["engine", "pocketbase", "redis"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("engine", "pocketbase", "redis")

WafAction = Literal["block", "managed_challenge", "log"]


@dataclass(frozen=True)
class ServiceProfile:
    """Where and how big one container service runs.

    `cpu_millis`/`memory_mib` is the steady size; `peak_*` the vertical ceiling the document allows
    at peaks (C2, C3). Backends without vertical autoscaling (Railway bills usage under a cap) are
    given the peak as their limit.
    """

    backend: Backend
    cpu_millis: int
    memory_mib: int
    peak_cpu_millis: int
    peak_memory_mib: int
    min_instances: int
    max_instances: int
    public: bool = False
    """Reachable from the internet (the engine's API). Redis never is."""


@dataclass(frozen=True)
class EdgeProfile:
    """Cloudflare hardening for the stack's zone (S1, S2, C5)."""

    hsts_max_age_seconds: int
    hsts_preload: bool
    waf_action: WafAction
    owasp_paranoia_level: int
    owasp_score_threshold: int
    api_rate_limit_per_minute: int
    storefront_rate_limit_per_minute: int
    catalog_edge_ttl_seconds: int
    token_permissions: tuple[str, ...]


@dataclass(frozen=True)
class FrontendProfile:
    """The Vercel project's per-environment settings (L1, C4)."""

    isr_revalidate_seconds: int
    preview_deployments: bool


@dataclass(frozen=True)
class CanaryProfile:
    """Progressive delivery of the engine (D7, D8): traffic steps and the rollback thresholds."""

    enabled: bool
    traffic_steps_percent: tuple[int, ...]
    rollback_error_rate_percent: float
    rollback_p95_latency_ms: int
    bake_seconds: int = 300
    """How long each step (and staging's watch after a deploy) is watched before the next."""
    check_interval_seconds: int = 30
    """How often the metrics are read during a bake: a breach rolls back at the next check."""
    min_requests: int = 100
    """Requests a step's window needs before it is judged; a whole step with fewer is rolled back."""


@dataclass(frozen=True)
class DisasterRecoveryProfile:
    """Backups and failover (C7, C8, S5)."""

    backup_cron: str
    backup_retention_days: int
    failover_region_enabled: bool
    rto_minutes: int
    log_retention_days: int
    rpo_seconds: int = 5
    """Seconds of acknowledged writes a disaster may lose: Litestream ships the WAL every second (#13)."""
    restore_test_interval_hours: int = 24
    """How often the latest replica is restored into a scratch PocketBase and verified (A5)."""


@dataclass(frozen=True)
class Profile:
    environment: str
    services: dict[ServiceName, ServiceProfile]
    edge: EdgeProfile
    frontend: FrontendProfile
    canary: CanaryProfile
    disaster_recovery: DisasterRecoveryProfile
