"""The internal model of one stack: validated, merged with its environment profile, frozen.

Components receive pieces of this model as plain arguments; nothing below `infra` reads config.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from policies.waivers import Waiver
from stacks.cloudflare import Plan
from stacks.profile import Profile, ServiceName, ServiceProfile


@dataclass(frozen=True)
class Secret:
    """A secret config value. Its repr never shows the value; `output()` keeps it a Pulumi secret."""

    key: str
    value: str

    def __repr__(self) -> str:
        return f"Secret({self.key!r}, '[secret]')"

    __str__ = __repr__

    def output(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self.value)


@dataclass(frozen=True)
class Zone:
    name: str
    zone_id: str
    account_id: str
    tokens_expire_on: str
    plan: Plan


@dataclass(frozen=True)
class Tenant:
    """One entry of `platform:tenants`. The slug names every resource of the tenant: renaming it
    replaces them."""

    slug: str
    name: str
    currency: str
    platform_hostname: str
    custom_domains: tuple[str, ...]
    rate_limit_per_minute: int | None
    waf_log_only: bool

    @property
    def hostnames(self) -> tuple[str, ...]:
        return (self.platform_hostname, *self.custom_domains)


@dataclass(frozen=True)
class Frontend:
    project_name: str
    repository: str
    production_branch: str
    root_directory: str | None
    team_id: str | None
    function_region: str


@dataclass(frozen=True)
class Gcp:
    project: str
    region: str
    failover_region: str | None
    log_retention_days: int
    serving: str = "primary"
    """`primary` or `failover`: the region whose engine the edge's API origin reaches, whose PocketBase runs."""

    @property
    def serving_failover(self) -> bool:
        return self.serving == "failover"


@dataclass(frozen=True)
class Railway:
    project_id: str
    environment_id: str
    region: str
    """No token: the Railway provider reads RAILWAY_TOKEN from the deploy job's environment (issue #22 item 1)."""


@dataclass(frozen=True)
class Registry:
    server: str
    repository: str
    username: str
    """No password in the stack (issue #22 item 1): Artifact Registry takes the deployer's own short-lived access
    token (`oauth2accesstoken`); any other registry the deploy job's `docker login`; Railway pulls with the deploy
    environment's RAILWAY_REGISTRY_PASSWORD (components/backends/railway.py)."""


@dataclass(frozen=True)
class Backups:
    bucket: str
    endpoint: str
    region: str
    access_key_id: str
    # Its secret is in no stack file (#22 item 1): PocketBase on Railway gets it from the deploy job's
    # BACKUP_SECRET_ACCESS_KEY (infra/spec.py DEPLOY_CREDENTIALS).


@dataclass(frozen=True)
class Alerts:
    emails: tuple[str, ...]
    slack_webhook_url: Secret
    prometheus_datasource_uid: str
    overrides: tuple[tuple[str, float | None, str | None], ...] = ()
    """(alert, threshold, duration) this stack sets instead of the spec's."""
    monthly_budget_usd: float | None = None


@dataclass(frozen=True)
class GrafanaCloud:
    prometheus_push_url: str
    prometheus_user: str
    otlp_endpoint: str
    otlp_user: str
    loki_url: str | None
    loki_user: str | None
    token: Secret


@dataclass(frozen=True)
class Database:
    """`platform:database`: where the engine keeps its data (infra/spec.py DatabaseSpec)."""

    engine: str = "pocketbase"
    tier: str = "db-custom-2-7680"
    disk_gb: int = 20
    postgres_version: int = 16
    declare_postgres: bool = False
    """Cloud SQL declared while the engine still serves from PocketBase (before the cut-over)."""

    @property
    def postgres(self) -> bool:
        """The engine serves from PostgreSQL."""
        return self.engine == "postgres"

    @property
    def cloud_sql(self) -> bool:
        """Cloud SQL, its users and the migrate job are declared: the engine serves from them, or will."""
        return self.postgres or self.declare_postgres


@dataclass(frozen=True)
class StackModel:
    environment: str
    profile: Profile
    zone: Zone
    frontend: Frontend
    tenants: tuple[Tenant, ...]
    services: dict[ServiceName, ServiceProfile]
    alerts: Alerts
    gcp: Gcp | None
    railway: Railway | None
    registry: Registry | None
    backups: Backups | None
    engine_image: str | None
    waivers: tuple[Waiver, ...]
    grafana_cloud: GrafanaCloud | None = None
    railway_metrics_token: Secret | None = None
    catalog_purge_token: Secret = Secret("platform:catalogPurgeToken", "")
    """The engine's Cache Purge token for the zone, created by the bootstrap (infra/bootstrap)."""
    database: Database = Database()
