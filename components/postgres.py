"""The database layer on PostgreSQL (issue #26, A7, C2, C8): Cloud SQL for PostgreSQL in the engine's VPC.

Why Cloud SQL and not Supabase (which the architecture document names as an example): prod's engine already runs on
Cloud Run in a VPC of the stack's own Google Cloud project, and Cloud SQL lives in that project.
- A private address in the engine's VPC: private services access peers the VPC with Google's service producer
  network, and the instance gets an address there and no public one (`ipv4_enabled=False`), which the engine's
  Direct VPC egress reaches like Memorystore ("Connect from Cloud Run ... Direct VPC egress" to a private IP,
  https://cloud.google.com/sql/docs/postgres/connect-run#private-ip;
  https://cloud.google.com/sql/docs/postgres/configure-private-services-access). Supabase is reached over the
  internet (or AWS PrivateLink only, https://supabase.com/docs/guides/platform/privatelink): a public endpoint for the
  one part of the platform that must never have one.
- IAM-governed: who may administer, export, clone or delete the instance is the project's IAM and its audit log, as
  for every other resource here, and the policy pack reviews it; Supabase is a second identity plane with its own
  organisation members and API keys.
- The same alerting: Cloud SQL's metrics are in Cloud Monitoring (cloud.google.com/monitoring/api/metrics_gcp_p_z#
  gcp-cloudsql), which the telemetry service's stackdriver_exporter already reads for Cloud Run, the VM and
  Memorystore (components/observability/cloud.py), so the Postgres alerts are rules over metrics the pipeline already
  ships.
- High availability (a standby in another zone, `availability_type=REGIONAL`,
  https://cloud.google.com/sql/docs/postgres/high-availability), automated backups with point-in-time recovery
  (https://cloud.google.com/sql/docs/postgres/backup-recovery/pitr) and a cross-region read replica that can be
  promoted in the failover region (C8, https://cloud.google.com/sql/docs/postgres/replication/cross-region-replicas)
  are settings of one resource, checked by the policy pack (policies/rules/data_cloudsql.py).

What is declared: the private services access range and connection in the engine's VPC, the primary (REGIONAL in
prod, TLS only, no public address, backups + PITR, deletion protection at both levels, lock and slow-statement
logging), the cross-region replica where the profile runs a failover region, the database, one Cloud SQL user (the
schema owner, `migrator`), two generated passwords (the migrator's and the engine's), and the `engine-migrate` Cloud
Run job (`python -m engine migrate`, the engine's image) that applies the schema as the migrator before each engine
rollout (docs/runbooks/postgres.md). Each password goes to Secret Manager as a secret only its user's service account
reads (the engine's through components/backends/cloudrun.py, the job's here); the engine's password also goes to a
secret of the job's, which creates the engine's role with it.

The engine's role is not a `gcp.sql.User`: "All users you create using Cloud SQL are created as part of the
cloudsqlsuperuser role, and have the same set of attributes as the postgres user: CREATEROLE, CREATEDB, and LOGIN"
(https://cloud.google.com/sql/docs/postgres/users, "Other PostgreSQL users"; the provider's `database_roles` is
write-only, "will not be read from the API", so it could not even be checked). A CREATEROLE engine could, on
PostgreSQL 15, grant itself the migrator ("A role with CREATEROLE privilege can alter and drop other roles, too, as
well as grant or revoke membership in them", https://www.postgresql.org/docs/15/role-attributes.html) and from 16 on
still create roles and databases. `engine migrate` creates it as the migrator (which keeps its API user: it needs
cloudsqlsuperuser's CREATEROLE for that) with NOCREATEROLE NOCREATEDB NOINHERIT and no membership, and checks so on
every run (engine/migrate.py); PLAT-DATA-014 refuses a Cloud SQL user as a Cloud Run service's POSTGRES_USER.

PocketBase stays declared beside it (a decision, README "database"): the cut-over copies PocketBase into PostgreSQL
(`python -m infra migrate-db`), and its rollback resumes on PocketBase, so both exist until the migration is
verified; the engine itself is given only the PostgreSQL settings (STORAGE=postgres), not PocketBase's credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random
import pulumiverse_time as time

from components.backends.cloudrun import IAM_PROPAGATION

PORT = 5432
DATABASE = "commerce"
ENGINE_USER = "engine"
MIGRATOR_USER = "migrator"
MIGRATE_JOB = "engine-migrate"
MIGRATE_COMMAND = ("python", "-m", "engine", "migrate")
PSA_RANGE = "10.40.0.0"
PSA_PREFIX = 20
"""The range private services access allocates Cloud SQL's addresses from: /20, outside the platform's subnetworks
(10.20.0.0/16, 10.21.0.0/16), "a /24 at minimum, /16 recommended" for several services; one service here
(https://cloud.google.com/vpc/docs/configure-private-services-access#allocating-range)."""
MAINTENANCE = {"day": 7, "hour": 6, "update_track": "stable"}
"""Sunday 06:00 UTC (03:00 in São Paulo), the quietest hour of the week for the tenants' stores."""
BACKUP_START = "05:00"
RETAINED_BACKUPS = 30
LOG_RETENTION_DAYS = 7
"""Transaction logs for point-in-time recovery: the most Cloud SQL Enterprise keeps (1-7 days,
https://cloud.google.com/sql/docs/postgres/backup-recovery/configure-pitr; SQL-PITR-001)."""
DATABASE_FLAGS: tuple[tuple[str, str], ...] = (
    # The Postgres equivalents of what B1-B4 watch on SQLite: lock waits and slow statements in the log.
    ("log_lock_waits", "on"),
    ("deadlock_timeout", "1000"),
    ("log_min_duration_statement", "500"),
    ("log_temp_files", "0"),
    ("log_checkpoints", "on"),
    ("log_connections", "on"),
    ("log_disconnections", "on"),
)
"""Cloud SQL's supported flags (https://cloud.google.com/sql/docs/postgres/flags#list-flags-postgres)."""


@dataclass(frozen=True)
class PostgresArgs:
    environment: str
    project: str
    region: str
    network: pulumi.Input[str]
    """The engine's VPC (its id, `projects/P/global/networks/N`)."""
    tier: str
    disk_gb: int
    version: int
    high_availability: bool
    """prod: REGIONAL (a standby in a second zone)."""
    failover_region: str | None = None
    """Where the cross-region read replica runs (C8): prod's failover region."""
    deletion_protection: bool = True


class Postgres(pulumi.ComponentResource):
    host: pulumi.Output[str]
    """The primary's private address: POSTGRES_HOST."""
    ca_certificate: pulumi.Output[str]
    """The primary's server CA (PEM): POSTGRES_CA_CERT, verified as libpq's verify-ca does."""
    replica_host: pulumi.Output[str] | None
    replica_ca_certificate: pulumi.Output[str] | None
    engine_password: pulumi.Output[str]
    migrator_password: pulumi.Output[str]
    instance: gcp.sql.DatabaseInstance
    users: list[pulumi.Resource]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:database:Postgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env = args.environment
        # Private services access: a range in the VPC peered with Google's service producer network, where the
        # instance takes its address. The connection is kept on destroy: while any instance uses it, deleting it
        # fails ("ABANDON": the provider's documented choice for that).
        peering_range = gcp.compute.GlobalAddress(
            f"{name}-psa-range", project=args.project, name=f"platform-{env}-sql-psa", purpose="VPC_PEERING",
            address_type="INTERNAL", address=PSA_RANGE, prefix_length=PSA_PREFIX, network=args.network, opts=child)
        connection = gcp.servicenetworking.Connection(
            f"{name}-psa", network=args.network, service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[peering_range.name], deletion_policy="ABANDON", opts=child)
        protected = pulumi.ResourceOptions(parent=self, depends_on=[connection])
        self.instance = gcp.sql.DatabaseInstance(
            f"{name}-primary", project=args.project, region=args.region, name=f"platform-{env}-pg",
            database_version=f"POSTGRES_{args.version}", deletion_protection=args.deletion_protection,
            settings=_settings(args, primary=True), opts=protected)
        self.host = self.instance.private_ip_address
        self.ca_certificate = self.instance.server_ca_certs.apply(_first_ca)
        self.replica_host = self.replica_ca_certificate = None
        if args.failover_region is not None:
            replica = gcp.sql.DatabaseInstance(
                f"{name}-replica", project=args.project, region=args.failover_region,
                name=f"platform-{env}-pg-replica", database_version=f"POSTGRES_{args.version}",
                master_instance_name=self.instance.name, deletion_protection=args.deletion_protection,
                settings=_settings(args, primary=False), opts=protected)
            self.replica_host = replica.private_ip_address
            self.replica_ca_certificate = replica.server_ca_certs.apply(_first_ca)
        database = gcp.sql.Database(f"{name}-database", project=args.project, instance=self.instance.name,
                                    name=DATABASE, opts=child)
        engine_password = random.RandomPassword(f"{name}-engine-password", length=40, special=False, opts=child)
        migrator_password = random.RandomPassword(f"{name}-migrator-password", length=40, special=False, opts=child)
        self.engine_password = pulumi.Output.secret(engine_password.result)
        self.migrator_password = pulumi.Output.secret(migrator_password.result)
        # The migrator only: the engine's role is created by `engine migrate` (module doc).
        self.users = [gcp.sql.User(f"{name}-user-{MIGRATOR_USER}", project=args.project, instance=self.instance.name,
                                   name=MIGRATOR_USER, password=self.migrator_password, type="BUILT_IN",
                                   opts=pulumi.ResourceOptions(parent=self, depends_on=[database]))]
        self.register_outputs({})

    def engine_env(self) -> tuple[dict[str, pulumi.Input[str]], dict[str, pulumi.Input[str]]]:
        """The engine's settings (PG.md): plain and secret variables."""
        env: dict[str, pulumi.Input[str]] = {"STORAGE": "postgres", "POSTGRES_HOST": self.host,
                                             "POSTGRES_PORT": str(PORT), "POSTGRES_DB": DATABASE,
                                             "POSTGRES_USER": ENGINE_USER}
        secret: dict[str, pulumi.Input[str]] = {"POSTGRES_PASSWORD": self.engine_password,
                                                "POSTGRES_CA_CERT": self.ca_certificate}
        return env, secret

    def migrate_env(self) -> tuple[dict[str, pulumi.Input[str]], dict[str, pulumi.Input[str]]]:
        """`engine-migrate`'s settings (engine/migrate.py): the engine's address, database and role name, the
        migrator's account, and the engine's password, which the step sets on the role it creates; not the engine's
        POSTGRES_PASSWORD variable (the job never signs in as the engine)."""
        env, secret = self.engine_env()
        return ({**env, "POSTGRES_MIGRATOR_USER": MIGRATOR_USER},
                {"POSTGRES_CA_CERT": secret["POSTGRES_CA_CERT"], "POSTGRES_MIGRATOR_PASSWORD": self.migrator_password,
                 "POSTGRES_ENGINE_PASSWORD": self.engine_password})

    def standby_env(self) -> tuple[dict[str, pulumi.Input[str]], dict[str, pulumi.Input[str]]]:
        """The standby engine in the failover region dials the replica, which a failover promotes
        (docs/runbooks/postgres.md): its address and its own server CA."""
        if self.replica_host is None or self.replica_ca_certificate is None:
            return {}, {}
        return {"POSTGRES_HOST": self.replica_host}, {"POSTGRES_CA_CERT": self.replica_ca_certificate}


def _first_ca(certs: Sequence[gcp.sql.outputs.DatabaseInstanceServerCaCert]) -> str:
    return next((cert.cert for cert in certs if cert.cert), "")


def _settings(args: PostgresArgs, *, primary: bool) -> gcp.sql.DatabaseInstanceSettingsArgsDict:
    settings: gcp.sql.DatabaseInstanceSettingsArgsDict = {
        "tier": args.tier,
        # db-custom-* tiers are Enterprise only; PostgreSQL 16+ defaults to Enterprise Plus (SQL-EDITION-001).
        "edition": "ENTERPRISE",
        "disk_type": "PD_SSD",
        "disk_size": args.disk_gb,
        "disk_autoresize": True,
        "deletion_protection_enabled": args.deletion_protection,
        "ip_configuration": {
            "ipv4_enabled": False,
            "private_network": args.network,
            # TLS on every connection; the engine verifies the server against its CA (POSTGRES_CA_CERT).
            "ssl_mode": "ENCRYPTED_ONLY",
        },
        "database_flags": [{"name": flag, "value": value} for flag, value in DATABASE_FLAGS],
        "maintenance_window": dict(MAINTENANCE),  # pyright: ignore[reportAssignmentType]
        "insights_config": {"query_insights_enabled": True},
        "user_labels": {"platform-environment": args.environment},
    }
    if primary:
        settings["availability_type"] = "REGIONAL" if args.high_availability else "ZONAL"
        settings["backup_configuration"] = {
            "enabled": True, "point_in_time_recovery_enabled": True, "start_time": BACKUP_START,
            "transaction_log_retention_days": LOG_RETENTION_DAYS,
            "backup_retention_settings": {"retained_backups": RETAINED_BACKUPS, "retention_unit": "COUNT"},
        }
    else:
        # A read replica keeps no backups of its own (SQL-REPLICA-001); promoted, it is given them by the runbook.
        settings["availability_type"] = "ZONAL"
    return settings


@dataclass(frozen=True)
class MigrateJobArgs:
    environment: str
    project: str
    region: str
    image: pulumi.Input[str]
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    env: Mapping[str, pulumi.Input[str]]
    secret_env: Mapping[str, pulumi.Input[str]]
    deletion_protection: bool


def migrate_job(name: str, args: MigrateJobArgs, parent: pulumi.Resource) -> gcp.cloudrunv2.Job:
    """`engine-migrate`: the engine's image running `python -m engine migrate` as the schema owner, with its own
    service account (no project role) reading only its own secrets, as components/backends/cloudrun.py does for a
    service. The deploy runs it before the engine's rollout (infra/ops/rollout.py, `gcloud run jobs execute
    engine-migrate --wait`); its secrets are the migrator's, never given to the engine."""
    ident = f"{MIGRATE_JOB}-{args.environment}"
    child = pulumi.ResourceOptions(parent=parent)
    account = gcp.serviceaccount.Account(f"{name}-sa", project=args.project, account_id=ident[:30],
                                         display_name=f"{MIGRATE_JOB} ({args.environment}) on Cloud Run", opts=child)
    envs: list[gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgsDict] = [
        {"name": key, "value": value} for key, value in sorted(args.env.items())]
    waits: list[pulumi.Resource] = []
    for key, value in sorted(args.secret_env.items()):
        slug = key.lower().replace("_", "-")
        kept = pulumi.ResourceOptions(parent=parent, retain_on_delete=True)
        secret = gcp.secretmanager.Secret(f"{name}-{slug}", project=args.project, secret_id=f"{ident}-{slug}",
                                          replication={"auto": {}}, opts=kept)
        version = gcp.secretmanager.SecretVersion(f"{name}-{slug}-v", secret=secret.id,
                                                  secret_data=pulumi.Output.secret(value),
                                                  deletion_policy="ABANDON", opts=child)
        waits += [version, gcp.secretmanager.SecretIamMember(
            f"{name}-{slug}-reader", project=args.project, secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor", member=account.member, opts=kept)]
        envs.append({"name": key, "value_source": {"secret_key_ref": {"secret": secret.secret_id,
                                                                       "version": version.version}}})
    settled = time.Sleep(f"{name}-iam-propagation", create_duration=IAM_PROPAGATION,
                         triggers={"member": account.member},
                         opts=pulumi.ResourceOptions(parent=parent, depends_on=waits))
    return gcp.cloudrunv2.Job(
        name, project=args.project, location=args.region, name=MIGRATE_JOB,
        deletion_protection=args.deletion_protection,
        labels={"platform-public": "false", "platform-environment": args.environment},
        template={"task_count": 1, "parallelism": 1, "template": {
            "service_account": account.email, "max_retries": 0, "timeout": "900s",
            "containers": [{"name": MIGRATE_JOB, "image": args.image, "commands": list(MIGRATE_COMMAND),
                            "envs": envs, "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}],
            "vpc_access": {"egress": "PRIVATE_RANGES_ONLY",
                           "network_interfaces": [{"network": args.network, "subnetwork": args.subnetwork}]},
        }},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*waits, settled]))
