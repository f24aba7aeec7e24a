"""Prod's plan: what waits for what, read as tests/test_deploy_order.py reads it (each resource's
`dependencies`, a component standing for its children).

- APIs: reading a `gcp.projects.Service` calls Cloud Resource Manager's projects.get
  (terraform-provider-google resource_google_project_service.go), so every other API the stack enables waits for
  `api-cloudresourcemanager`; and a newly enabled API is eventually consistent
  (hashicorp/terraform-provider-google#2129), so the resources that use an API wait for a short sleep after it
  was enabled, not for the enable itself.
- The PocketBase VMs' IAM propagation wait covers every grant they use at their first boot, the DR buckets'
  writer grants too (the VMs write through the `pocketbase-dr` account's HMAC key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.plan import Plan, PlannedResource
from tests.conftest import PROJECT_DIR, plan_of

SERVICE = "gcp:projects/service:Service"
SLEEP = "time:index/sleep:Sleep"
SETTLE_AT_LEAST_S = 30
"""A few tens of seconds: what the provider's own enable waits out before it reports an API on (#2129)."""


@pytest.fixture(scope="module")
def prod() -> Plan:
    return plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")


def _by_urn(plan: Plan) -> dict[str, PlannedResource]:
    return {r.urn: r for r in plan.resources}


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def test_every_other_api_is_enabled_after_cloud_resource_manager(prod: Plan) -> None:
    services = {r.name: r for r in prod.resources if r.type == SERVICE}
    crm = services.get("api-cloudresourcemanager")
    assert crm is not None, sorted(services)
    late = sorted(name for name, r in services.items() if r is not crm and crm.urn not in r.dependencies)
    assert late == [], f"enabled without waiting for Cloud Resource Manager: {late}"


def test_a_resource_waits_for_its_api_to_settle_not_only_for_the_enable(prod: Plan) -> None:
    by_urn = _by_urn(prod)
    services = {r.urn for r in prod.resources if r.type == SERVICE}
    gcp = [r for r in prod.resources if r.type.startswith("gcp:") and r.type != SERVICE
           and r.inputs.get("project") in (None, "acme-commerce-prod")]
    assert gcp
    direct = sorted(r.name for r in gcp if services & set(r.dependencies))
    assert direct == [], f"created as soon as their API is enabled, before it settled: {direct[:8]}"
    for resource in gcp:
        settles = [by_urn[u] for u in resource.dependencies if u in by_urn and by_urn[u].type == SLEEP
                   and services & set(by_urn[u].dependencies)]
        assert settles, f"{resource.type} {resource.name} waits for no API's settle sleep"
        assert all(_seconds(s.inputs["createDuration"]) >= SETTLE_AT_LEAST_S for s in settles)


def test_the_vm_iam_wait_covers_the_dr_bucket_grants(prod: Plan) -> None:
    dr = [r for r in prod.resources if r.type == "platform:database:DisasterRecoveryStorage"]
    assert len(dr) == 1
    # The writer's grants (the VMs write through its HMAC key); the restore account's read-only ones are not the VMs'.
    grants = {r.urn for r in prod.resources
              if r.type == "gcp:storage/bucketIAMMember:BucketIAMMember" and r.parent == dr[0].urn
              and r.inputs["role"] == "roles/storage.objectAdmin"}
    assert len(grants) == 2, "the backups' and the replica's buckets"
    waits = [r for r in prod.resources if r.type == SLEEP and r.name.endswith("-vm-iam-propagation")]
    assert len(waits) == 2, "the primary's and the standby's VM"
    for wait in waits:
        # Its own depends_on: a closure through a component would count any of the component's children.
        assert grants <= set(wait.dependencies), f"{wait.name} does not wait for the DR buckets' grants"


def test_readme_prerequisites_enable_the_bootstrap_apis_once_by_hand() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    command = next((ln for ln in readme.splitlines() if ln.strip().startswith("gcloud services enable")), "")
    for api in ("cloudresourcemanager", "serviceusage", "iam", "iamcredentials", "sts"):
        assert f" {api}.googleapis.com" in command, (api, command)
    assert "--project=" in command
    assert "roles/serviceusage.serviceUsageAdmin" in readme
