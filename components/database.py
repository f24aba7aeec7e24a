"""The database layer: PocketBase with one replica on a persistent volume, daily backups (L3, C2, C7, S4).

PocketBase is SQLite: it scales vertically only, so it runs exactly one replica, sized per profile
(1 vCPU / 2 GB, up to 2 / 4 at peaks). The image is built from `components/pocketbase`, whose
migration applies the backup settings (cron, S3 storage) from the environment at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

from components.backends.service import ContainerSpec, Endpoint
from components.backends.targets import Targets, deploy
from components.images import COMPONENTS_DIR, Registry, build_image
from stacks.profile import ServiceProfile

DATA_DIR = "/pb/pb_data"
PORT = 8090


@dataclass(frozen=True)
class BackupTarget:
    bucket: str
    endpoint: str
    region: str
    access_key_id: str
    secret_access_key: pulumi.Input[str]


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


def pocketbase_spec(args: DatabaseArgs, image: pulumi.Input[str], superuser_password: pulumi.Input[str],
                    encryption_key: pulumi.Input[str]) -> ContainerSpec:
    env: dict[str, pulumi.Input[str]] = {
        "PB_SUPERUSER_EMAIL": args.superuser_email,
        "PB_BACKUP_CRON": args.backup_cron,
        "PB_BACKUP_MAX_KEEP": str(args.backup_retention_days),
    }
    secret_env: dict[str, pulumi.Input[str]] = {
        "PB_SUPERUSER_PASSWORD": superuser_password,
        # Encrypts the settings (S3 keys among them) inside the database.
        "PB_ENCRYPTION_KEY": encryption_key,
    }
    if args.backups is not None:
        env |= {"PB_BACKUP_S3_BUCKET": args.backups.bucket, "PB_BACKUP_S3_ENDPOINT": args.backups.endpoint,
                "PB_BACKUP_S3_REGION": args.backups.region, "PB_BACKUP_S3_ACCESS_KEY": args.backups.access_key_id}
        secret_env["PB_BACKUP_S3_SECRET"] = args.backups.secret_access_key
    return ContainerSpec(
        name="pocketbase",
        image=image,
        port=PORT,
        size=args.size,
        env=env,
        secret_env=secret_env,
        health_path="/api/health",
        healthcheck_command=["wget", "-q", "--spider", f"http://127.0.0.1:{PORT}/api/health"],
        volume_path=DATA_DIR,
    )


class Database(pulumi.ComponentResource):
    endpoint: Endpoint
    superuser_email: str
    superuser_password: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:database:PocketBase", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Generated once per stack and kept in its state: later updates reuse them.
        password = random.RandomPassword(f"{name}-superuser-password", length=40, special=False, opts=child)
        encryption_key = random.RandomPassword(f"{name}-settings-key", length=32, special=False, opts=child)
        self.superuser_email = args.superuser_email
        self.superuser_password = pulumi.Output.secret(password.result)

        image = build_image(f"{name}-image", COMPONENTS_DIR / "pocketbase", "pocketbase", args.registry, self)
        spec = pocketbase_spec(args, image, password.result, encryption_key.result)
        self.endpoint = deploy(name, spec, args.targets, self)
        self.register_outputs({})
