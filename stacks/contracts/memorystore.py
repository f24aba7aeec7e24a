"""Memorystore for Redis (`gcp:redis/instance:Instance`): tiers, TLS modes, replicas and capacity as the
provider schema (pulumi-gcp 10.2.0 redis/instance.py, generated from the API) states them."""

from __future__ import annotations

from collections.abc import Sequence

from stacks.contracts.rule import Context, Planned, Problem, Rule, get

INSTANCE = "gcp:redis/instance:Instance"
TIERS = ("BASIC", "STANDARD_HA")
TRANSIT_MODES = ("DISABLED", "SERVER_AUTHENTICATION")
CAPACITY_GB = (1, 300)
_SCHEMA = "pulumi-gcp 10.2.0 redis/instance.py"


def _modes(resource: Planned, _: Context) -> Sequence[Problem]:
    tier = get(resource.inputs, "tier") or "BASIC"
    transit = get(resource.inputs, "transitEncryptionMode") or "DISABLED"
    return [f"tier {tier}, transitEncryptionMode {transit}"] if tier not in TIERS or transit not in TRANSIT_MODES \
        else []


def _replicas(resource: Planned, _: Context) -> Sequence[Problem]:
    tier = get(resource.inputs, "tier") or "BASIC"
    count = get(resource.inputs, "replicaCount")
    if not isinstance(count, int):
        return []
    if tier == "BASIC":
        allowed = range(0, 1)
    elif get(resource.inputs, "readReplicasMode") == "READ_REPLICAS_ENABLED":
        allowed = range(1, 6)
    else:
        allowed = range(1, 2)
    return [] if count in allowed else [f"tier {tier}, replicaCount {count}"]


def _capacity(resource: Planned, _: Context) -> Sequence[Problem]:
    size = get(resource.inputs, "memorySizeGb")
    low, high = CAPACITY_GB
    return [f"memorySizeGb {size}"] if isinstance(size, int | float) and not low <= size <= high else []


_TYPES = frozenset({INSTANCE})
RULES: tuple[Rule, ...] = (
    Rule("MS-MODE-001", "Memorystore", "tier is BASIC or STANDARD_HA and transitEncryptionMode DISABLED or "
         "SERVER_AUTHENTICATION", f"{_SCHEMA} (tier: \"Possible values are: `BASIC`, `STANDARD_HA`\"; "
         "transit_encryption_mode: \"Possible values are: `SERVER_AUTHENTICATION`, `DISABLED`\")", _TYPES, _modes),
    Rule("MS-REPLICA-001", "Memorystore", "replicaCount is 0 on BASIC, 1 on STANDARD_HA, 1-5 with read replicas",
         f"{_SCHEMA} (replica_count: \"The valid range for the Standard Tier with read replicas enabled is [1-5] "
         "... If read replicas are not enabled for a Standard Tier instance, the only valid value is 1 ... The "
         "valid value for basic tier is 0\")", _TYPES, _replicas),
    Rule("MS-SIZE-001", "Memorystore", "memorySizeGb is 1 to 300 GiB",
         "https://cloud.google.com/memorystore/docs/redis/redis-tiers (feature comparison: \"Max Redis primary "
         "size | 300 GB | 300 GB | 300 GB\"); " + _SCHEMA + " (memory_size_gb, an integer: \"Redis memory size in "
         "GiB\")", _TYPES, _capacity),
)
