"""PLAT-VM-002: PocketBase on a Compute Engine VM backs up at least daily, off the host outside
integration (C7: "Daily automatic snapshots of the database"), as PLAT-DATA-002 asks of containers.

The gce backend passes the container's plain settings as `-e KEY=VALUE` flags of the `docker run` in
the VM's cloud-init (components/backends/gce.py, `cloud_init`): PB_BACKUP_CRON, PB_BACKUP_S3_BUCKET and
PB_BACKUP_S3_ENDPOINT are read there (their secrets come from Secret Manager and are not judged here).
The user-data holds the secrets' version numbers, which the engine knows only at apply: a preview cannot
read it, the update's policy run does (the same holds for PLAT-DATA-006).

A cron is at least daily when its day-of-month, month and day-of-week fields are all `*` (crontab(5):
"the command is run when ... both day fields match", `*` matching every day); `0 3 * * 0` is weekly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Unknown, Verdict, stack_kind
from policies.rules.compute_vm import GCE_INSTANCE, vm_env, vm_role


def daily(cron: str) -> bool:
    fields = cron.split()
    return len(fields) == 5 and fields[2:] == ["*", "*", "*"]


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != GCE_INSTANCE or vm_role(resource) != "pocketbase":
        return NotApplicable("not a PocketBase VM")
    env = vm_env(resource)
    if isinstance(env, Unknown):
        return NotApplicable("the VM's user-data is known only at apply; the update's policy run judges it")
    if env is None:
        return ["cannot read the `docker run` of PocketBase's VM (metadata.user-data) to verify its backups"]
    problems: list[str] = []
    cron = env.get("PB_BACKUP_CRON", "")
    if not daily(cron):
        problems.append(f"backup schedule {cron!r} is not at least daily; expected e.g. '0 3 * * *' (C7)")
    if stack_kind(resource.stack) != "integration":
        if not env.get("PB_BACKUP_S3_BUCKET"):
            problems.append(f"backups stay on the VM's own disk in {resource.stack}; expected an S3 bucket "
                            "(PB_BACKUP_S3_BUCKET)")
        elif not env.get("PB_BACKUP_S3_ENDPOINT", "").startswith("https://"):
            problems.append("the backup endpoint is not HTTPS; expected backups encrypted in transit")
    return problems
