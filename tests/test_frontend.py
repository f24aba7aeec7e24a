"""The storefront's Vercel project: what the stack file and the profile say reaches the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.plan import Plan
from tests.conftest import plan_of, stack_document, write_stack

# C4 leaves "every X minutes" open; the platform's choice (README, "Environments"): prod 10 minutes.
PROD_ISR_SECONDS = 600


def _project(plan: Plan) -> dict[str, object]:
    [project] = [r.inputs for r in plan.resources if r.type == "vercel:index/project:Project"]
    return project


def _variable(plan: Plan, key: str) -> object:
    # The provider marks every variable's value secret; the plain ones are read from the wire form.
    [value] = [r.wire_inputs["value"]["value"] for r in plan.resources
               if r.type == "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable"
               and r.inputs["key"] == key]
    return value


@pytest.mark.parametrize("branch", ["release/2026-12", "trunk"])
def test_the_production_branch_is_the_stack_files(tmp_path: Path, branch: str) -> None:
    document = stack_document("staging")
    document["config"]["platform:frontend"]["productionBranch"] = branch

    plan = plan_of(write_stack(tmp_path, document), "staging")

    assert _project(plan)["gitRepository"] == {"type": "github", "repo": "acme-commerce/storefront",
                                               "productionBranch": branch}


def test_prod_revalidates_the_catalog_every_ten_minutes(committed_plans: dict[str, Plan]) -> None:
    assert _variable(committed_plans["prod"], "CATALOG_REVALIDATE_SECONDS") == str(PROD_ISR_SECONDS)


def test_functions_run_in_the_region_the_stack_file_names(tmp_path: Path) -> None:
    document = stack_document("prod")
    document["config"]["platform:frontend"]["functionRegion"] = "iad1"

    project = _project(plan_of(write_stack(tmp_path, document), "prod"))

    assert project["resourceConfig"] == {"functionDefaultRegions": ["iad1"]}
