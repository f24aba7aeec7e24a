"""PLAT-DATA-001: PocketBase (SQLite) runs as exactly one replica with its data on a persistent volume.

PocketBase is recognised by its name or by the image it runs, so a renamed service is still judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import CLOUD_RUN, DOCKER, RAILWAY, NotApplicable, Resource, Verdict, as_list, as_map, role

DATA_DIR = "/pb/pb_data"


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if role(resource) != "pocketbase":
        return NotApplicable("not the PocketBase service")
    if resource.type == CLOUD_RUN:
        return ["PocketBase on Cloud Run has no persistent disk; expected docker or Railway with a volume"]
    problems: list[str] = []
    if resource.type == RAILWAY:
        if resource.props.get("volume_mount_path") != DATA_DIR:
            problems.append(f"no volume at {DATA_DIR}; expected one")
        if resource.props.get("num_replicas", 1) != 1:
            problems.append(f"{resource.props.get('num_replicas')} replicas; expected exactly 1 (SQLite)")
    elif resource.type == DOCKER:
        paths = [as_map(v).get("containerPath") for v in as_list(resource.props.get("volumes"))
                 if as_map(v).get("volumeName")]
        if DATA_DIR not in paths:
            problems.append(f"no named volume at {DATA_DIR}; expected one")
    return problems
