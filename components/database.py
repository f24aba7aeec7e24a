"""The database layer: PocketBase with one replica on a persistent volume, daily backups, continuous
replication and a scheduled restore test (L3, C2, C7, C8, S4, A5).

PocketBase is SQLite: it scales vertically only, so it runs exactly one replica, sized per profile
(1 vCPU / 2 GB, up to 2 / 4 at peaks). The image is built from `components/pocketbase`: its bootstrap
hook applies the backup settings (cron, S3 storage) from the environment at every start, and, when a
replica is given, Litestream replicates the database to it continuously and the image's drtool
restores the latest replica into a scratch PocketBase on a schedule, verifies it and records
`backup_restore_last_success_timestamp_seconds` and `pocketbase_replica_lag_seconds`.

The superuser's password goes to PocketBase only. The engine signs in with an account of its own, in an
auth collection its collections' API rules admit and nothing else does; the image's hook applies the
engine's schema and upserts that account from PB_ENGINE_EMAIL / PB_ENGINE_PASSWORD at every start (#11.2,
components/pocketbase/pb_hooks/engine_schema.pb.js), so no engine instance migrates or holds a credential
that could change the schema, the settings or the backups.

`DisasterRecoveryStorage` declares, in the stack's own Google Cloud project, the buckets the backups
and the replica go to: Google-managed AES-256 encryption at rest (Cloud Storage encrypts every object
"using AES-256" before it is written, cloud.google.com/docs/security/encryption/default-encryption),
object versioning with noncurrent versions kept `retention_days`, soft delete, uniform bucket-level
access and public access prevention. PocketBase's backups and Litestream speak S3, so they reach
Cloud Storage through its XML API with an HMAC key of a dedicated service account
(cloud.google.com/storage/docs/interoperability) that holds objectAdmin on these buckets only.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random
import pulumi_tls as tls

from components.backends.service import ContainerSpec, Endpoint
from components.backends.targets import Targets, deploy
from components.images import COMPONENTS_DIR, Registry, build_image
from stacks.profile import ServiceProfile

BACKUP_SECRET_ACCESS_KEY_ENV = "BACKUP_SECRET_ACCESS_KEY"
"""The deploy job's variable holding the S3 secret of `platform:backups` (issue #22 item 1): it can write the backups,
so it is in no stack file a preview decrypts; the Railway provider sets it on PocketBase when it applies."""

IMAGE_CONTEXT = COMPONENTS_DIR / "pocketbase"
DATA_DIR = "/pb/pb_data"
PORT = 8090
TLS_PORT = 8443
"""Where PocketBase's image serves TLS (pocketbase/tlsproxy.py) when the stack gives it a certificate: PocketBase
itself then listens on 127.0.0.1:8090 only."""
TLS_VALIDITY_HOURS = 2 * 365 * 24
TLS_EARLY_RENEWAL_HOURS = 120 * 24
"""The certificate is generated again by the first `pulumi up` within 120 days of its end (the provider's
`early_renewal_hours`): deploys follow every merge, so it never lapses unless prod sees no deploy for 20 months."""
GCS_ENDPOINT = "https://storage.googleapis.com"
REPLICA_PATH = "litestream/pocketbase"
RESTORE_ACCOUNT_ID = "pocketbase-restore"
"""The account `python -m infra restore` acts as on a stack that declares its buckets: it reads them, nothing else."""
SOFT_DELETE_SECONDS = 7 * 86400
"""Cloud Storage's default soft-delete window (7 days; 7 to 90 allowed): a deleted or overwritten
object can be brought back within it, even after its noncurrent version expired."""


def backups_bucket_name(project: str) -> str:
    return f"{project}-pocketbase-backups"


def replica_bucket_name(project: str, failover_region: str | None) -> str:
    """In the failover region when there is one; beside the backups otherwise."""
    return f"{project}-pocketbase-replica" if failover_region else backups_bucket_name(project)


@dataclass(frozen=True)
class BackupTarget:
    bucket: str
    endpoint: str
    region: str
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str] | None
    """None: the deploy job's BACKUP_SECRET_ACCESS_KEY holds it (`platform:backups`, Railway only, #22 item 1)."""
    force_path_style: bool = False
    grants: tuple[pulumi.Resource, ...] = ()
    """The IAM grants that let the key write the bucket, when the stack declares it: the VM's wait covers them."""


@dataclass(frozen=True)
class ReplicaTarget:
    """Where Litestream replicates the database (an S3-compatible bucket and a path in it)."""

    bucket: str
    path: str
    endpoint: str
    region: str
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str] | None
    """None: the deploy job's BACKUP_SECRET_ACCESS_KEY holds it (`platform:backups`, Railway only, #22 item 1)."""
    force_path_style: bool = False
    grants: tuple[pulumi.Resource, ...] = ()
    """The IAM grants that let the key write the bucket, when the stack declares it: the VM's wait covers them."""


@dataclass(frozen=True)
class DatabaseArgs:
    environment: str
    size: ServiceProfile
    targets: Targets
    superuser_email: str
    backup_cron: str
    backup_retention_days: int
    registry: Registry | None = None
    """Left out (docker backend), the image is built on the Docker host and not pushed."""
    backups: BackupTarget | None = None
    """Left out, PocketBase keeps its daily backups on its own volume."""
    replica: ReplicaTarget | None = None
    """Left out, nothing is replicated (the docker backend: one host, one volume)."""
    restore_test_interval_hours: int = 24
    """How often the image restores the latest replica into a scratch PocketBase and verifies it."""
    otlp_endpoint: str | None = None
    otlp_headers: pulumi.Input[str] | None = None
    """Where the restore test pushes its metrics (OTLP/HTTP, a job is not scraped) and its credentials:
    the stack's Grafana, which the DR alerts query. Left out, the metrics are only printed."""
    tls_addresses: tuple[str, ...] = ()
    """The IP addresses the engine reaches PocketBase at (the VM's, its standby's): given, PocketBase serves TLS on
    TLS_PORT with a certificate generated here for exactly those addresses, which the engine pins
    (`Database.tls_certificate`, POCKETBASE_CA_CERT). Left out, plain HTTP (a private network of one host, or
    Railway's, whose own transport encryption applies)."""


def engine_account_email(superuser_email: str) -> str:
    """The engine's account, in the superuser's domain. An identity only: PocketBase sends it no mail."""
    return "commission-engine@" + superuser_email.rpartition("@")[2]


def _b64(pem: str) -> str:
    """One line: the VM's env file and docker's `-e` take no newline."""
    return base64.b64encode(pem.encode()).decode()


def pocketbase_spec(args: DatabaseArgs, image: pulumi.Input[str], superuser_password: pulumi.Input[str],
                    encryption_key: pulumi.Input[str], engine_account_password: pulumi.Input[str],
                    tls_pair: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None) -> ContainerSpec:
    env: dict[str, pulumi.Input[str]] = {
        "PB_SUPERUSER_EMAIL": args.superuser_email,
        "PB_ENGINE_EMAIL": engine_account_email(args.superuser_email),
        "PB_BACKUP_CRON": args.backup_cron,
        "PB_BACKUP_MAX_KEEP": str(args.backup_retention_days),
    }
    secret_env: dict[str, pulumi.Input[str]] = {
        "PB_SUPERUSER_PASSWORD": superuser_password,
        "PB_ENGINE_PASSWORD": engine_account_password,
        # Encrypts the settings (S3 keys among them) inside the database.
        "PB_ENCRYPTION_KEY": encryption_key,
    }
    # Set from the deploy job's environment by the Railway provider (deploy_env): a `platform:backups` key's secret.
    deploy_env: dict[str, str] = {}
    if args.backups is not None:
        env |= {"PB_BACKUP_S3_BUCKET": args.backups.bucket, "PB_BACKUP_S3_ENDPOINT": args.backups.endpoint,
                "PB_BACKUP_S3_REGION": args.backups.region,
                "PB_BACKUP_S3_FORCE_PATH_STYLE": str(args.backups.force_path_style).lower()}
        # The key's id with its secret: a declared HMAC key's id is known only once it exists, and a plain
        # variable known at preview lets the policy pack read the rest of the environment.
        secret_env["PB_BACKUP_S3_ACCESS_KEY"] = args.backups.access_key_id
        if args.backups.secret_access_key is not None:
            secret_env["PB_BACKUP_S3_SECRET"] = args.backups.secret_access_key
        else:
            deploy_env["PB_BACKUP_S3_SECRET"] = BACKUP_SECRET_ACCESS_KEY_ENV
    if args.replica is not None:
        r = args.replica
        env |= {"LITESTREAM_BUCKET": r.bucket, "LITESTREAM_PATH": r.path, "LITESTREAM_ENDPOINT": r.endpoint,
                "LITESTREAM_REGION": r.region, "LITESTREAM_FORCE_PATH_STYLE": str(r.force_path_style).lower(),
                "PB_RESTORE_TEST_INTERVAL_SECONDS": str(args.restore_test_interval_hours * 3600)}
        secret_env["LITESTREAM_ACCESS_KEY_ID"] = r.access_key_id
        if r.secret_access_key is not None:
            secret_env["LITESTREAM_SECRET_ACCESS_KEY"] = r.secret_access_key
        else:
            deploy_env["LITESTREAM_SECRET_ACCESS_KEY"] = BACKUP_SECRET_ACCESS_KEY_ENV
        if args.otlp_endpoint is not None and args.otlp_headers is not None:
            # drtool.py pushes the restore test's gauges here, as the OpenTelemetry SDK would read them.
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp_endpoint
            secret_env["OTEL_EXPORTER_OTLP_HEADERS"] = args.otlp_headers
    if tls_pair is not None:
        # The image's entrypoint writes them to files for tlsproxy.py; the key, like every secret, by Secret Manager.
        env["PB_TLS_CERT_B64"] = pulumi.Output.from_input(tls_pair[0]).apply(_b64)
        secret_env["PB_TLS_KEY_B64"] = pulumi.Output.secret(pulumi.Output.from_input(tls_pair[1]).apply(_b64))
    return ContainerSpec(
        name="pocketbase",
        image=image,
        port=TLS_PORT if tls_pair is not None else PORT,
        size=args.size,
        env=env,
        secret_env=secret_env,
        health_path="/api/health",
        healthcheck_command=["wget", "-q", "--spider", f"http://127.0.0.1:{PORT}/api/health"],
        volume_path=DATA_DIR,
        deploy_env=deploy_env,
    )


class Database(pulumi.ComponentResource):
    endpoint: Endpoint
    superuser_email: str
    superuser_password: pulumi.Output[str]
    """PocketBase's only: never given to the engine."""
    engine_account_email: str
    engine_account_password: pulumi.Output[str]
    """The engine's own account: what the engine signs in with."""
    settings_key: pulumi.Output[str]
    """Opens the settings encrypted in the database: a restore verifies with it."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:database:PocketBase", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Generated once per stack and kept in its state: later updates reuse them.
        password = random.RandomPassword(f"{name}-superuser-password", length=40, special=False, opts=child)
        encryption_key = random.RandomPassword(f"{name}-settings-key", length=32, special=False, opts=child)
        account_password = random.RandomPassword(f"{name}-engine-account-password", length=40, special=False,
                                                 opts=child)
        self.superuser_email = args.superuser_email
        self.superuser_password = pulumi.Output.secret(password.result)
        self.engine_account_email = engine_account_email(args.superuser_email)
        self.engine_account_password = pulumi.Output.secret(account_password.result)
        self.settings_key = pulumi.Output.secret(encryption_key.result)

        self._args = args
        self.tls_certificate: pulumi.Output[str] | None = None
        """PEM of the certificate PocketBase serves on TLS_PORT (public): the engine's POCKETBASE_CA_CERT."""
        self._tls_pair: tuple[pulumi.Output[str], pulumi.Output[str]] | None = None
        if args.tls_addresses:
            # Self-signed, for exactly the addresses the engine dials: the engine trusts this certificate alone
            # and checks the address against its subjectAltName (engine/adapters/pocketbase.py `tls_context`), so
            # neither a public CA nor a name in DNS is involved. The key lives in the state (a secret output of
            # `tls:PrivateKey`, registry.terraform.io/providers/hashicorp/tls/latest/docs/resources/private_key)
            # and on the VM through Secret Manager; ECDSA P-256, which every TLS 1.2+ client takes.
            key = tls.PrivateKey(f"{name}-tls-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
            cert = tls.SelfSignedCert(
                f"{name}-tls-cert", private_key_pem=key.private_key_pem,
                subject={"common_name": f"pocketbase-{args.environment}"},
                ip_addresses=list(args.tls_addresses), validity_period_hours=TLS_VALIDITY_HOURS,
                early_renewal_hours=TLS_EARLY_RENEWAL_HOURS, is_ca_certificate=False,
                allowed_uses=["digital_signature", "key_encipherment", "server_auth"], opts=child)
            self.tls_certificate = cert.cert_pem
            self._tls_pair = (cert.cert_pem, pulumi.Output.secret(key.private_key_pem))
        image = build_image(f"{name}-image", IMAGE_CONTEXT, "pocketbase", args.registry, self)
        endpoint = deploy(name, self.spec(image), args.targets, self)
        if self._tls_pair is not None:
            endpoint = dataclasses.replace(endpoint, private_url=endpoint.private_url.apply(
                lambda url: "https://" + url.removeprefix("http://")))
        self.endpoint = endpoint
        self.register_outputs({})

    def spec(self, image: pulumi.Input[str]) -> ContainerSpec:
        """This PocketBase as a container running `image`, with its settings and generated secrets: the
        standby in the failover region runs the same one (components/standby.py)."""
        return pocketbase_spec(self._args, image, self.superuser_password, self.settings_key,
                               self.engine_account_password, self._tls_pair)


ACCESS_LOG_DAYS = 90
"""S5: the audit trail, reads of the data included, is kept 90 days."""
STORAGE_ANALYTICS = "group:cloud-storage-analytics@google.com"
"""The identity Cloud Storage writes usage logs as (cloud.google.com/storage/docs/access-logs)."""


@dataclass(frozen=True)
class StorageArgs:
    project: str
    region: str
    failover_region: str | None
    retention_days: int
    """Noncurrent (overwritten or deleted) object versions are kept this long."""


class DisasterRecoveryStorage(pulumi.ComponentResource):
    """The backups' and the replica's buckets in the stack's own project, and the key that writes them."""

    backups: BackupTarget
    replica: ReplicaTarget
    hmac_access_id: pulumi.Output[str]
    hmac_secret: pulumi.Output[str]
    """The writers' key: only in the secrets PocketBase's VMs read (components/backends/gce.py), never an output."""
    restore_account_email: pulumi.Output[str]

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:database:DisasterRecoveryStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(
            f"{name}-writer", account_id="pocketbase-dr", project=args.project,
            display_name="PocketBase backups and replica (HMAC key for the S3-compatible XML API)", opts=child)
        # `python -m infra restore` reads the buckets as this account, never with the writers' key (#22 item 6): an
        # operator acts as it with their own short-lived Google credentials (`gcloud auth application-default login
        # --impersonate-service-account`, cloud.google.com/docs/authentication/use-service-account-impersonation),
        # and Litestream's `gs` client reads with those application default credentials
        # (github.com/benbjohnson/litestream gs/replica_client.go, `storage.NewClient`). objectViewer lists and reads
        # objects and can change nothing (cloud.google.com/storage/docs/access-control/iam-roles). No key is made.
        restorer = gcp.serviceaccount.Account(
            f"{name}-restore", account_id=RESTORE_ACCOUNT_ID, project=args.project,
            display_name="PocketBase restore (reads the backups and the replica)", opts=child)
        self.restore_account_email = restorer.email
        locations = {backups_bucket_name(args.project): args.region}
        locations[replica_bucket_name(args.project, args.failover_region)] = args.failover_region or args.region
        buckets: list[gcp.storage.Bucket] = []
        grants: list[pulumi.Resource] = []
        # Every request to the buckets leaves a record (issue #22 item 12, S5): usage logs of each bucket into
        # an access-log bucket kept 90 days (checkov CKV_GCP_62; cloud.google.com/storage/docs/access-logs:
        # Cloud Storage writes them as cloud-storage-analytics@google.com, which needs objectCreator there),
        # and Data Access audit logs naming the principal into the _Default log bucket (90 days, PLAT-LOG-001).
        access_logs_name = f"{args.project}-pocketbase-access-logs"
        access_logs = gcp.storage.Bucket(
            access_logs_name, name=access_logs_name, project=args.project, location=args.region.upper(),
            storage_class="STANDARD", uniform_bucket_level_access=True, public_access_prevention="enforced",
            # No versioning: "Retention policies and Object Versioning are mutually exclusive"
            # (cloud.google.com/storage/docs/bucket-lock). The retention policy keeps every log from deletion or
            # replacement for 90 days, which is what versioning would guard; past that a lifecycle rule deletes it
            # (an object's `age` counts days since its creation: cloud.google.com/storage/docs/lifecycle#age).
            retention_policy={"retention_period": str(ACCESS_LOG_DAYS * 86400)},
            lifecycle_rules=[{"action": {"type": "Delete"}, "condition": {"age": ACCESS_LOG_DAYS + 1}}],
            labels={"platform-role": "access-logs"}, force_destroy=False, opts=child)
        gcp.storage.BucketIAMMember(
            f"{access_logs_name}-writer", bucket=access_logs.name, role="roles/storage.objectCreator",
            member=STORAGE_ANALYTICS, opts=child)
        gcp.projects.IAMAuditConfig(
            f"{name}-storage-data-access", project=args.project, service="storage.googleapis.com",
            audit_log_configs=[{"log_type": "DATA_READ"}, {"log_type": "DATA_WRITE"}], opts=child)
        for bucket_name, location in locations.items():
            role = "backups-and-replica" if len(locations) == 1 else (
                "backups" if bucket_name == backups_bucket_name(args.project) else "replica")
            bucket = gcp.storage.Bucket(
                bucket_name, name=bucket_name, project=args.project, location=location.upper(),
                storage_class="STANDARD", uniform_bucket_level_access=True, public_access_prevention="enforced",
                versioning={"enabled": True},
                soft_delete_policy={"retention_duration_seconds": SOFT_DELETE_SECONDS},
                lifecycle_rules=[{"action": {"type": "Delete"},
                                  "condition": {"days_since_noncurrent_time": args.retention_days,
                                                "with_state": "ARCHIVED"}}],
                labels={"platform-role": "pocketbase-dr", "platform-dr-content": role},
                logging={"log_bucket": access_logs.name, "log_object_prefix": bucket_name},
                force_destroy=False, opts=pulumi.ResourceOptions(parent=self, protect=True))
            grants.append(gcp.storage.BucketIAMMember(
                f"{bucket_name}-writer", bucket=bucket.name, role="roles/storage.objectAdmin",
                member=account.email.apply(lambda email: f"serviceAccount:{email}"), opts=child))
            gcp.storage.BucketIAMMember(
                f"{bucket_name}-restore", bucket=bucket.name, role="roles/storage.objectViewer",
                member=restorer.email.apply(lambda email: f"serviceAccount:{email}"), opts=child)
            buckets.append(bucket)
        key = gcp.storage.HmacKey(f"{name}-hmac", project=args.project, service_account_email=account.email,
                                  opts=child)
        self.hmac_access_id = key.access_id
        self.hmac_secret = pulumi.Output.secret(key.secret)
        self.backups = BackupTarget(backups_bucket_name(args.project), GCS_ENDPOINT, args.region, key.access_id,
                                    self.hmac_secret, force_path_style=True, grants=tuple(grants))
        self.replica = ReplicaTarget(replica_bucket_name(args.project, args.failover_region), REPLICA_PATH,
                                     GCS_ENDPOINT, args.failover_region or args.region, key.access_id,
                                     self.hmac_secret, force_path_style=True, grants=tuple(grants))
        self.register_outputs({"buckets": [b.name for b in buckets]})
