"""PLAT-DATA-001: PocketBase (SQLite) runs as exactly one replica with its data on a persistent volume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import CLOUD_RUN, DOCKER, RAILWAY, NotApplicable, Resource, Verdict, service_name

DATA_DIR = "/pb/pb_data"


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if service_name(resource) != "pocketbase":
        return NotApplicable("not the PocketBase service")
    if resource.type == CLOUD_RUN:
        return ["PocketBase on Cloud Run has no persistent disk; expected docker or Railway with a volume"]
    problems: list[str] = []
    if resource.type == RAILWAY:
        if resource.props.get("volume_mount_path") != DATA_DIR:
            problems.append(f"no volume at {DATA_DIR}; expected one")
        if int(resource.props.get("num_replicas", 1)) != 1:
            problems.append(f"{resource.props.get('num_replicas')} replicas; expected exactly 1 (SQLite)")
    elif resource.type == DOCKER:
        paths = [v.get("containerPath") for v in resource.props.get("volumes", []) if v.get("volumeName")]
        if DATA_DIR not in paths:
            problems.append(f"no named volume at {DATA_DIR}; expected one")
    return problems
