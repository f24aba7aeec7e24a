"""Issue #26 item 2: `platform:database: {engine: postgres}` plans prod with Cloud SQL and the pack clean, and each
weakening of the database (public address, no TLS, no backups, no PITR, no HA in prod, no deletion protection, no
replica, a typed password) is refused by the policy pack over Pulumi's Analyzer protocol.

The weakenings cannot be written in a stack file (the component declares these settings; `platform:database` has
no key for them, and an unknown key is refused by config: tests/test_config_errors.py), so each is applied to the
planned resource as the engine would hand it to the pack, the rest of the plan unchanged."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.postgres import DATABASE, ENGINE_USER, MIGRATE_COMMAND, MIGRATE_JOB, MIGRATOR_USER
from infra.analyzer import AnalyzerInput, PolicyPackProcess
from infra.plan import Plan, PlannedResource
from tests.conftest import PROJECT_DIR, CliResult, plan_of, stack_document, write_stack

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
USER = "gcp:sql/user:User"
RUN = "gcp:cloudrunv2/service:Service"
JOB = "gcp:cloudrunv2/job:Job"


def _postgres_stack(directory: Path) -> Path:
    document = stack_document("prod")
    document["config"]["platform:database"] = {"engine": "postgres"}
    return write_stack(directory, document, name="Pulumi.prod.yaml")


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_of(_postgres_stack(tmp_path_factory.mktemp("pg")), "prod")


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure()
        yield process


def _one(plan: Plan, type_: str, name: str) -> PlannedResource:
    return next(r for r in plan.resources if r.type == type_ and r.name == name)


def _env(resource: PlannedResource, *path: str) -> dict[str, Any]:
    container: Any = resource.inputs
    for key in path:
        container = container[key]
    return {e["name"]: e.get("value", e.get("valueSource")) for e in container[0]["envs"]}


def test_prod_with_postgres_plans_clean(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("plan", "--stack", "prod", "--config-file", str(_postgres_stack(tmp_path)))

    assert result.code == 0, result.err
    assert "0 violations" in result.out
    assert "gcp:sql/databaseInstance:DatabaseInstance  postgres-primary" in result.out
    assert not list(PROJECT_DIR.glob("Pulumi.*-*.yaml")), "no stray stack file in the project"


def test_the_primary_is_private_tls_only_regional_backed_up_and_protected(plan: Plan) -> None:
    primary = _one(plan, SQL, "postgres-primary").inputs
    settings = primary["settings"]
    assert settings["ipConfiguration"]["ipv4Enabled"] is False
    assert settings["ipConfiguration"]["sslMode"] == "ENCRYPTED_ONLY"
    assert "authorizedNetworks" not in settings["ipConfiguration"]
    assert settings["availabilityType"] == "REGIONAL"
    backup = settings["backupConfiguration"]
    assert backup["enabled"] is True and backup["pointInTimeRecoveryEnabled"] is True
    assert primary["deletionProtection"] is True and settings["deletionProtectionEnabled"] is True
    assert {"name": "log_lock_waits", "value": "on"} in settings["databaseFlags"]


def test_the_replica_is_in_the_failover_region_of_the_primary(plan: Plan) -> None:
    primary = _one(plan, SQL, "postgres-primary").inputs
    replica = _one(plan, SQL, "postgres-replica").inputs
    assert replica["masterInstanceName"] == primary["name"]
    assert replica["region"] == "us-east1" != primary["region"]
    assert replica["settings"]["ipConfiguration"]["privateNetwork"] == primary["settings"]["ipConfiguration"][
        "privateNetwork"]


def test_the_engine_gets_postgres_settings_and_no_pocketbase_credential(plan: Plan) -> None:
    env = _env(_one(plan, RUN, "engine"), "template", "containers")
    assert env["STORAGE"] == "postgres" and env["POSTGRES_DB"] == DATABASE and env["POSTGRES_USER"] == ENGINE_USER
    assert env["POSTGRES_PORT"] == "5432"
    for secret in ("POSTGRES_PASSWORD", "POSTGRES_CA_CERT"):
        assert "secretKeyRef" in env[secret], f"{secret} is not read from Secret Manager"
    assert not {"POCKETBASE_PASSWORD", "POCKETBASE_URL", "POCKETBASE_EMAIL"} & env.keys()
    assert "POSTGRES_MIGRATOR_PASSWORD" not in env


def test_the_migrate_job_runs_the_engine_image_as_the_schema_owner_with_its_own_account(plan: Plan) -> None:
    job = _one(plan, JOB, MIGRATE_JOB)
    engine = _one(plan, RUN, "engine")
    task = job.inputs["template"]["template"]
    container = task["containers"][0]
    assert container["commands"] == list(MIGRATE_COMMAND)
    assert container["image"] == engine.inputs["template"]["containers"][0]["image"]
    env = _env(job, "template", "template", "containers")
    # PG.md's migration step: the migrator's account on the same host, database and CA, granting POSTGRES_USER.
    assert {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_CA_CERT",
            "POSTGRES_MIGRATOR_USER", "POSTGRES_MIGRATOR_PASSWORD"} <= env.keys()
    assert env["POSTGRES_USER"] == ENGINE_USER and env["POSTGRES_DB"] == DATABASE
    assert env["POSTGRES_MIGRATOR_USER"] == MIGRATOR_USER
    assert "secretKeyRef" in env["POSTGRES_MIGRATOR_PASSWORD"]
    # The step creates and strips the engine's role and sets its password (engine/migrate.py): the engine's
    # password, from a secret of the job's own, never the engine's POSTGRES_PASSWORD variable.
    assert "secretKeyRef" in env["POSTGRES_ENGINE_PASSWORD"]
    assert "POSTGRES_PASSWORD" not in env
    assert task["serviceAccount"] != engine.inputs["template"]["serviceAccount"]
    # Its secrets are read by its account alone.
    readers = [r for r in plan.resources if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"
               and str(r.inputs.get("secretId", "")).startswith(f"{MIGRATE_JOB}-prod-")]
    assert readers and all(r.name.startswith(f"{MIGRATE_JOB}-") for r in readers)


def test_the_engine_role_is_no_cloud_sql_user_and_its_password_reaches_the_job_alone(plan: Plan) -> None:
    """"All users you create using Cloud SQL are created as part of the cloudsqlsuperuser role, and have the same set
    of attributes as the postgres user: CREATEROLE, CREATEDB, and LOGIN" (https://cloud.google.com/sql/docs/postgres/
    users): the engine's role is created by `engine-migrate` instead, so the only API user is the migrator, which
    needs CREATEROLE to create it. The engine's password goes to the engine's secret and to one of the job's, each read
    by that one service account."""
    users = [r for r in plan.resources if r.type == USER]
    assert [u.inputs["name"] for u in users] == [MIGRATOR_USER]
    engine = _one(plan, RUN, "engine")
    job = _one(plan, JOB, MIGRATE_JOB)
    members = {r.inputs.get("secretId"): r.inputs.get("member") for r in plan.resources
               if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"}
    job_secret = _env(job, "template", "template", "containers")["POSTGRES_ENGINE_PASSWORD"]["secretKeyRef"]["secret"]
    engine_secret = _env(engine, "template", "containers")["POSTGRES_PASSWORD"]["secretKeyRef"]["secret"]
    assert job_secret != engine_secret
    readers = [r for r in plan.resources if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"
               and r.inputs.get("secretId") == job_secret]
    assert len(readers) == 1 and job_secret in members, readers
    assert readers[0].name.startswith(f"{MIGRATE_JOB}-")


def _inputs(plan: Plan) -> list[AnalyzerInput]:
    return [AnalyzerInput(r.urn, r.type, r.name, copy.deepcopy(r.wire_inputs)) for r in plan.resources if r.custom]


def _mandatory(pack: PolicyPackProcess, resources: list[AnalyzerInput]) -> list[tuple[str, str]]:
    responses = [pack.analyze(r) for r in resources] + [pack.analyze_stack(resources)]
    return [(d.policyName, d.message) for resp in responses for d in resp.diagnostics if d.enforcementLevel == 1]


def _weaken(resources: list[AnalyzerInput], name: str,
            change: Callable[[dict[str, Any]], None]) -> list[AnalyzerInput]:
    out: list[AnalyzerInput] = []
    for r in resources:
        if r.name == name:
            props = copy.deepcopy(dict(r.properties))
            change(props)
            r = AnalyzerInput(r.urn, r.type, r.name, props, r.parent)
        out.append(r)
    return out


def _set(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        target: Any = props
        for key in path[:-1]:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    return change


def test_the_planned_postgres_resources_pass_the_pack(plan: Plan, pack: PolicyPackProcess) -> None:
    resources = [r for r in _inputs(plan) if r.type in (SQL, USER, JOB)
                 or r.type.startswith(("gcp:servicenetworking/", "gcp:serviceaccount/"))]
    assert _mandatory(pack, resources) == []


WEAKENINGS: list[tuple[str, str, Callable[[dict[str, Any]], None], str, str]] = [
    ("public address", "postgres-primary", _set("settings", "ipConfiguration", "ipv4Enabled", value=True),
     "PLAT-DATA-010", "public IPv4"),
    ("public address by default", "postgres-primary", _set("settings", "ipConfiguration", "ipv4Enabled", value=None),
     "PLAT-DATA-010", "the API's default is true"),
    ("authorized networks", "postgres-primary",
     _set("settings", "ipConfiguration", "authorizedNetworks", value=[{"value": "0.0.0.0/0"}]),
     "PLAT-DATA-010", "authorized network"),
    ("no TLS", "postgres-primary",
     _set("settings", "ipConfiguration", "sslMode", value="ALLOW_UNENCRYPTED_AND_ENCRYPTED"),
     "PLAT-DATA-010", "without TLS"),
    ("TLS left to the default", "postgres-replica", _set("settings", "ipConfiguration", "sslMode", value=None),
     "PLAT-DATA-010", "without TLS"),
    ("no backups", "postgres-primary", _set("settings", "backupConfiguration", "enabled", value=False),
     "PLAT-DATA-011", "automated backups are off"),
    ("no PITR", "postgres-primary",
     _set("settings", "backupConfiguration", "pointInTimeRecoveryEnabled", value=False),
     "PLAT-DATA-011", "point-in-time recovery is off"),
    ("too few backups kept", "postgres-primary",
     _set("settings", "backupConfiguration", "backupRetentionSettings", "retainedBackups", value=3),
     "PLAT-DATA-011", "keeps 3 backups"),
    ("no HA in prod", "postgres-primary", _set("settings", "availabilityType", value="ZONAL"),
     "PLAT-DATA-011", "expected REGIONAL"),
    ("no provider deletion protection", "postgres-primary", _set("deletionProtection", value=False),
     "PLAT-DATA-011", "deletionProtection is false"),
    ("no API deletion protection", "postgres-replica", _set("settings", "deletionProtectionEnabled", value=False),
     "PLAT-DATA-011", "deletionProtectionEnabled is not true"),
    ("a typed password", "postgres-user-migrator", _set("password", value="Winter2026!"),
     "PLAT-DATA-013", "not a generated one"),
]


@pytest.mark.parametrize(("name", "change", "rule", "says"), [w[1:] for w in WEAKENINGS],
                         ids=[w[0] for w in WEAKENINGS])
def test_each_weakening_of_the_database_is_refused(plan: Plan, pack: PolicyPackProcess, name: str,
                                                   change: Callable[[dict[str, Any]], None], rule: str,
                                                   says: str) -> None:
    resources = _weaken([r for r in _inputs(plan) if r.type in (SQL, USER)], name, change)

    found = _mandatory(pack, resources)

    assert any(r == rule and says in message for r, message in found), found


def test_the_engine_signing_in_as_a_cloud_sql_user_is_refused(plan: Plan, pack: PolicyPackProcess) -> None:
    """A Cloud SQL API user (cloudsqlsuperuser, CREATEROLE, CREATEDB) as the login of a Cloud Run service: the API
    user renamed to the engine's POSTGRES_USER, as the program declared it before (PLAT-DATA-014)."""
    resources = _weaken([r for r in _inputs(plan) if r.type in (SQL, USER, RUN)], "postgres-user-migrator",
                        _set("name", value=ENGINE_USER))

    found = _mandatory(pack, resources)

    assert any(r == "PLAT-DATA-014" and f"{ENGINE_USER!r}" in m and "cloudsqlsuperuser" in m for r, m in found), found
    as_planned = _mandatory(pack, [r for r in _inputs(plan) if r.type in (SQL, USER, RUN)])
    assert not [m for r, m in as_planned if r == "PLAT-DATA-014"], as_planned


def test_prod_without_a_replica_is_refused(plan: Plan, pack: PolicyPackProcess) -> None:
    resources = [r for r in _inputs(plan) if r.type in (SQL, USER) and r.name != "postgres-replica"]

    found = _mandatory(pack, resources)

    assert any(r == "PLAT-DATA-012" and "has no read replica" in m for r, m in found), found


# ---- Alerting (B1-B4 on Postgres, C8): the rules this stack deploys, against hand-written promtool tests ----

PROMTOOL_TESTS = PROJECT_DIR / "tests" / "promtool" / "postgres" / "cloudsql.test.yml"


def _postgres_rules(directory: Path) -> str:
    from components.observability.rules import dump, rule_groups
    from components.observability.stack import plan as telemetry_plan
    from infra.config import load_model
    from infra.stackfile import read_stack_file

    model = load_model(read_stack_file(_postgres_stack(directory), "prod"))
    assert model.database.postgres
    telemetry = telemetry_plan(model.services, model.alerts.overrides, model.alerts.monthly_budget_usd,
                               model.gcp.region if model.gcp else None, postgres=model.database.postgres)
    return dump(rule_groups(telemetry.spec))


def test_the_postgres_alerts_fire_on_cloud_sqls_metrics_as_promtool_evaluates_them(tmp_path: Path) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    (tmp_path / "prometheus-rules.yml").write_text(_postgres_rules(tmp_path))
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)

    result = subprocess.run([promtool, "test", "rules", PROMTOOL_TESTS.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_telemetry_service_reads_cloud_sql_and_only_the_postgres_stack_deploys_its_alerts(
        plan: Plan, committed_plans: dict[str, Plan]) -> None:
    def exporter_flags(p: Plan) -> list[str]:
        service = _one(p, RUN, "telemetry-service")
        sidecar = next(c for c in service.inputs["template"]["containers"] if c["name"] == "stackdriver-exporter")
        return [a for a in sidecar.get("commands", []) + sidecar.get("args", []) if "cloudsql.googleapis.com" in a]

    assert exporter_flags(plan), "Cloud SQL's metrics are not read"
    assert exporter_flags(committed_plans["prod"]) == []
    rules = [r for r in plan.resources if r.type == "grafana:alerting/ruleGroup:RuleGroup"]
    assert rules and "PostgresReplicaLagHigh" in str(rules[0].inputs)
    committed_rules = [r for r in committed_plans["prod"].resources if r.type == "grafana:alerting/ruleGroup:RuleGroup"]
    assert "PostgresReplicaLagHigh" not in str(committed_rules[0].inputs)
