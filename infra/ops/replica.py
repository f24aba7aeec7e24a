"""Where a stack keeps PocketBase's backups and its Litestream replica, from the stack's model.

A stack with a Google Cloud project declares its own buckets there (`components.database`): the daily
backups in its region and, with a failover region, the continuous replica in that region, so the
replica survives the loss of the primary region (C8). Without a project, the replica goes beside the
backups in the bucket `platform:backups` names; the docker backend keeps both on its volume.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.database import GCS_ENDPOINT, REPLICA_PATH, backups_bucket_name, replica_bucket_name
from components.pocketbase.drtool import Replica
from infra.model import StackModel


@dataclass(frozen=True)
class Storage:
    backups_bucket: str
    backups_region: str
    replica: Replica
    declared: bool
    """The stack declares the buckets (in its own cloud account), or `platform:backups` names one."""


def storage_of(model: StackModel) -> Storage | None:
    if model.gcp is not None and model.services["pocketbase"].backend != "docker":
        replica_region = model.gcp.failover_region or model.gcp.region
        return Storage(backups_bucket_name(model.gcp.project), model.gcp.region,
                       Replica(replica_bucket_name(model.gcp.project, model.gcp.failover_region), REPLICA_PATH,
                               GCS_ENDPOINT, replica_region, force_path_style=True), declared=True)
    if model.backups is not None:
        b = model.backups
        return Storage(b.bucket, b.region, Replica(b.bucket, REPLICA_PATH, b.endpoint, b.region), declared=False)
    return None
