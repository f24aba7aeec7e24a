"""Integration's self-hosted Grafana keeps its database on a named Docker volume at /var/lib/grafana (Grafana's
`paths.data`, where grafana.db lives: grafana.com/docs/grafana/latest/setup-grafana/configure-docker/ "Use
persistent storage"). Without it, replacing the container (a new image, a changed setting) starts an empty
Grafana: the folder, dashboards, rule group and contact points the stack created through the API are gone while
Pulumi's state still lists them, and the admin password is whatever the new container was started with."""

from __future__ import annotations

from typing import Any

import pytest

from infra.plan import Plan, PlannedResource
from tests.conftest import PROJECT_DIR, plan_of

GRAFANA_DATA = "/var/lib/grafana"


@pytest.fixture(scope="module")
def integration() -> Plan:
    return plan_of(PROJECT_DIR / "Pulumi.integration.yaml", "integration")


def _container(plan: Plan, name: str) -> PlannedResource:
    [found] = [r for r in plan.resources if r.type == "docker:index/container:Container" and r.inputs["name"] == name]
    return found


def _volume_names(container: PlannedResource) -> set[str]:
    mounts: list[dict[str, Any]] = list(container.inputs.get("volumes") or [])
    return {str(m["volumeName"]) for m in mounts if m.get("volumeName")}


def test_grafana_keeps_its_data_on_a_named_volume_the_stack_declares(integration: Plan) -> None:
    grafana = _container(integration, "grafana")
    mounts: list[dict[str, Any]] = list(grafana.inputs.get("volumes") or [])
    data = [m for m in mounts if m.get("containerPath") == GRAFANA_DATA]
    assert len(data) == 1, mounts
    assert "hostPath" not in data[0] and data[0].get("readOnly") is not True, data[0]
    volumes = {r.inputs["name"] for r in integration.resources if r.type == "docker:index/volume:Volume"}
    assert data[0].get("volumeName") in volumes, (data[0], volumes)


def test_grafana_volume_is_its_own_not_pocketbases(integration: Plan) -> None:
    grafana = _container(integration, "grafana")
    pocketbase = _container(integration, "pocketbase")
    ours = _volume_names(grafana)
    theirs = _volume_names(pocketbase)
    assert ours and not ours & theirs
