"""PLAT-SIZE-001 and PLAT-SIZE-002: PocketBase and Redis stay within the sizes the document gives
(C2: 1 vCPU + 2 GB, up to 2 + 4; C3: 1 vCPU + 1 GB, scaled by miss rate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import MEMORYSTORE, NotApplicable, Resource, Verdict, role, size_of


def _within(resource: Resource, service: str, config: Mapping[str, Any]) -> Verdict:
    if role(resource) != service:
        return NotApplicable(f"not the {service} service")
    size = size_of(resource)
    if size is None:
        return [f"cannot read the {service} service's size; expected a CPU and memory limit"]
    cpu, memory_gib = size
    problems: list[str] = []
    if resource.type != MEMORYSTORE and cpu > float(config["max_vcpus"]):
        problems.append(f"{cpu:g} vCPU; expected at most {float(config['max_vcpus']):g}")
    if memory_gib > float(config["max_memory_gib"]):
        problems.append(f"{memory_gib:g} GiB of memory; expected at most {float(config['max_memory_gib']):g}")
    return problems


def check_pocketbase(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    return _within(resource, "pocketbase", config)


def check_redis(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    return _within(resource, "redis", config)
