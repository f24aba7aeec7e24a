"""Where a stack keeps PocketBase's backups and its Litestream replica, from the stack's model.

A stack with a Google Cloud project declares its own buckets there (`components.database`): the daily
backups in its region and, with a failover region, the continuous replica in that region, so the
replica survives the loss of the primary region (C8). Without a project, the replica goes beside the
backups in the bucket `platform:backups` names; the docker backend keeps both on its volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.database import (
    GCS_ENDPOINT,
    REPLICA_PATH,
    BackupTarget,
    DisasterRecoveryStorage,
    ReplicaTarget,
    StorageArgs,
    backups_bucket_name,
    replica_bucket_name,
)
from components.pocketbase.drtool import Replica
from infra.model import StackModel


@dataclass(frozen=True)
class Storage:
    backups_bucket: str
    backups_region: str
    replica: Replica
    declared: bool
    """The stack declares the buckets (in its own cloud account), or `platform:backups` names one."""


def _failover_region(model: StackModel) -> str | None:
    enabled = model.profile.disaster_recovery.failover_region_enabled
    return model.gcp.failover_region if model.gcp is not None and enabled else None


def storage_of(model: StackModel) -> Storage | None:
    if model.gcp is not None and model.services["pocketbase"].backend != "docker":
        failover = _failover_region(model)
        return Storage(backups_bucket_name(model.gcp.project), model.gcp.region,
                       Replica(replica_bucket_name(model.gcp.project, failover), REPLICA_PATH,
                               GCS_ENDPOINT, failover or model.gcp.region, force_path_style=True), declared=True)
    if model.backups is not None:
        b = model.backups
        return Storage(b.bucket, b.region, Replica(b.bucket, REPLICA_PATH, b.endpoint, b.region), declared=False)
    return None


def declare_storage(model: StackModel) -> tuple[BackupTarget | None, ReplicaTarget | None, pulumi.Output[str] | None]:
    """In the program: the buckets a stack with a project declares, or `platform:backups`; what PocketBase
    backs up and replicates to, where the replica is (the output `pocketbaseReplica`), and the restore account's
    email when the stack declares its buckets."""
    storage = storage_of(model)
    if storage is None:
        return None, None, None
    restorer: pulumi.Output[str] | None = None
    replica = storage.replica
    if storage.declared:
        assert model.gcp is not None
        declared = DisasterRecoveryStorage("pocketbase-dr", StorageArgs(
            model.gcp.project, model.gcp.region, _failover_region(model),
            model.profile.disaster_recovery.backup_retention_days))
        backups, target, restorer = declared.backups, declared.replica, declared.restore_account_email
    else:
        assert model.backups is not None
        b = model.backups
        # The key's secret can write the bucket: PocketBase's Railway service gets it from the deploy job's
        # BACKUP_SECRET_ACCESS_KEY when the provider applies, never from the stack file (#22 item 1).
        backups = BackupTarget(b.bucket, b.endpoint, b.region, b.access_key_id, None)
        target = ReplicaTarget(replica.bucket, replica.path, replica.endpoint, replica.region, b.access_key_id, None)
    # Where the replica is, never a key to it (#22 item 6): `python -m infra restore` reads a declared bucket as the
    # `pocketbase-restore` account (components/database.py) and a `platform:backups` bucket with that config's key.
    pulumi.export("pocketbaseReplica", {"url": replica.url(), "bucket": replica.bucket, "path": replica.path})
    return backups, target, restorer
