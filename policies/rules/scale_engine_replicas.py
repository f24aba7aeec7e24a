"""PLAT-SCALE-001 and PLAT-SCALE-002: the engine keeps one warm instance outside integration, and scales
to no more than the reviewed bound (C1: 3 to 5). The engine is recognised by name or image. A standby in the
failover region that serves nothing (labelled `platform-serving=false`, which PLAT-DATA-007 checks against
`platform:gcp.serving`) may scale to zero (#13 item 7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict, as_map, replica_bounds, role, stack_kind


def check_warm(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    bounds = replica_bounds(resource)
    if role(resource) != "engine" or bounds is None:
        return NotApplicable("not the engine service")
    if stack_kind(resource.stack) == "integration":
        return NotApplicable(f"stack {resource.stack!r} may scale to zero")
    if as_map(resource.get("labels")).get("platform-serving") == "false":
        # PLAT-DATA-007 holds the label to the truth: only the region the stack does not serve from says it.
        return NotApplicable("a standby engine the load balancer sends nothing (label platform-serving=false)")
    if not isinstance(bounds[0], int | float) or bounds[0] < 1:
        return [f"scales to {bounds[0]} instances when idle; expected at least 1 warm instance"]
    return []


def check_ceiling(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    bounds = replica_bounds(resource)
    if role(resource) != "engine" or bounds is None:
        return NotApplicable("not the engine service")
    if not isinstance(bounds[1], int | float) or bounds[1] > int(config["max_instances"]):
        return [f"scales to {bounds[1]} instances; expected at most {int(config['max_instances'])}"]
    return []
