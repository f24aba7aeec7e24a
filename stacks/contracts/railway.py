"""Railway (`pulumi-python:dynamic/railway:Service`, components/backends/railway.py): a service with a volume
runs one replica; vCPU and memory within what stacks/backends.py says Railway allows."""

from __future__ import annotations

from collections.abc import Sequence

from stacks.backends import LIMITS
from stacks.contracts.rule import Context, Planned, Problem, Rule, get

SERVICE = "pulumi-python:dynamic/railway:Service"
_RAILWAY = LIMITS["railway"]


def _volume_one_replica(resource: Planned, _: Context) -> Sequence[Problem]:
    volume = get(resource.inputs, "volume_mount_path")
    replicas = get(resource.inputs, "num_replicas")
    if volume and isinstance(replicas, int) and replicas != 1:
        return [f"volume at {volume} with {replicas} replicas"]
    return []


def _replicas_limit(resource: Planned, _: Context) -> Sequence[Problem]:
    replicas = get(resource.inputs, "num_replicas")
    limit = _RAILWAY.max_instances_limit
    return [f"{replicas} replicas"] if isinstance(replicas, int) and not 1 <= replicas <= limit else []


_TYPES = frozenset({SERVICE})
RULES: tuple[Rule, ...] = (
    Rule("RW-VOL-001", "Railway", "a service with a volume runs exactly one replica",
         "https://docs.railway.com/reference/volumes (Caveats: \"Replicas cannot be used with volumes\"); "
         "stacks/backends.py (\"a service with a volume runs exactly one replica\")", _TYPES, _volume_one_replica),
    Rule("RW-REPLICA-001", "Railway", f"a service runs 1 to {_RAILWAY.max_instances_limit} replicas",
         "stacks/backends.py LIMITS['railway'].max_instances_limit (Railway's plan limits)", _TYPES,
         _replicas_limit),
)
