"""Version 1 of the stack-file spec: what a user may write under `platform:` in `Pulumi.<stack>.yaml`.

The spec is kept apart from the internal model (`infra.model`); `infra.config` maps one onto the
other once. Every key is camelCase in the file (Pulumi's convention) and snake_case here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

SPEC_VERSIONS = (1,)

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_SLUG = re.compile(rf"^{_LABEL}$")
_EMAIL = re.compile(r"^[^@\s]+@[a-z0-9.-]+\.[a-z]{2,}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Slugs that would collide with the platform's own hosts in the zone.
RESERVED_SLUGS = frozenset({"api", "www", "customers", "grafana", "status", "admin", "mail", "_acme"})

# Vercel's function regions (https://vercel.com/docs/edge-network/regions).
VERCEL_REGIONS = frozenset({
    "arn1", "bom1", "cdg1", "cle1", "cpt1", "dub1", "fra1", "gru1", "hkg1", "hnd1", "iad1",
    "icn1", "kix1", "lhr1", "pdx1", "sfo1", "sin1", "syd1",
})


def _pattern(regex: re.Pattern[str], kind: str, expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.match(value):
            raise PydanticCustomError("format", "is not a valid {kind}; expected {expected}",
                                      {"kind": kind, "expected": expected})
        return value

    return AfterValidator(check)


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise PydanticCustomError(
            "format", "is not a DNS label; expected 1-63 lowercase letters, digits or '-', "
            "not starting or ending with '-'")
    if value[2:4] == "--":
        # RFC 5891 section 4.2.3.1: "??--" labels are reserved; xn-- is an IDNA A-label, which browsers
        # show as Unicode, so a slug could pass for another tenant's.
        raise PydanticCustomError("idna", "is an IDNA label (xn--) or another reserved '??--' form; expected "
                                  "plain letters, digits and single hyphens")
    if value in RESERVED_SLUGS:
        raise PydanticCustomError("reserved", "is reserved for the platform's own hosts; expected "
                                  "a slug other than {reserved}",
                                  {"reserved": ", ".join(sorted(RESERVED_SLUGS))})
    return value


def _region(value: str) -> str:
    if value not in VERCEL_REGIONS:
        raise PydanticCustomError("region", "is not a Vercel function region; expected one of {regions}",
                                  {"regions": ", ".join(sorted(VERCEL_REGIONS))})
    return value


Hostname = Annotated[str, _pattern(_HOSTNAME, "hostname",
                                   "lowercase DNS labels separated by dots, like shop.example.com")]
Slug = Annotated[str, AfterValidator(_slug)]
Email = Annotated[str, _pattern(_EMAIL, "e-mail address", "name@example.com")]
Hex32 = Annotated[str, _pattern(_HEX32, "Cloudflare id", "32 lowercase hex digits")]
Uuid = Annotated[str, _pattern(_UUID, "UUID", "a lowercase UUID like 4f6c0e5a-...")]
IsoDate = Annotated[str, _pattern(_DATE, "date", "YYYY-MM-DD")]
VercelRegion = Annotated[str, AfterValidator(_region)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, alias_generator=to_camel,
                              validate_by_name=False, validate_by_alias=True)


class ZoneSpec(_Spec):
    """The Cloudflare zone this stack owns. Each stack has its own zone: zone settings are zone-wide."""

    name: Hostname
    zone_id: Hex32
    account_id: Hex32
    # The zone's Cloudflare plan: what its edge may declare (stacks/cloudflare.py).
    plan: Literal["free", "pro", "business", "enterprise"]
    # Every API token the platform creates expires on this date; rotate by moving it forward.
    tokens_expire_on: IsoDate


class FrontendSpec(_Spec):
    project_name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
    repository: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
    production_branch: Annotated[str, Field(min_length=1, max_length=255)]
    root_directory: str | None = None
    # Required: the team is the environment's identity (one Vercel team per environment, stacks/identity.py), and
    # only its id is comparable across stack files (a slug in vercel:team matched no other stack's id).
    team_id: Annotated[str, Field(pattern=r"^team_[A-Za-z0-9]+$")]
    function_region: VercelRegion = "gru1"


class TenantSpec(_Spec):
    slug: Slug
    name: Annotated[str, Field(min_length=1, max_length=80)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    domains: list[Hostname] = []
    # Requests per minute per client IP on this tenant's storefront hosts; the profile's otherwise.
    rate_limit_per_minute: Annotated[int, Field(ge=10, le=100_000)] | None = None
    # `log`, while the tenant migrates: where the zone's OWASP execution blocks (prod), its hosts are left out of
    # it (Cloudflare runs a managed ruleset once per zone, so no second, log-only execution), which the pack
    # reports (PLAT-WAF-002) until a waiver with an expiry covers it; where OWASP only logs, nothing changes.
    waf_mode: Literal["enforce", "log"] = "enforce"


class ServiceOverrideSpec(_Spec):
    backend: Literal["docker", "cloudrun", "railway", "gce"] | None = None
    cpu_millis: Annotated[int, Field(ge=1)] | None = None
    memory_mib: Annotated[int, Field(ge=1)] | None = None
    peak_cpu_millis: Annotated[int, Field(ge=1)] | None = None
    peak_memory_mib: Annotated[int, Field(ge=1)] | None = None
    min_instances: Annotated[int, Field(ge=0)] | None = None
    max_instances: Annotated[int, Field(ge=1)] | None = None
    public: bool | None = None


class ServicesSpec(_Spec):
    engine: ServiceOverrideSpec | None = None
    pocketbase: ServiceOverrideSpec | None = None
    redis: ServiceOverrideSpec | None = None


class GcpSpec(_Spec):
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    region: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]$")]
    failover_region: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]$")] | None = None
    # Which region serves (#13 item 7): `python -m infra failover` sets it, and the program declares
    # what it says, so a later `pulumi up` never undoes a failover.
    serving: Literal["primary", "failover"] = "primary"
    # Days Cloud Logging keeps the project's logs (the `_Default` bucket). S5 asks at least 90.
    log_retention_days: Annotated[int, Field(ge=1, le=3650)] = 90


class WaiverSpec(_Spec):
    """One policy rule waived for one resource and one subject, until a date, with a ticket and the
    reason `plan` shows. Checked again by the pack itself (policies/waivers.py, PLAT-WAIVER-001)."""

    rule: Annotated[str, Field(pattern=r"^PLAT-[A-Z]+-[0-9]{3}$")]
    resource: Annotated[str, Field(min_length=1)]
    # A tenant's slug, one of its hosts, or the resource itself: never a whole zone.
    subject: Annotated[str, Field(min_length=1)]
    expires: IsoDate
    ticket: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=20)]


class RailwaySpec(_Spec):
    project_id: Uuid
    environment_id: Uuid
    region: Annotated[str, Field(min_length=1)]


class RegistrySpec(_Spec):
    server: Hostname
    repository: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/-]*$")]
    username: Annotated[str, Field(min_length=1)]


class BackupsSpec(_Spec):
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    endpoint: Annotated[str, Field(pattern=r"^https://")]
    region: Annotated[str, Field(min_length=1)]
    access_key_id: Annotated[str, Field(min_length=1)]


class AlertOverrideSpec(_Spec):
    above: float | int | None = None
    for_: Annotated[str | None, Field(alias="for", pattern=r"^\d+[mhd]$")] = None


class AlertsSpec(_Spec):
    emails: Annotated[list[Email], Field(min_length=1)]
    # Per alert of components/observability/slos.yaml: this stack's threshold or duration.
    overrides: dict[str, AlertOverrideSpec] = {}
    # The Grafana (named by the provider's `grafana:url`) and its Prometheus data source's uid.
    prometheus_datasource_uid: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    # USD a month the stack's compute may cost: the cost alert (M6) fires at 80 % of it, projected.
    monthly_budget_usd: Annotated[float | int, Field(gt=0, le=1_000_000)] | None = None


GRAFANA_CLOUD_PROMETHEUS = r"^https://prometheus-[a-z0-9-]+\.grafana\.net/api/prom/push$"
GRAFANA_CLOUD_OTLP = r"^https://otlp-gateway-[a-z0-9-]+\.grafana\.net/otlp$"
GRAFANA_CLOUD_LOKI = r"^https://logs-[a-z0-9-]+\.grafana\.net$"
PATTERN_MEANINGS: dict[str, str] = {
    GRAFANA_CLOUD_PROMETHEUS: "the stack's Grafana Cloud push URL, https://prometheus-<id>.grafana.net/api/prom/push",
    GRAFANA_CLOUD_OTLP: "the stack's Grafana Cloud OTLP endpoint, https://otlp-gateway-<region>.grafana.net/otlp",
    GRAFANA_CLOUD_LOKI: "the stack's Grafana Cloud Loki URL, https://logs-<id>.grafana.net",
}
"""What a pattern means, said in a config error instead of the pattern itself."""


class GrafanaCloudSpec(_Spec):
    """The environment's own Grafana Cloud stack (the one `grafana:url` names): where its agents write
    metrics, the engine sends traces and Railway's logs are drained. The ids are the stack's per-service
    instance ids (Grafana Cloud portal, "Details" of Prometheus, OTLP and Loki)."""

    # Grafana Cloud's own hosts, anchored at `.grafana.net` (a host that only starts like one, such as
    # `...grafana.net.attacker.example`, would receive the token): "The endpoint looks like
    # https://otlp-gateway-prod-us-west-0.grafana.net/otlp; the region in it varies per stack"
    # (https://grafana.com/docs/grafana-cloud/send-data/otlp/send-data-otlp/, the stack's OTLP, Prometheus and Loki
    # "Details" pages give prometheus-prod-NN-<region>.grafana.net and logs-prod-NNN.grafana.net).
    prometheus_push_url: Annotated[str, Field(pattern=GRAFANA_CLOUD_PROMETHEUS)]
    prometheus_user: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")]
    otlp_endpoint: Annotated[str, Field(pattern=GRAFANA_CLOUD_OTLP)]
    otlp_user: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")]
    loki_url: Annotated[str, Field(pattern=GRAFANA_CLOUD_LOKI)] | None = None
    loki_user: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")] | None = None


class DatabaseSpec(_Spec):
    """Where the engine keeps its data (issue #26): PocketBase (today's), or managed PostgreSQL, which on Google Cloud
    is Cloud SQL in the engine's VPC (components/postgres.py says why Cloud SQL and not Supabase)."""

    engine: Literal["pocketbase", "postgres"] = "pocketbase"
    # Cloud SQL's machine type, `db-custom-<vCPUs>-<MiB>` (stacks/contracts/cloudsql.py has the limits).
    tier: Annotated[str, Field(min_length=1)] = "db-custom-2-7680"
    # The data disk in GB (SSD); Cloud SQL grows it on its own (autoresize), never shrinks it.
    disk_gb: Annotated[int, Field(ge=10, le=65536)] = 20
    postgres_version: Literal[15, 16, 17] = 16
    # Cloud SQL, its users and the `engine-migrate` job declared while the engine still serves from PocketBase: the
    # state before the cut-over (docs/runbooks/migrate-db.md), which then flips `engine` alone. Implied by
    # `engine: postgres`, where false is refused.
    declare_postgres: bool | None = None


class StackSpecV1(_Spec):
    version: Literal[1]
    environment: Literal["integration", "staging", "prod"]
    zone: ZoneSpec
    frontend: FrontendSpec
    tenants: list[TenantSpec]
    alerts: AlertsSpec
    grafana_cloud: GrafanaCloudSpec | None = None
    services: ServicesSpec | None = None
    database: DatabaseSpec | None = None
    gcp: GcpSpec | None = None
    railway: RailwaySpec | None = None
    registry: RegistrySpec | None = None
    backups: BackupsSpec | None = None
    # A prebuilt engine image (`registry/name:tag` or `@sha256:...`) to deploy instead of building it.
    engine_image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")] | None = None
    waivers: list[WaiverSpec] = []
    # Secrets: always `pulumi config set --secret`. Required ones depend on the backends in use.
    slack_webhook_url: str | None = None
    # An access policy token of the environment's Grafana Cloud stack: metrics, logs and traces write.
    grafana_cloud_token: str | None = None
    # A Railway project token of the stack's environment, the metrics exporter's only (#22 item 4): Railway scopes
    # it to "Single environment in a project" (docs.railway.com/reference/public-api).
    # Only where the exporter is a Cloud Run sidecar (the engine on Cloud Run): on Railway it is a write credential
    # the exporter's service gets from the deploy job's RAILWAY_METRICS_TOKEN (stackconfig.py, #22 item 1).
    railway_metrics_token: str | None = None
    # The engine's Cloudflare token (Cache Purge on this zone), created by the environment's bootstrap
    # (infra/bootstrap, output catalogPurgeToken): a stack that creates tokens needs API Tokens Write (#22.3).
    catalog_purge_token: str | None = None


SECRET_FIELDS = ("slack_webhook_url", "grafana_cloud_token", "railway_metrics_token",
                 "catalog_purge_token")

# Write credentials that were stack-file secrets and now come from the deploy job's GitHub environment (issue #22
# item 1): `pulumi preview` decrypts the stack's config for the pull request's program, and the drift job's refresh
# reads it with read-only tokens, so a write credential in a stack file reaches code nobody reviewed. Each key is
# refused, even as `secure:`, with where the credential goes now.
DEPLOY_CREDENTIALS: dict[str, str] = {
    "railwayToken": "the Railway provider reads RAILWAY_TOKEN (the project token) from the deploy job's environment "
                    "when it applies: set the `staging` GitHub environment's secret RAILWAY_TOKEN "
                    "(docs/first-deploy.md); previews and the drift refresh run without it",
    "railwayApiToken": "Locomotive's Railway account token is set on the log drain from the deploy job's "
                       "RAILWAY_LOG_DRAIN_TOKEN when the Railway provider applies: set the `staging` GitHub "
                       "environment's secret RAILWAY_LOG_DRAIN_TOKEN (docs/first-deploy.md)",
    "registryPassword": "the engine image is pushed with the deploy job's own docker login (GITHUB_TOKEN with "
                        "packages: write, valid for the job), Artifact Registry with the deployer's access token, "
                        "and Railway pulls with the `staging` GitHub environment's read-only secret "
                        "RAILWAY_REGISTRY_PASSWORD (docs/first-deploy.md)",
    "backupSecretAccessKey": "the backup bucket's S3 secret (`platform:backups`) is set on PocketBase's Railway "
                             "service from the deploy job's BACKUP_SECRET_ACCESS_KEY when the Railway provider "
                             "applies: set the `staging` GitHub environment's secret BACKUP_SECRET_ACCESS_KEY "
                             "(docs/first-deploy.md); `python -m infra restore` reads the same key from "
                             "LITESTREAM_SECRET_ACCESS_KEY",
}


def raw_fields(spec: type[BaseModel]) -> dict[str, Any]:
    """The file's names (aliases) of a spec class's fields, mapped to their field info."""
    return {info.alias or name: info for name, info in spec.model_fields.items()}
