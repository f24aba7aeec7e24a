"""What each container backend allows. Config validation rejects anything outside these limits.

Sources: Cloud Run's documented CPU/memory pairs and instance limits; Railway's plan limits and its
rules that replicas are a fixed count and that a service with a volume runs exactly one replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.profile import Backend, ServiceName


@dataclass(frozen=True)
class BackendLimits:
    cpu_millis_allowed: tuple[int, ...] | None
    cpu_millis_range: tuple[int, int]
    memory_mib_range: tuple[int, int]
    max_instances_limit: int
    autoscaling: bool
    volumes: bool
    why_no_volumes: str = ""


LIMITS: dict[Backend, BackendLimits] = {
    # One Docker host: a container per service, no autoscaling (the integration environment, D4).
    "docker": BackendLimits(
        cpu_millis_allowed=None,
        cpu_millis_range=(250, 8000),
        memory_mib_range=(128, 16384),
        max_instances_limit=1,
        autoscaling=False,
        volumes=True,
    ),
    "cloudrun": BackendLimits(
        cpu_millis_allowed=(1000, 2000, 4000, 6000, 8000),
        cpu_millis_range=(1000, 8000),
        memory_mib_range=(512, 32768),
        max_instances_limit=1000,
        autoscaling=True,
        volumes=False,
        why_no_volumes="Cloud Run has no local disk",
    ),
    # One Compute Engine VM with a persistent disk, private, in the engine's VPC (components/backends/gce.py):
    # E2 custom machine types, 2 to 32 vCPUs (https://cloud.google.com/compute/docs/general-purpose-machines#e2_machine_types).
    "gce": BackendLimits(
        cpu_millis_allowed=None,
        cpu_millis_range=(1000, 32000),
        memory_mib_range=(1024, 131072),
        max_instances_limit=1,
        autoscaling=False,
        volumes=True,
    ),
    "railway": BackendLimits(
        cpu_millis_allowed=None,
        cpu_millis_range=(1000, 32000),
        memory_mib_range=(512, 32768),
        max_instances_limit=50,
        autoscaling=False,
        volumes=True,
    ),
}

# Services that keep state on a local volume: never on a backend without disk, never replicated.
NEEDS_VOLUME: frozenset[ServiceName] = frozenset({"pocketbase"})

# Cloud Run requires more vCPUs for more memory: (memory above MiB, needs at least cpu millis).
CLOUDRUN_MEMORY_NEEDS_CPU: tuple[tuple[int, int], ...] = (
    (4096, 2000),
    (8192, 4000),
    (16384, 6000),
    (24576, 8000),
)


def cloudrun_min_cpu_for_memory(memory_mib: int) -> int:
    needed = 1000
    for above_mib, cpu_millis in CLOUDRUN_MEMORY_NEEDS_CPU:
        if memory_mib > above_mib:
            needed = cpu_millis
    return needed
