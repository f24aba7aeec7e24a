"""The composition: the one place that wires the layers together for one stack."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_gcp as gcp
import pulumi_random as random
import pulumiverse_grafana as grafana
import pulumiverse_time as time

from components.access import AccessArgs, OperatorAccess
from components.api import Engine, EngineArgs, TenantEntry
from components.backends.cloudrun import CloudRunTarget, Standby
from components.backends.gce import GceTarget, vm_address
from components.backends.railway import RailwayTarget
from components.backends.service import ContainerSpec, DnsEntry
from components.backends.targets import Targets
from components.cache import Cache, CacheArgs
from components.database import BackupTarget, Database, DatabaseArgs, ReplicaTarget
from components.edge import Edge, api_hostname, grafana_hostname
from components.frontend import Storefront, StorefrontArgs
from components.images import Registry
from components.observability import cloud as cloud_telemetry
from components.observability import stack as observability_stack
from components.observability.grafana import Alerting, AlertingArgs
from components.observability.images import TelemetryImages
from components.observability.selfhosted import SelfHostedArgs, SelfHostedObservability
from components.postgres import MigrateJobArgs, Postgres, PostgresArgs, migrate_job
from components.standby import (
    STANDBY_ADDRESS,
    STANDBY_URL,
    StandbyDatabase,
    StandbyDatabaseArgs,
    pocketbase_image,
    standby_target,
)
from components.tenant import TenantSite, TenantSiteArgs
from components.tenant_secrets import declare_tenant_secrets
from components.tunnel import OriginTunnel, TunnelArgs
from infra.config import SHORT_LIVED_REGISTRY_USER, ConfigError, RawConfig, load_model
from infra.edge_plan import edge_args
from infra.model import StackModel
from infra.ops.replica import declare_storage
from infra.ops.rollout import ENGINE_SERVICE, SERVING_OUTPUT, serving_revision
from stacks.backends import GCP_API_SERVICE_TYPE, GCP_APIS_ALWAYS, gcp_apis
from stacks.profile import ServiceProfile

DRAIN = "30s"
"""After the load balancer's backend moved, before the newly serving PocketBase starts: requests the old region
took finish and its Litestream ships their writes (every second) before the new one restores the replica."""


def failover_region(model: StackModel) -> str | None:
    """The region the standby runs in: prod's engine on Cloud Run with PocketBase on a VM (#13 item 7)."""
    if (model.gcp is None or not model.profile.disaster_recovery.failover_region_enabled
            or model.services["engine"].backend != "cloudrun" or model.services["pocketbase"].backend != "gce"):
        return None
    return model.gcp.failover_region


API_SETTLE = "30s"
"""How long the resources that use a newly enabled API wait after the enable: an API reported enabled is not yet
usable everywhere ("eventually consistent", hashicorp/terraform-provider-google#2129; the provider's own enable
polls until Service Usage lists it, which is not the same as every backend accepting calls). Created with the
enable only, so no later `up` waits."""
BOOTSTRAP_API = "cloudresourcemanager.googleapis.com"
"""Reading any `gcp.projects.Service` calls Cloud Resource Manager's projects.get (terraform-provider-google
resource_google_project_service.go, `resourceGoogleProjectServiceRead` via `resourceManagerV3...Projects.Get`), so
it must be on before the stack runs (README, bootstrap) and every other API waits for its declaration."""


def enable_gcp_apis(project: str) -> None:
    """Enable the Google APIs the stack uses, derived from the resources it declares, and make each GCP resource
    wait for its API (stacks/backends.py, GCP_APIS): a stack transformation sees every resource registered after
    it, so a new kind of resource brings its API with it, or stops the program if none is known for it.

    Each GCP resource waits for a short sleep after its API's enable (`API_SETTLE`), and every API's enable for
    Cloud Resource Manager's (`BOOTSTRAP_API`). The bootstrap APIs (GCP_APIS_ALWAYS) are enabled by hand once,
    before the first `up` (README, "What the first `pulumi up` of each stack expects to exist"): the stack
    cannot enable them itself, only declare them.

    Never disabled on destroy, nor their dependants: other things in the project may use them
    (`disable_on_destroy`, `disable_dependent_services` of google_project_service, whose default would switch an
    API off with the stack). Resources of another project (a shared registry) are that project's owner's.
    """
    services: dict[str, gcp.projects.Service] = {}
    settled: dict[str, time.Sleep] = {}

    def api(name: str) -> time.Sleep:
        """The sleep after `name`'s enable: what a resource that uses the API waits for."""
        if name not in settled:
            if name != BOOTSTRAP_API:
                api(BOOTSTRAP_API)
            first = [] if name == BOOTSTRAP_API else [services[BOOTSTRAP_API]]
            services[name] = gcp.projects.Service(
                f"api-{name.split('.')[0]}", project=project, service=name, disable_on_destroy=False,
                disable_dependent_services=False, opts=pulumi.ResourceOptions(depends_on=first))
            settled[name] = time.Sleep(f"api-{name.split('.')[0]}-settle", create_duration=API_SETTLE,
                                       opts=pulumi.ResourceOptions(depends_on=[services[name]]))
        return settled[name]

    for name in sorted(GCP_APIS_ALWAYS):
        api(name)

    def wait_for_api(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not args.type_.startswith("gcp:") or args.type_ == GCP_API_SERVICE_TYPE:
            return None
        other = args.props.get("project")  # None (unset): the provider's project, the stack's
        if isinstance(other, str) and other != project:
            return None
        needed = [api(name) for name in gcp_apis(args.type_, args.props.get("role"))]
        return pulumi.ResourceTransformationResult(
            args.props, pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(depends_on=needed)))

    pulumi.runtime.register_stack_transformation(wait_for_api)


def _targets(model: StackModel, registry: Registry | None) -> Targets:
    backends = {svc.backend for svc in model.services.values()}
    network = None
    if "docker" in backends:
        network = docker.Network("platform-network", name=f"platform-{model.environment}")
    # Railway pulls the platform's images from the private registry with its credentials.
    railway = (RailwayTarget(model.railway.project_id, model.railway.environment_id, model.railway.region,
                             registry=registry)
               if model.railway is not None else None)
    return Targets(docker_network=network, railway=railway)


@dataclass(frozen=True)
class Placement:
    """Where the services run (the backends' targets) and prod's standby, decided by the network layer."""

    targets: Targets
    standby: Standby | None
    drained: asyncio.Future[pulumi.Resource] | None
    """Failing over, the primary PocketBase stops only after the edge's drain (set by `standby_database`)."""


@dataclass(frozen=True)
class Data:
    """The data layer: Redis, PocketBase, the buckets its backups and replica go to, and how the engine reaches it."""

    cache: Cache
    database: Database
    backups: BackupTarget | None
    replica: ReplicaTarget | None
    pocketbase_url: pulumi.Input[str]
    postgres: Postgres | None = None
    """`platform:database: {engine: postgres}`: Cloud SQL in the engine's VPC, which the engine uses instead; or
    `{declarePostgres: true}`: declared beside PocketBase, which the engine keeps using until the cut-over."""


@dataclass(frozen=True)
class Observability:
    """What the telemetry plan decided (rules, scrape jobs) and where the engine sends its signals."""

    telemetry: observability_stack.TelemetryPlan
    grafana_cloud: cloud_telemetry.GrafanaCloud | None
    images: TelemetryImages | None
    otlp_headers: pulumi.Output[str] | None
    self_hosted: tuple[SelfHostedObservability, OriginTunnel, str] | None


@dataclass(frozen=True)
class Api:
    """The engine and what the edge needs of it: its DNS entries and the secrets it checks on every request."""

    engine: Engine
    records: list[DnsEntry]
    origin_auth: pulumi.Output[str]
    origin_gate: pulumi.Output[str] | None


def declare(model: StackModel) -> None:
    """Declare every resource of the stack described by `model`, and the stack's outputs: one layer after the other,
    each given what it needs of the layers below (the architecture, read top to bottom)."""
    if model.gcp is not None:
        enable_gcp_apis(model.gcp.project)
    registry = image_registry(model)
    storefront = frontend(model)
    placement, data = data_layer(model, registry)
    signals = observability(model, registry, placement.targets, data)
    api = api_layer(model, registry, placement.targets, data, signals)
    standby_database(model, registry, placement, data, api)
    cloud_telemetry_layer(model, placement.targets, data, api, signals)
    zone_edge = edge(model, api, storefront)
    sites = tenants(model, storefront, zone_edge)
    alerting(model, signals, zone_edge)
    outputs(model, api, sites)


def image_registry(model: StackModel) -> Registry | None:
    """Where the platform's images are pushed (none on docker, which builds on its host)."""
    if model.registry is None:
        return None
    # No stored password (issue #22 item 1). Artifact Registry: the deployer's own access token, valid an hour
    # (infra/config.py). Any other registry: the deploy job's own `docker login` with a short-lived token, which
    # pulumi-docker pushes with when the program gives no password (components/images.py).
    password = (pulumi.Output.secret(gcp.organizations.get_client_config_output().access_token)
                if model.registry.username == SHORT_LIVED_REGISTRY_USER
                and model.registry.server.endswith("-docker.pkg.dev") else None)
    return Registry(model.registry.server, model.registry.repository, model.registry.username, password)


def frontend(model: StackModel) -> Storefront:
    """The Next.js storefront on Vercel, calling the API through the edge."""
    return Storefront("storefront", StorefrontArgs(
        project_name=model.frontend.project_name,
        repository=model.frontend.repository,
        production_branch=model.frontend.production_branch,
        function_region=model.frontend.function_region,
        api_url=f"https://{api_hostname(model.zone.name)}",
        settings=model.profile.frontend,
        root_directory=model.frontend.root_directory,
        team_id=model.frontend.team_id,
    ))


def data_layer(model: StackModel, registry: Registry | None) -> tuple[Placement, Data]:
    """Redis (and, on Google Cloud, the VPC it lives in), the DR buckets, where the services run, and PocketBase."""
    targets = _targets(model, registry)
    failover = failover_region(model)
    serving_failover = failover is not None and model.gcp is not None and model.gcp.serving_failover
    cache = Cache("cache", CacheArgs(
        environment=model.environment, size=model.services["redis"], targets=targets,
        gcp_project=model.gcp.project if model.gcp else None, gcp_region=model.gcp.region if model.gcp else None,
        failover_region=failover, serving_failover=serving_failover,
        registry=registry if model.services["redis"].backend == "railway" else None,
    ))
    # The backups' and the replica's buckets (declared in the stack's own project) or `platform:backups` (#13).
    backups, replica, restore_account = declare_storage(model)
    postgres = _postgres(model, cache, failover)
    placement = _placement(model, registry, targets, cache, backups, replica, failover, serving_failover, postgres)
    database = _database(model, registry, placement, backups, replica)
    if model.gcp is not None and restore_account is not None and model.services["pocketbase"].backend == "gce":
        # `python -m infra restore` verifies the copy with PocketBase's settings key: its account reads the secret the
        # VM reads (components/backends/gce.py names it `<service>-<env>-<variable>`), no stack output (#22 item 6).
        gcp.secretmanager.SecretIamMember(
            "pocketbase-settings-key-restore", project=model.gcp.project,
            secret_id=f"pocketbase-{model.environment}-pb-encryption-key", role="roles/secretmanager.secretAccessor",
            member=restore_account.apply(lambda email: f"serviceAccount:{email}"),
            opts=pulumi.ResourceOptions(depends_on=[database]))
    engine_backend = model.services["engine"].backend
    # On one private network: the same backend, or a VM in the VPC the engine's Cloud Run egress enters.
    private_path = (model.services["pocketbase"].backend == engine_backend
                    or (model.services["pocketbase"].backend == "gce" and engine_backend == "cloudrun"))
    pocketbase_url = database.endpoint.private_url if private_path else database.endpoint.public_url
    assert pocketbase_url is not None  # made public by the config model when there is no private path
    return placement, Data(cache, database, backups, replica, pocketbase_url, postgres)


def _postgres(model: StackModel, cache: Cache, failover: str | None) -> Postgres | None:
    """Cloud SQL for PostgreSQL in the engine's VPC (config allows it only with the engine on Cloud Run), with its
    cross-region replica in the failover region (C8) and high availability in prod."""
    if not model.database.cloud_sql or model.gcp is None or cache.vpc_network is None:
        return None
    db = model.database
    return Postgres("postgres", PostgresArgs(
        environment=model.environment, project=model.gcp.project, region=model.gcp.region,
        network=cache.vpc_network, tier=db.tier, disk_gb=db.disk_gb, version=db.postgres_version,
        high_availability=model.environment == "prod", failover_region=failover,
        deletion_protection=True))


def _placement(model: StackModel, registry: Registry | None, targets: Targets, cache: Cache,
               backups: BackupTarget | None, replica: ReplicaTarget | None, failover: str | None,
               serving_failover: bool, postgres: Postgres | None = None) -> Placement:
    """On Google Cloud: the PocketBase VM in the engine's VPC, prod's standby region, the canary's pin."""
    if model.gcp is None:
        return Placement(targets, None, None)
    env = model.environment
    standby: Standby | None = None
    drained: asyncio.Future[pulumi.Resource] | None = None
    engine_serving: pulumi.Output[str | None] | None = None
    # Cloud Logging keeps 30 days unless told; audit logs must be kept 90 (S5).
    gcp.logging.ProjectBucketConfig("log-retention", project=model.gcp.project, location="global",
                                    bucket_id="_Default", retention_days=model.gcp.log_retention_days)
    gce_target = None
    if (cache.vpc_network is not None and cache.vm_subnetwork is not None and cache.vpc_subnet_range
            and cache.vm_subnet_range):
        # A private VM in the engine's VPC, in a NATed subnetwork of its own, reached only from the engine's
        # Direct VPC egress subnet.
        gce_target = GceTarget(
            project=model.gcp.project, region=model.gcp.region, environment=env, network=cache.vpc_network,
            subnetwork=cache.vm_subnetwork, address=vm_address(cache.vm_subnet_range),
            client_ranges=(cache.vpc_subnet_range,),
            registry_server=model.registry.server if model.registry else None,
            registry_repository=model.registry.repository if model.registry else None,
            deletion_protection=env == "prod",
            # The VMs write the DR buckets through the DR account's HMAC key: their IAM wait covers its grants.
            grants=tuple(dict.fromkeys((*(backups.grants if backups else ()),
                                        *(replica.grants if replica else ())))),
            # One writer: the primary runs only while its region serves, on a disk only it has (#13 item 7).
            running=not serving_failover, data_disk=not serving_failover)
    if (failover is not None and cache.failover_subnetwork is not None
            and cache.failover_vm_subnetwork is not None):
        # The engine's standby reaches the standby PocketBase and, while it serves, the failover region's Redis
        # (a cache: it starts cold). While the primary serves it keeps its settings and serves nothing.
        failover_redis: dict[str, pulumi.Input[str]] = {}
        if cache.failover_url is not None and cache.failover_ca_certificate is not None:
            failover_redis = {"REDIS_URL": cache.failover_url, "REDIS_CA_CERT": cache.failover_ca_certificate}
        standby_env: dict[str, pulumi.Input[str]] = {"POCKETBASE_URL": STANDBY_URL}
        if postgres is not None and model.database.postgres:
            # The standby engine dials the cross-region replica, which a failover promotes (docs/runbooks/postgres.md).
            standby_env, standby_secrets = postgres.standby_env()
            failover_redis = {**failover_redis, **standby_secrets}
        standby = Standby(region=failover, subnetwork=cache.failover_subnetwork, serving=serving_failover,
                          env=standby_env, secret_env=failover_redis)
        if serving_failover and gce_target is not None and registry is not None:
            # Failing over, the primary stops, and drops its disk, only after the drain (declared by
            # `standby_database`, once the engine's load balancer exists): the provider detaches a dropped disk before
            # it stops the VM, and the primary's engine may take requests until the backend moves. Only then: serving
            # from the primary, a deploy changing the engine and PocketBase together would wait on itself.
            drained = asyncio.get_event_loop().create_future()
            gce_target = dataclasses.replace(gce_target, depends_on=[drained])
    # Canary rollouts move the engine's traffic; the program pins what the last one promoted (D7, D8).
    if model.profile.canary.enabled and model.services["engine"].backend == "cloudrun":
        engine_serving = serving_revision()
        pulumi.export(SERVING_OUTPUT, engine_serving)
    targets = Targets(targets.docker_network, CloudRunTarget(
        project=model.gcp.project, region=model.gcp.region, environment=env,
        deletion_protection=env == "prod", vpc_network=cache.vpc_network, vpc_subnetwork=cache.vpc_subnetwork,
        serving_revisions={ENGINE_SERVICE: engine_serving} if engine_serving is not None else {},
        standby=standby,
    ), targets.railway, gce_target)
    return Placement(targets, standby, drained)


def _otlp_headers(model: StackModel) -> pulumi.Output[str] | None:
    """The environment's Grafana Cloud: the engine's traces and the restore test's metrics go there over OTLP."""
    if model.grafana_cloud is None:
        return None
    return cloud_telemetry.otlp_headers(model.grafana_cloud.otlp_user, model.grafana_cloud.token.output())


def _database(model: StackModel, registry: Registry | None, placement: Placement, backups: BackupTarget | None,
              replica: ReplicaTarget | None) -> Database:
    dr, targets = model.profile.disaster_recovery, placement.targets
    return Database("database", DatabaseArgs(
        environment=model.environment,
        size=model.services["pocketbase"],
        targets=targets,
        superuser_email=f"platform-admin@{model.zone.name}",
        backup_cron=dr.backup_cron,
        backup_retention_days=dr.backup_retention_days,
        registry=registry if model.services["pocketbase"].backend != "docker" else None,
        backups=backups,
        replica=replica,
        restore_test_interval_hours=dr.restore_test_interval_hours,
        # The restore test's metrics go where the DR alerts read them.
        otlp_endpoint=model.grafana_cloud.otlp_endpoint if model.grafana_cloud else None,
        otlp_headers=_otlp_headers(model),
        # TLS between the engine and the VMs (S1, #22 item 7): a certificate for the addresses the engine dials.
        tls_addresses=(tuple(dict.fromkeys((str(targets.gce.address),
                                            *([STANDBY_ADDRESS] if placement.standby else []))))
                       if targets.gce is not None and targets.gce.address is not None
                       and model.services["pocketbase"].backend == "gce" else ()),
    ))


def observability(model: StackModel, registry: Registry | None, targets: Targets, data: Data) -> Observability:
    """Where each signal comes from on this stack's backends and the rules it deploys (thresholds, one absence alert
    per scrape job, its cost against its budget); on docker, the stack's own Collector, Prometheus and Grafana."""
    telemetry = observability_stack.plan(model.services, model.alerts.overrides, model.alerts.monthly_budget_usd,
                                         model.gcp.region if model.gcp else None,
                                         restore_tested=data.replica is not None, postgres=data.postgres is not None)
    self_hosted: tuple[SelfHostedObservability, OriginTunnel, str] | None = None
    if model.services["engine"].backend == "docker":
        # The docker backend runs its own OpenTelemetry Collector, Prometheus and Grafana (L6), and
        # the edge reaches the Docker host's network (the engine, Grafana) through a tunnel.
        small = ServiceProfile("docker", 500, 512, 500, 512, 1, 1)
        zone = model.zone
        grafana_host = grafana_hostname(zone.name)
        stack = SelfHostedObservability("observability", SelfHostedArgs(
            spec=telemetry.spec, environment=model.environment, targets=targets, jobs=list(telemetry.layout.jobs),
            redis_url=data.cache.url, size=small, grafana_url=f"https://{grafana_host}"))
        tunnel = OriginTunnel("tunnel", TunnelArgs(
            account_id=zone.account_id, environment=model.environment, targets=targets, size=small,
            routes={api_hostname(zone.name): "http://commission-engine:8000", grafana_host: "http://grafana:3000"}))
        self_hosted = (stack, tunnel, grafana_host)
    grafana_cloud = images = None
    if model.grafana_cloud is not None:
        images = TelemetryImages("telemetry-images", registry)
        # Traces to the environment's Grafana Cloud stack over OTLP; metrics through the stack's agents.
        gc = model.grafana_cloud
        grafana_cloud = cloud_telemetry.GrafanaCloud(gc.prometheus_push_url, gc.prometheus_user, gc.token.output(),
                                                     gc.otlp_endpoint, gc.otlp_user, gc.loki_url, gc.loki_user)
    return Observability(telemetry, grafana_cloud, images, _otlp_headers(model), self_hosted)

def api_layer(model: StackModel, registry: Registry | None, targets: Targets, data: Data,
              signals: Observability) -> Api:
    """The Commission Engine: its image, service and tenants' keys, wired to PocketBase, Redis and the telemetry, and
    the secrets the edge adds to every request it forwards."""
    zone, engine_size = model.zone, model.services["engine"]
    api_url = f"https://{api_hostname(zone.name)}"
    # The engine purges a tenant's catalog from the edge after each product write (C5).
    extra_env: dict[str, pulumi.Input[str]] = {
        "CATALOG_CACHE_SECONDS": str(model.profile.edge.catalog_edge_ttl_seconds), "CATALOG_PUBLIC_BASE_URL": api_url,
        "CLOUDFLARE_ZONE_ID": zone.zone_id, "PUBLIC_HOSTNAME": api_hostname(zone.name)}
    serving_postgres = data.postgres is not None and model.database.postgres
    if model.services["pocketbase"].backend == "gce" and not serving_postgres:
        # A deploy that changes PocketBase reboots its VM (components/backends/gce.py CONFIG_WATCH) while the
        # engine's new revision starts: it waits this long for its account and schema (the startup probe, 180 s).
        extra_env["POCKETBASE_START_WAIT_SECONDS"] = "150"
    # The edge adds it to what it forwards to the API; the engine refuses the public host without it.
    origin_auth = pulumi.Output.secret(random.RandomPassword("origin-auth", length=48, special=False).result)
    # What Cloud Armor requires of the edge in front of Cloud Run: readable by the project's viewers in the policy,
    # so never the engine's secret (components/backends/cloudrun.py `_armor_rules`).
    origin_gate = pulumi.Output.secret(random.RandomPassword("origin-gate", length=48, special=False).result) \
        if engine_size.backend == "cloudrun" else None
    # Created by the bootstrap, not here: a deploy token that could create it could mint any token (#22.3).
    purge_token = model.catalog_purge_token.output()
    records: list[DnsEntry] = []
    if signals.self_hosted is not None:
        stack, tunnel, _ = signals.self_hosted
        extra_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = stack.otlp_endpoint
        records += tunnel.dns
    # Each secret goes only where it is read: the engine purges the edge; it never revalidates Vercel.
    extra_secret_env: dict[str, pulumi.Input[str]] = {"CATALOG_PURGE_TOKEN": purge_token,
                                                      "ORIGIN_AUTH_SECRET": origin_auth}
    if data.cache.ca_certificate is not None:
        extra_secret_env["REDIS_CA_CERT"] = data.cache.ca_certificate
    if data.database.tls_certificate is not None and not serving_postgres:
        extra_secret_env["POCKETBASE_CA_CERT"] = data.database.tls_certificate
    if data.postgres is not None and serving_postgres:
        # STORAGE=postgres (PG.md): the engine's own account and the primary's CA; no PocketBase credential.
        postgres_env, postgres_secrets = data.postgres.engine_env()
        extra_env.update(postgres_env)
        extra_secret_env.update(postgres_secrets)
    sidecars: list[ContainerSpec] = []
    if model.grafana_cloud is not None and signals.grafana_cloud is not None and signals.images is not None:
        extra_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = model.grafana_cloud.otlp_endpoint
        if signals.otlp_headers is not None:
            extra_secret_env["OTEL_EXPORTER_OTLP_HEADERS"] = signals.otlp_headers
        if engine_size.backend == "cloudrun":
            sidecars.append(cloud_telemetry.engine_sidecar(signals.telemetry.layout.engine_agent, signals.grafana_cloud,
                                                           model.environment, signals.images))
    engine = Engine("engine", EngineArgs(
        environment=model.environment,
        size=engine_size,
        targets=targets,
        tenants=[TenantEntry(t.slug, t.currency) for t in model.tenants],
        pocketbase_url=data.pocketbase_url,
        pocketbase_email=data.database.engine_account_email,
        pocketbase_password=data.database.engine_account_password,
        redis_url=data.cache.url,
        public_hostname=api_hostname(zone.name),
        registry=registry if engine_size.backend != "docker" else None,
        prebuilt_image=model.engine_image,
        extra_env=extra_env,
        extra_secret_env=extra_secret_env,
        edge_gate=origin_gate,
        sidecars=sidecars,
        storage="postgres" if serving_postgres else "pocketbase",
    ))
    if data.postgres is not None and targets.cloudrun is not None and model.gcp is not None \
            and targets.cloudrun.vpc_network is not None and targets.cloudrun.vpc_subnetwork is not None:
        # The schema is applied by its owner, in a job the deploy runs before the engine's rollout (PG.md), declared
        # with Cloud SQL (also before the engine serves from it) and as the database component's child, so that
        # `pulumi up --target '...::platform:database:Postgres**'` creates it with the instance (the runbook).
        # It also creates the engine's role, with the engine's password (components/postgres.py).
        migrate_env, migrate_secrets = data.postgres.migrate_env()
        migrate_job("engine-migrate", MigrateJobArgs(
            environment=model.environment, project=model.gcp.project, region=model.gcp.region, image=engine.image,
            network=targets.cloudrun.vpc_network, subnetwork=targets.cloudrun.vpc_subnetwork,
            env=migrate_env, secret_env=migrate_secrets, deletion_protection=model.environment == "prod"),
            data.postgres)
    return Api(engine, [*records, *engine.endpoint.dns], origin_auth, origin_gate)


def standby_database(model: StackModel, registry: Registry | None, placement: Placement, data: Data,
                     api: Api) -> None:
    """prod's standby PocketBase in the failover region: it starts (or stops, failing back) only once the edge's
    traffic left the other region, and a drain later: never two writers of one replica (components/standby.py)."""
    targets, standby, cache = placement.targets, placement.standby, data.cache
    if (standby is None or targets.gce is None or registry is None or model.gcp is None
            or cache.failover_vm_subnetwork is None):
        return
    drain = time.Sleep("failover-drain", create_duration=DRAIN, triggers={"serving": model.gcp.serving},
                       opts=pulumi.ResourceOptions(depends_on=list(api.engine.endpoint.routing)))
    if placement.drained is not None:
        placement.drained.set_result(drain)
    # No dependency on the image's build: a failover must not wait for a push; its name is its content.
    StandbyDatabase("database-standby", StandbyDatabaseArgs(
        spec=data.database.spec(pocketbase_image(registry)),
        target=standby_target(targets.gce, standby.region, cache.failover_vm_subnetwork,
                              (cache.failover_subnet_range or "",), standby.serving, [drain])))


def cloud_telemetry_layer(model: StackModel, targets: Targets, data: Data, api: Api, signals: Observability) -> None:
    """On the cloud backends: the agents that scrape the services and ship metrics and logs to Grafana Cloud."""
    if signals.grafana_cloud is None or signals.images is None:
        return
    endpoints = {"commission-engine": api.engine.endpoint, "pocketbase": data.database.endpoint,
                 "redis": data.cache.endpoint}
    railway_ids = {name: service_id for name, endpoint in endpoints.items() if endpoint is not None
                   and (service_id := cloud_telemetry.railway_service_id(endpoint)) is not None}
    metrics_token = model.railway_metrics_token
    # The telemetry service reads provider APIs (Cloud Monitoring, Railway) on the internet: no Direct VPC egress.
    # Above all not the engine's subnetwork, which is what PocketBase's firewall admits: Direct VPC egress
    # supports no "network tags or service identity in ingress firewall rules", only "the whole subnet's IP
    # address range" (cloud.google.com/run/docs/configuring/vpc-direct-vpc), so that subnetwork is the engine's
    # alone (tests/test_pocketbase_access.py).
    if targets.cloudrun is not None:
        targets = dataclasses.replace(targets, cloudrun=dataclasses.replace(
            targets.cloudrun, vpc_network=None, vpc_subnetwork=None, standby=None))
    cloud_telemetry.CloudTelemetry("telemetry", cloud_telemetry.CloudTelemetryArgs(
        environment=model.environment, layout=signals.telemetry.layout,
        engine_backend=model.services["engine"].backend, targets=targets, grafana=signals.grafana_cloud,
        redis_url=data.cache.url if model.services["redis"].backend == "railway" else None,
        # On Railway the exporter's token comes from the deploy job's RAILWAY_METRICS_TOKEN (#22 item 1): None here.
        railway=cloud_telemetry.RailwaySide(model.railway.environment_id, railway_ids,
                                            metrics_token.output() if metrics_token is not None else None)
        if model.railway is not None and railway_ids
        and (metrics_token is not None or model.services["engine"].backend == "railway") else None,
        gcp_project=model.gcp.project if model.gcp else None,
        log_retention_days=model.profile.disaster_recovery.log_retention_days, image=signals.images,
        postgres=data.postgres is not None))


def edge(model: StackModel, api: Api, storefront: Storefront) -> Edge:
    """The zone: TLS, WAF, rate limits, cache, the API's and the storefronts' records and the headers the origins
    require of it."""
    return Edge("edge", edge_args(model, api.records, api.origin_auth, storefront.edge_key,
                                  origin_gate=api.origin_gate, storefront_auth=storefront.edge_auth))


def tenants(model: StackModel, storefront: Storefront, zone_edge: Edge) -> dict[str, TenantSite]:
    """Per tenant: its platform host and custom domains at the edge and on the storefront."""
    return {tenant.slug: TenantSite(f"tenant-{tenant.slug}", TenantSiteArgs(
        slug=tenant.slug,
        platform_hostname=tenant.platform_hostname,
        custom_domains=tenant.custom_domains,
        zone_id=model.zone.zone_id,
        vercel_project_id=storefront.project_id,
        saas_cname_target=zone_edge.saas_cname_target,
        vercel_team_id=model.frontend.team_id,
        fallback_origin=zone_edge.fallback_origin,
    )) for tenant in model.tenants}


def alerting(model: StackModel, signals: Observability, zone_edge: Edge) -> None:
    """The SLO rules, contact points and dashboards, in the stack's own Grafana on docker, else at `grafana:url`."""
    alerting_opts: pulumi.ResourceOptions | None = None
    provisioned_dashboards: frozenset[str] = frozenset()
    if signals.self_hosted is not None:
        # The stack's own Grafana, not `grafana:url`: the alerting resources go where the rules' data is. Its
        # provider calls https://grafana.<zone>, so it waits for Grafana, the tunnel's route and connector, and the
        # zone's record of that host (declared by the edge): before the record, the name does not resolve.
        stack, tunnel, grafana_host = signals.self_hosted
        # Grafana answers only behind Cloudflare Access (#22 item 11): the alert recipients by e-mail, this
        # provider by a service token; so it waits for the application too.
        access = OperatorAccess("grafana-access", AccessArgs(
            hostname=grafana_host, zone_id=model.zone.zone_id, account_id=model.zone.account_id,
            environment=model.environment, operators=model.alerts.emails))
        grafana_provider = grafana.Provider(
            "grafana-selfhosted", url=f"https://{grafana_host}",
            auth=pulumi.Output.concat("admin:", stack.grafana_admin_password),
            http_headers=access.headers,
            opts=pulumi.ResourceOptions(depends_on=[*stack.grafana.resources, *tunnel.ready,
                                                    zone_edge.records[grafana_host], access.application]))
        alerting_opts = pulumi.ResourceOptions(providers=[grafana_provider])
        provisioned_dashboards = stack.provisioned_dashboard_uids
    Alerting("alerting", AlertingArgs(
        environment=model.environment,
        spec=signals.telemetry.spec,
        prometheus_datasource_uid=model.alerts.prometheus_datasource_uid,
        emails=model.alerts.emails,
        slack_webhook_url=model.alerts.slack_webhook_url.output(),
        file_provisioned_dashboards=provisioned_dashboards,
    ), opts=alerting_opts)


def outputs(model: StackModel, api: Api, sites: dict[str, TenantSite]) -> None:
    """What the stack tells its operators: its URL, image, each tenant's URLs and the DNS records its owner adds."""
    pulumi.export("environment", model.environment)
    pulumi.export("apiUrl", f"https://{api_hostname(model.zone.name)}")
    pulumi.export("engineImage", api.engine.image)
    pulumi.export("tenants", {slug: {
        "urls": [f"https://{h}" for h in site.hostnames],
        "dnsRecordsForTenant": [{"name": r.name, "type": r.type, "value": r.value} for r in site.dns_instructions],
    } for slug, site in sites.items()})
    # No output carries a credential: Stack Read would read it (#22 item 6). A tenant's keys go to a secret of its
    # own that only the deploy account reads (prod), or stay in the state (`python -m infra tenant-keys`); the
    # settings key is in the secret PocketBase's VM reads (components/backends/gce.py).
    if model.gcp is not None:
        declare_tenant_secrets(model.gcp.project, model.environment, api.engine.tenant_keys)


def run_under_pulumi() -> None:
    """`pulumi up`/`preview`: read the engine's config; a mistake stops before any resource."""
    try:
        model = load_model(RawConfig.from_pulumi_runtime())
    except ConfigError as err:
        # RunError ends the program with this message and no traceback.
        raise pulumi.RunError(f"invalid stack config:\n{err}") from None
    declare(model)
