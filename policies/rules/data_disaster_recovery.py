"""PLAT-DATA-006: in production PocketBase is replicated continuously, backed up and restore-tested, into
buckets the stack declares in its own account: encrypted at rest, versioned against deletion and
overwrite, private, the replica in another region than the backups (C7, C8, S4, A5; issue #13).

Cloud Storage encrypts every object with AES-256 whether or not a key is named (Google-managed keys,
cloud.google.com/docs/security/encryption/default-encryption); a bucket that names a Cloud KMS key
(`encryption.defaultKmsKeyName`) uses it instead. Both are encryption at rest: what the rule refuses
is a bucket the stack does not declare (nobody shows how it is encrypted or kept), no versioning nor
retention policy (a deletion or an overwrite by the writer's key is final), public access allowed,
backups kept fewer days than asked, no scheduled restore test, or a replica in the primary's region.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import UNKNOWN, Finding, Resource, as_list, as_map, role, service_env, stack_kind

BUCKET = "gcp:storage/bucket:Bucket"
GCE_INSTANCE = "gcp:compute/instance:Instance"
MAX_RESTORE_TEST_SECONDS = 7 * 86400
"""The restore test runs at least weekly: the alert fires after 8 days without a good one."""


def _gce_env(resource: Resource) -> dict[str, str] | None:
    """The plain `-e KEY=VALUE` flags of the `docker run` in a VM's cloud-init (components/backends/gce.py)."""
    user_data = as_map(resource.props.get("metadata")).get("user-data")
    if not isinstance(user_data, str):
        return None
    env: dict[str, str] = {}
    for line in user_data.splitlines():
        if "docker run" not in line and " run " not in line:
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        for flag, value in itertools.pairwise(words):
            if flag == "-e" and "=" in value:
                key, _, val = value.partition("=")
                env[key] = val
    return env or None


def _pocketbase(resources: Sequence[Resource]) -> list[tuple[Resource, dict[str, Any] | None]]:
    found: list[tuple[Resource, dict[str, Any] | None]] = []
    for r in resources:
        if role(r) == "pocketbase":
            found.append((r, service_env(r)))
        elif r.type == GCE_INSTANCE and str(r.props.get("name") or "").startswith("pocketbase"):
            found.append((r, _gce_env(r)))
    return found


def _days(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _bucket_problems(bucket: Resource, min_days: int) -> list[str]:
    name = bucket.props.get("name")
    problems: list[str] = []
    versioned = as_map(bucket.props.get("versioning")).get("enabled") is True
    retention = _days(as_map(bucket.props.get("retentionPolicy")).get("retentionPeriod"))
    if not versioned and retention < min_days * 86400:
        problems.append(f"bucket {name!r} has neither versioning nor a retention policy of {min_days} days: a "
                        "deletion or overwrite with the writer's key is final; expected versioning (noncurrent "
                        f"versions kept {min_days} days) or a retention policy")
    if versioned:
        kept = [_days(as_map(r.get("condition")).get("daysSinceNoncurrentTime"))
                for r in map(as_map, as_list(bucket.props.get("lifecycleRules")))
                if as_map(r.get("action")).get("type") == "Delete"
                and as_map(r.get("condition")).get("daysSinceNoncurrentTime") is not None]
        if kept and min(kept) < min_days:
            problems.append(f"bucket {name!r} deletes overwritten or deleted versions after {min(kept)} days; "
                            f"expected at least {min_days}")
    if bucket.props.get("publicAccessPrevention") != "enforced":
        problems.append(f"bucket {name!r} does not enforce public access prevention; expected 'enforced'")
    soft = as_map(bucket.props.get("softDeletePolicy")).get("retentionDurationSeconds")
    if soft is not None and _days(soft) == 0:
        problems.append(f"bucket {name!r} turns soft delete off; expected Cloud Storage's 7 days or more")
    kms = as_map(bucket.props.get("encryption")).get("defaultKmsKeyName")
    if kms is not None and not isinstance(kms, str):
        problems.append(f"bucket {name!r} names an encryption key that is not known at preview; expected Google's "
                        "AES-256 or a declared Cloud KMS key")
    return problems


def _labelled(buckets: Sequence[Resource]) -> dict[str, list[Resource]]:
    """The stack's disaster-recovery buckets by content: backups, replica, or backups-and-replica."""
    out: dict[str, list[Resource]] = {}
    for b in buckets:
        labels = as_map(b.props.get("labels"))
        if labels.get("platform-role") == "pocketbase-dr":
            out.setdefault(str(labels.get("platform-dr-content")), []).append(b)
    return out


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    min_days = int(config["min_backup_days"])
    all_buckets = [b for b in resources if b.type == BUCKET]
    buckets = {str(b.props.get("name")): b for b in all_buckets}
    labelled = _labelled(all_buckets)
    out: list[tuple[str, Finding]] = []
    services = [(s, e) for s, e in _pocketbase(resources) if stack_kind(s.stack) == "prod"]
    if services and not labelled:
        out += [(s.urn, "no bucket of this stack holds PocketBase's backups and replica (labelled "
                        "platform-role=pocketbase-dr); expected them declared in the stack's own account")
                for s, _ in services]
    for bucket in (b for group in labelled.values() for b in group):
        if stack_kind(bucket.stack) == "prod":
            out += [(bucket.urn, problem) for problem in _bucket_problems(bucket, min_days)]
    if services and labelled:
        primary = {b.props.get("location")
                   for b in labelled.get("backups", []) + labelled.get("backups-and-replica", [])}
        replicas = labelled.get("replica", [])
        if not replicas or any(r.props.get("location") in primary for r in replicas):
            subject = replicas[0] if replicas else labelled[sorted(labelled)[0]][0]
            out.append((subject.urn, f"PocketBase's replica is kept in {sorted(map(str, primary))}, the primary's "
                                     "region: losing the region loses both; expected a replica bucket in the failover "
                                     "region (C8)"))
    for service, env in services:
        if env is None or any(v is UNKNOWN for v in env.values()):
            continue  # a VM's cloud-init is known only at apply; its buckets are judged above
        replica, backups = str(env.get("LITESTREAM_BUCKET") or ""), str(env.get("PB_BACKUP_S3_BUCKET") or "")
        if not replica:
            out.append((service.urn, "PocketBase is not replicated continuously (no LITESTREAM_BUCKET): a disaster "
                                     "loses everything since the last daily backup; expected Litestream to a bucket "
                                     "this stack declares"))
        keep = _days(env.get("PB_BACKUP_MAX_KEEP"))
        if keep < min_days:
            out.append((service.urn, f"PocketBase keeps {keep} daily backups; expected at least {min_days}"))
        interval = _days(env.get("PB_RESTORE_TEST_INTERVAL_SECONDS"))
        if not 0 < interval <= MAX_RESTORE_TEST_SECONDS:
            out.append((service.urn, "no scheduled restore test of the replica (PB_RESTORE_TEST_INTERVAL_SECONDS "
                                     f"{env.get('PB_RESTORE_TEST_INTERVAL_SECONDS')!r}); expected one at least weekly"))
        for what, name in (("replica", replica), ("backups", backups)):
            if not name:
                continue
            bucket = buckets.get(name)
            if bucket is None:
                out.append((service.urn, f"the {what} go to bucket {name!r}, which this stack does not declare: "
                                         "nothing shows it is encrypted, versioned or in the stack's own account; "
                                         "expected a gcp:storage/bucket:Bucket of this stack"))
                continue
            if bucket not in (b for group in labelled.values() for b in group):
                out += [(bucket.urn, problem) for problem in _bucket_problems(bucket, min_days)]
    return out
