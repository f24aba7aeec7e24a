"""PLAT-SCALE-001 and PLAT-SCALE-002: the engine keeps one warm instance where it matters, and scales
to no more than the reviewed bound (C1: 3 to 5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import ENGINE, NotApplicable, Resource, Verdict, replica_bounds, service_name


def check_warm(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    bounds = replica_bounds(resource)
    if service_name(resource) != ENGINE or bounds is None:
        return NotApplicable("not the engine service")
    if resource.stack not in config["warm_stacks"]:
        return NotApplicable(f"stack {resource.stack!r} may scale to zero")
    if bounds[0] < 1:
        return [f"scales to {bounds[0]} instances when idle; expected at least 1 warm instance"]
    return []


def check_ceiling(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    bounds = replica_bounds(resource)
    if service_name(resource) != ENGINE or bounds is None:
        return NotApplicable("not the engine service")
    if bounds[1] > int(config["max_instances"]):
        return [f"scales to {bounds[1]} instances; expected at most {int(config['max_instances'])}"]
    return []
