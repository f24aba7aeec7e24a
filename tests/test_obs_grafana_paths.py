"""Integration's self-hosted Grafana, as the plan declares it: one delivery path per dashboard, and every
resource the Grafana provider manages created only once `grafana.<zone>` resolves and routes to Grafana.

Grafana refuses to save through the API a dashboard a provisioning file owns: `BuildSaveDashboardCommand`
returns `dashboards.ErrDashboardCannotSaveProvisionedDashboard` when `GetProvisionedDashboardDataByDashboardID`
finds the dashboard (grafana/grafana pkg/services/dashboards/service/dashboard_service.go), which is
`DashboardErr{Reason: "Cannot save provisioned dashboard", StatusCode: 400}` (pkg/services/dashboards/errors.go).
A `grafana:oss/Dashboard` with the UID of a file-provisioned dashboard fails the first `pulumi up`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra.plan import Plan, PlannedResource
from tests.conftest import stack_document

PROVISIONING_DIR = "/etc/grafana/provisioning/dashboards/"
"""Where Grafana reads its dashboard providers (grafana.com/docs/grafana/latest/administration/provisioning,
"Dashboards": "You can manage dashboards in Grafana by adding one or more YAML config files in the
provisioning/dashboards directory")."""


def _grafana_uploads(plan: Plan) -> dict[str, str]:
    [container] = [r for r in plan.resources
                   if r.type == "docker:index/container:Container" and r.inputs["name"] == "grafana"]
    return {u["file"]: u["content"] for u in container.wire_inputs.get("uploads", [])}


def file_provisioned_uids(plan: Plan) -> set[str]:
    """The UIDs of the dashboards Grafana loads from files: every JSON file under a path a `type: file`
    dashboard provider of the provisioning directory names (`options.path`)."""
    uploads = _grafana_uploads(plan)
    paths = [provider["options"]["path"].rstrip("/") + "/"
             for name, content in uploads.items() if name.startswith(PROVISIONING_DIR)
             for provider in yaml.safe_load(content).get("providers", []) if provider.get("type", "file") == "file"]
    return {json.loads(content)["uid"] for name, content in uploads.items()
            if name.endswith(".json") and any(name.startswith(p) for p in paths)}


def api_dashboard_uids(plan: Plan) -> set[str]:
    return {json.loads(str(r.inputs["configJson"]))["uid"] for r in plan.resources
            if r.type == "grafana:oss/dashboard:Dashboard"}


def test_no_dashboard_uid_is_both_file_provisioned_and_created_through_the_api(
        committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["integration"]

    api = api_dashboard_uids(plan)
    assert api, "integration's dashboards are created through Grafana's API, as staging's and prod's are"
    assert file_provisioned_uids(plan) & api == set()


def _closure(plan: Plan, resource: PlannedResource) -> set[str]:
    """Every URN the engine creates before `resource`: its dependencies, its explicit provider's, transitively
    (a component stands for its children)."""
    by_urn = {r.urn: r for r in plan.resources}
    seen: set[str] = set()
    todo = [*resource.dependencies, *([resource.provider.rsplit("::", 1)[0]] if resource.provider else [])]
    while todo:
        urn = todo.pop()
        if urn in seen or urn not in by_urn:
            continue
        seen.add(urn)
        found = by_urn[urn]
        todo += [*found.dependencies, *([found.provider.rsplit("::", 1)[0]] if found.provider else [])]
        todo += [r.urn for r in plan.resources if r.parent == urn]
    return seen


@pytest.mark.parametrize("stack", ["integration"])
def test_every_grafana_resource_waits_for_grafana_s_dns_record(stack: str, committed_plans: dict[str, Plan]) -> None:
    """The provider reaches `https://grafana.<zone>`: through Cloudflare's proxied record to the tunnel. Created
    before that record exists, every call fails to resolve (the record is declared by the edge, later)."""
    plan = committed_plans[stack]
    host = f"grafana.{stack_document(stack)['config']['platform:zone']['name']}"
    [record] = [r for r in plan.resources if r.type == "cloudflare:index/dnsRecord:DnsRecord" and r.inputs["name"] == host]
    managed = [r for r in plan.resources if r.type.startswith("grafana:")]
    assert managed

    assert [r.name for r in managed if record.urn not in _closure(plan, r)] == []


def test_the_provisioning_files_hold_datasources_only(committed_plans: dict[str, Plan]) -> None:
    """The one path left for dashboards is the API: no dashboard provider, no dashboard file on the container."""
    uploads = _grafana_uploads(committed_plans["integration"])

    assert not [name for name in uploads if name.startswith(PROVISIONING_DIR) or name.endswith(".json")]
    assert any(name.startswith("/etc/grafana/provisioning/datasources/") for name in uploads)


def test_a_dashboard_provisioned_from_a_file_and_through_the_api_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bringing file provisioning back for a UID the API path creates stops the program with the reason."""
    from components.observability import selfhosted
    from components.observability.dashboards import render
    from tests.conftest import plan_of, write_stack

    original = selfhosted.grafana_files

    provider = {"apiVersion": 1, "providers": [
        {"name": "platform", "type": "file", "options": {"path": "/var/lib/grafana/dashboards"}}]}

    def with_a_file_dashboard(environment: str) -> dict[str, str]:
        return {**original(environment), PROVISIONING_DIR + "platform.yml": json.dumps(provider),
                "/var/lib/grafana/dashboards/overview.json": render("overview", environment)}

    monkeypatch.setattr(selfhosted, "grafana_files", with_a_file_dashboard)

    with pytest.raises(Exception, match=r"platform-integration-overview.*Cannot save provisioned dashboard"):
        plan_of(write_stack(tmp_path, stack_document("integration")), "integration")
