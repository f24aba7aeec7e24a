"""Every Google API prod's resources need is enabled by the stack, and every GCP resource waits for its API
(#20 item 6).

The table below is written by hand from each API's documentation (the service a resource type's REST
collection lives in), independently of the program's own table: a resource type that appears in a plan and
is missing here fails the test, so a new kind of resource cannot arrive without someone saying which API it
needs. Sources: the REST reference of each collection (cloud.google.com/<product>/docs/reference/rest), e.g.
`run.googleapis.com/v2/projects.locations.services`, `compute.googleapis.com/compute/v1/.../routers`,
`iam.googleapis.com/v1/projects.serviceAccounts`, and project IAM policy (`projects.setIamPolicy`) on
`cloudresourcemanager.googleapis.com` (cloud.google.com/resource-manager/reference/rest/v1/projects/setIamPolicy).
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.plan import Plan, PlannedResource

SERVICE = "gcp:projects/service:Service"

EXPECTED_API = {
    "gcp:artifactregistry/": "artifactregistry.googleapis.com",
    "gcp:certificatemanager/": "certificatemanager.googleapis.com",
    "gcp:cloudrunv2/": "run.googleapis.com",
    "gcp:compute/": "compute.googleapis.com",
    "gcp:logging/": "logging.googleapis.com",
    "gcp:projects/iAMMember:": "cloudresourcemanager.googleapis.com",
    # An audit config is part of the project's IAM policy (projects.setIamPolicy, Policy.auditConfigs):
    # cloud.google.com/resource-manager/reference/rest/v1/projects/setIamPolicy
    "gcp:projects/iAMAuditConfig:": "cloudresourcemanager.googleapis.com",
    "gcp:redis/": "redis.googleapis.com",
    "gcp:secretmanager/": "secretmanager.googleapis.com",
    "gcp:serviceaccount/": "iam.googleapis.com",
    "gcp:storage/": "storage.googleapis.com",
}

# Needed by what runs, not by a resource type: the deploy workflows' keyless auth exchanges a GitHub token at
# STS and impersonates a service account through IAM Credentials (github.com/google-github-actions/auth:
# "enable the IAM Credentials API"; cloud.google.com/iam/docs/workload-identity-federation: "Enable the IAM,
# Resource Manager, Service Account Credentials, and Security Token Service APIs"); the telemetry service's
# stackdriver_exporter reads Cloud Monitoring (monitoring.googleapis.com, projects.timeSeries.list).
ALWAYS = {"iamcredentials.googleapis.com", "sts.googleapis.com", "monitoring.googleapis.com",
          "cloudresourcemanager.googleapis.com", "iam.googleapis.com"}


def _api(type_: str) -> str:
    for prefix, api in EXPECTED_API.items():
        if type_.startswith(prefix):
            return api
    raise AssertionError(f"{type_}: no API known for this resource type; add it to EXPECTED_API with its source")


def _project(plan: Plan) -> str:
    return str(next(r.inputs["project"] for r in plan.resources if r.type == "gcp:cloudrunv2/service:Service"))


def _enabled(plan: Plan) -> dict[str, PlannedResource]:
    return {str(r.inputs["service"]): r for r in plan.resources if r.type == SERVICE}


def test_prod_enables_every_api_its_resources_and_workflows_need(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    enabled = _enabled(plan)
    needed = {_api(r.type) for r in plan.resources if r.type.startswith("gcp:") and r.type != SERVICE} | ALWAYS
    assert needed - set(enabled) == set()
    project = _project(plan)
    for api, service in enabled.items():
        # Destroying the stack must not switch off an API something else in the project uses.
        assert service.inputs["project"] == project, api
        assert service.inputs.get("disableOnDestroy") is False, api
        assert service.inputs.get("disableDependentServices") is False, api


def test_every_gcp_resource_in_the_stacks_project_waits_for_its_api(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    project = _project(plan)
    by_urn = {r.urn: r for r in plan.resources}
    late: list[str] = []
    for resource in plan.resources:
        if not resource.type.startswith("gcp:") or resource.type == SERVICE:
            continue
        if resource.inputs.get("project", project) != project:
            continue  # another project's resource (the shared registry): its owner enables its APIs
        # Through the sleep after each enable (a new API is eventually consistent: terraform-provider-google#2129).
        settles = [by_urn[u] for u in resource.dependencies if u in by_urn and by_urn[u].type == "time:index/sleep:Sleep"]
        apis = {str(by_urn[u].inputs["service"]) for s in settles for u in s.dependencies
                if u in by_urn and by_urn[u].type == SERVICE}
        if _api(resource.type) not in apis:
            late.append(f"{resource.type} {resource.name}: waits for {sorted(apis)}")
    assert late == []


def test_a_type_without_an_api_fails_the_check() -> None:
    """The table is closed: an unknown type is an error, not a pass."""
    with pytest.raises(AssertionError, match="no API known"):
        _api("gcp:bigquery/dataset:Dataset")


@pytest.mark.parametrize("stack", ["staging", "integration"])
def test_stacks_without_gcp_enable_nothing(stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    gcp: list[Any] = [r for r in plan.resources if r.type.startswith("gcp:") and r.type != SERVICE]
    if not gcp:
        assert not _enabled(plan)
    else:
        assert {_api(r.type) for r in gcp} <= set(_enabled(plan))


def test_the_program_refuses_a_gcp_type_whose_api_it_does_not_know() -> None:
    """The program's own table is closed too: a resource type without an API stops the program, naming the table."""
    from stacks.backends import gcp_apis

    with pytest.raises(ValueError, match=r"gcp:bigquery/dataset:Dataset: no Google API.*GCP_APIS"):
        gcp_apis("gcp:bigquery/dataset:Dataset")
