"""Issue #26 item 3, "Before the day": `platform:database: {engine: pocketbase, declarePostgres: true}` declares Cloud
SQL, its users and the `engine-migrate` job while the engine still serves from PocketBase, so the schema can be
applied before the cut-over with an ordinary deploy; the cut-over then flips `engine` alone, which changes only the
engine (its settings and secrets) and deletes nothing.

The audit's finding this answers: the runbook had the operator set `engine: postgres`, `pulumi up --target` the
database component (which did not contain the job: it was the engine's child), then revert the stack file, after
which the next deploy planned to delete the users, the database and the instance."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.postgres import MIGRATE_JOB
from infra.plan import Plan, PlannedResource
from tests.conftest import CliResult, plan_of, stack_document, write_stack

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
USER = "gcp:sql/user:User"
DB = "gcp:sql/database:Database"
RUN = "gcp:cloudrunv2/service:Service"
JOB = "gcp:cloudrunv2/job:Job"
DECLARED = {"engine": "pocketbase", "declarePostgres": True}


def _stack(directory: Path, database: dict[str, Any]) -> Path:
    document = stack_document("prod")
    document["config"]["platform:database"] = database
    return write_stack(directory, document, name="Pulumi.prod.yaml")


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_of(_stack(tmp_path_factory.mktemp("declared"), DECLARED), "prod")


@pytest.fixture(scope="module")
def switched(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_of(_stack(tmp_path_factory.mktemp("switched"), {"engine": "postgres", "declarePostgres": True}),
                   "prod")


def _one(plan: Plan, type_: str, name: str) -> PlannedResource:
    return next(r for r in plan.resources if r.type == type_ and r.name == name)


def _engine_env(plan: Plan) -> dict[str, Any]:
    containers = _one(plan, RUN, "engine").inputs["template"]["containers"]
    return {e["name"]: e.get("value", e.get("valueSource")) for e in containers[0]["envs"]}


def _glob(pattern: str) -> re.Pattern[str]:
    """Pulumi's `--target` URN glob: `**` any run of characters, `*` any run without `::`
    (https://www.pulumi.com/docs/iac/guides/basics/targeted-updates/, "Specifying resources")."""
    parts = re.split(r"(\*\*|\*)", pattern)
    return re.compile("".join(".*" if p == "**" else "(?:(?!::).)*" if p == "*" else re.escape(p) for p in parts)
                      + r"\Z")


def test_prod_with_postgres_declared_beside_pocketbase_plans_clean(
        tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("plan", "--stack", "prod", "--config-file", str(_stack(tmp_path, DECLARED)))

    assert result.code == 0, result.err
    assert "0 violations" in result.out
    assert "gcp:sql/databaseInstance:DatabaseInstance  postgres-primary" in result.out


def test_declared_postgres_has_its_instance_users_database_and_migrate_job(declared: Plan) -> None:
    assert _one(declared, SQL, "postgres-primary") and _one(declared, DB, "postgres-database")
    assert {r.inputs["name"] for r in declared.resources if r.type == USER} >= {"migrator"}
    assert _one(declared, JOB, MIGRATE_JOB)


def test_the_engine_still_serves_from_pocketbase_while_postgres_is_only_declared(declared: Plan) -> None:
    env = _engine_env(declared)
    assert env.get("STORAGE", "pocketbase") == "pocketbase"
    assert {"POCKETBASE_URL", "POCKETBASE_EMAIL", "POCKETBASE_PASSWORD"} <= env.keys()
    assert not {k for k in env if k.startswith("POSTGRES_")}


def test_a_targeted_up_of_the_database_component_includes_the_migrate_job(declared: Plan) -> None:
    """The runbook's `pulumi up --target` glob must hold the job and everything it needs of its own."""
    primary = _one(declared, SQL, "postgres-primary")
    stack_prefix = primary.urn.split("::platform:database:Postgres")[0]
    target = _glob(stack_prefix + "::platform:database:Postgres**")
    job = _one(declared, JOB, MIGRATE_JOB)
    assert target.match(primary.urn)
    assert target.match(job.urn), job.urn
    for name in (f"{MIGRATE_JOB}-sa", f"{MIGRATE_JOB}-iam-propagation"):
        resource = next(r for r in declared.resources if r.name == name)
        assert target.match(resource.urn), resource.urn


def test_switching_the_engine_changes_only_the_engine_and_deletes_nothing(declared: Plan, switched: Plan) -> None:
    before = {r.urn: r for r in declared.resources}
    after = {r.urn: r for r in switched.resources}
    # Only the engine's own PocketBase credentials go (STORAGE=postgres is given none, PG.md); nothing of the database.
    gone = sorted(before[urn].name for urn in before.keys() - after.keys())
    assert all(name.startswith("engine-") and "pocketbase" in name for name in gone), gone
    changed = sorted(after[urn].name for urn in before.keys() & after.keys() if before[urn].inputs != after[urn].inputs)
    assert changed, "the switch changed nothing"
    assert all(name.startswith("engine") for name in changed), changed
    assert "engine" in changed
    # Every Cloud SQL resource and the job are untouched by the switch.
    for r in declared.resources:
        if r.type in (SQL, USER, DB, JOB):
            assert after[r.urn].inputs == r.inputs, r.name
    env = _engine_env(switched)
    assert env["STORAGE"] == "postgres"
