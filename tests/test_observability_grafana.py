"""Under the mock engine, each stack declares Grafana's folder, contact points, the notification
policy and the rule groups, and each Grafana rule carries the PromQL of the Prometheus rule
generated from the same spec entry. No rule is blind: none maps missing data or an error to OK. Each
environment has its own folder and dashboard UIDs, and config refuses two environments on one Grafana
organization."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.observability.__main__ import stack_plan
from components.observability.rules import rule_groups
from components.observability.spec import ObservabilitySpec, minutes
from infra.config import ConfigError
from infra.plan import Plan
from tests.conftest import STACKS, plan_of, stack_document, write_stack


def _inputs(plan: Plan, suffix: str) -> list[dict[str, object]]:
    return [r.inputs for r in plan.resources if r.type.endswith(suffix)]


def _expand(expr: str, recorded: dict[str, str]) -> str:
    for name in sorted(recorded, key=len, reverse=True):
        expr = expr.replace(name, f"({recorded[name]})")
    return expr


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_declares_contact_points_one_policy_and_the_rule_group(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    plan = committed_plans[stack]
    points = {p["name"]: p for p in _inputs(plan, "alerting/contactPoint:ContactPoint")}

    assert set(points) == {f"platform-{stack}-slack", f"platform-{stack}-email"}
    assert str(points[f"platform-{stack}-slack"]["slacks"]).startswith("[secret:"), "the webhook URL is a secret"
    [policy] = _inputs(plan, "alerting/notificationPolicy:NotificationPolicy")
    routes = policy["policies"]
    assert isinstance(routes, list)
    assert routes[0]["contactPoint"] == f"platform-{stack}-slack"
    assert {"label": "environment", "match": "=", "value": stack} in routes[0]["matchers"]
    [folder] = _inputs(plan, "oss/folder:Folder")
    assert folder["uid"] == f"platform-{stack}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_grafana_rule_has_the_promql_threshold_and_duration_of_its_prometheus_rule(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    groups = rule_groups(stack_plan(stack).spec)["groups"]
    recorded = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    prometheus = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    [group] = _inputs(committed_plans[stack], "alerting/ruleGroup:RuleGroup")
    rules = group["rules"]
    assert isinstance(rules, list)

    assert {r["name"] for r in rules} == set(prometheus)
    for rule in rules:
        source = prometheus[rule["name"]]
        query = json.loads(rule["datas"][0]["model"])["expr"]
        threshold = json.loads(rule["datas"][1]["model"])["conditions"][0]["evaluator"]["params"][0]
        if " and " in source["expr"]:
            assert (query, threshold) == (_expand(source["expr"], recorded), 0)
        else:
            assert f"{query} > {threshold:g}" == _expand(source["expr"], recorded)
        assert minutes(rule["for"]) == minutes(source.get("for", "0m"))
        assert rule["labels"]["environment"] == stack and rule["labels"]["severity"] == source["labels"]["severity"]


def test_a_stack_overrides_a_threshold_for_its_grafana_and_its_self_hosted_prometheus(tmp_path: Path) -> None:
    document = stack_document("integration")
    document["config"]["platform:alerts"]["overrides"] = {"ApiLatencyP95High": {"above": 0.9, "for": "10m"}}
    plan = plan_of(write_stack(tmp_path, document), "integration")

    [group] = _inputs(plan, "alerting/ruleGroup:RuleGroup")
    rules = group["rules"]
    assert isinstance(rules, list)
    [rule] = [r for r in rules if r["name"] == "ApiLatencyP95High"]
    assert json.loads(rule["datas"][1]["model"])["conditions"][0]["evaluator"]["params"] == [0.9]
    assert rule["for"] == "10m"
    [prometheus] = [r for r in plan.resources if r.inputs.get("name") == "prometheus"]
    rules_file = {u["file"]: u["content"] for u in prometheus.wire_inputs["uploads"]}["/etc/prometheus/rules.yml"]
    assert "sli:api_latency_p95_seconds > 0.9" in rules_file and "for: 10m" in rules_file


def _grafana_rules(plan: Plan) -> list[dict[str, object]]:
    [group] = _inputs(plan, "alerting/ruleGroup:RuleGroup")
    rules = group["rules"]
    assert isinstance(rules, list)
    return rules


def _query(rule: dict[str, object]) -> str:
    return str(json.loads(str(rule["datas"][0]["model"]))["expr"])  # type: ignore[index]


def _covered(rule: dict[str, object], rules: list[dict[str, object]], spec: ObservabilitySpec) -> bool:
    """A rule may read no data as OK only if the spec names the rule that pages its absence, and that rule is in
    the same group, reads no data as Alerting and queries `absent_over_time` of a series pushed with the ones the
    covered rule reads (one exporter of the spec's `exporters`: they arrive, or not, together)."""
    covering = {a.name: a.no_data_covered_by for a in spec.alerts}.get(str(rule["name"]))
    found = [r for r in rules if r["name"] == covering]
    if not found or found[0]["noDataState"] != "Alerting" or "absent_over_time(" not in _query(found[0]):
        return False
    watched = _query(found[0]).split("absent_over_time(", 1)[1].split("[", 1)[0]
    return any(watched in metrics and any(m in _query(rule) for m in metrics) for metrics in spec.exporters.values())


def blind_rules(plan: Plan) -> list[str]:
    """Grafana rules that read missing data or a failed query as healthy, the covered ones aside."""
    rules = _grafana_rules(plan)
    spec = stack_plan(plan.stack).spec
    return [f"{r['name']}: noDataState {r['noDataState']}, execErrState {r['execErrState']}"
            for r in rules if r.get("execErrState") == "OK"
            or (r.get("noDataState") == "OK" and not _covered(r, rules, spec))]


@pytest.mark.parametrize("stack", STACKS)
def test_no_grafana_rule_reads_missing_data_or_an_error_as_healthy(stack: str, committed_plans: dict[str, Plan]) -> None:
    rules = _grafana_rules(committed_plans[stack])

    assert blind_rules(committed_plans[stack]) == []
    assert {r["execErrState"] for r in rules} == {"Error"}
    absence = [r for r in rules if str(r["name"]).startswith("TelemetryAbsent")]
    assert absence and {r["noDataState"] for r in absence} == {"Alerting"}
    # The restore test's alerts (where it runs): its absence pages (after its `for`), the two it covers do not.
    labels = {str(r["name"]): r["labels"] for r in rules}
    dr = {str(r["name"]): r["noDataState"] for r in rules
          if labels[str(r["name"])].get("requirement") in ("A5", "C7")}  # type: ignore[union-attr]
    expected_dr = {} if stack == "integration" else {
        "RestoreTestNotReporting": "Alerting", "BackupRestoreTestStale": "OK", "ReplicaLagAboveRpo": "OK"}
    assert dr == expected_dr
    assert {r["noDataState"] for r in rules if r not in absence and r["name"] not in dr} == {"NoData"}


@pytest.mark.parametrize(("state", "value"), [("EXEC_ERR_STATE", "OK"), ("NO_DATA_STATE", "OK")])
def test_a_rule_mapping_errors_or_missing_data_to_ok_is_caught(
    state: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from components.observability import grafana

    monkeypatch.setattr(grafana, state, value)
    plan = plan_of(write_stack(tmp_path, stack_document("integration")), "integration")

    assert blind_rules(plan)


@pytest.mark.parametrize("stack", STACKS)
def test_each_scrape_job_of_the_stack_has_its_absence_alert(stack: str, committed_plans: dict[str, Plan]) -> None:
    jobs = {job.name for job in stack_plan(stack).layout.jobs}
    labels = {r["labels"]["job"] for r in _grafana_rules(committed_plans[stack])  # type: ignore[index]
              if str(r["name"]).startswith("TelemetryAbsent")}

    assert labels == jobs


def test_dashboards_and_folders_differ_between_environments(committed_plans: dict[str, Plan]) -> None:
    uids: dict[str, set[str]] = {}
    for stack in ("staging", "prod"):
        dashboards = _inputs(committed_plans[stack], "oss/dashboard:Dashboard")
        uids[stack] = {json.loads(str(d["configJson"]))["uid"] for d in dashboards}
        assert uids[stack] == {f"platform-{stack}-{name}" for name in ("overview", "routes", "tenants")}
        [folder] = _inputs(committed_plans[stack], "oss/folder:Folder")
        assert folder["uid"] == f"platform-{stack}"

    assert not uids["staging"] & uids["prod"]


def test_staging_and_prod_have_their_own_grafana_and_config_refuses_one_organization_for_two(tmp_path: Path) -> None:
    # Checked against the project's stack files, where Pulumi runs the program (the working directory).
    staging, prod = stack_document("staging"), stack_document("prod")
    assert staging["config"]["grafana:url"] != prod["config"]["grafana:url"]
    staging["config"]["grafana:url"] = prod["config"]["grafana:url"] + "/"

    with pytest.raises(ConfigError) as refused:
        plan_of(write_stack(tmp_path, staging, "Pulumi.staging.yaml"), "staging")

    assert (
        "Pulumi.staging.yaml: grafana:url: https://acme-commerce.grafana.net (organization 1) is already the Grafana "
        "of environment 'prod' (Pulumi.prod.yaml); expected one Grafana organization per environment, since each "
        "stack owns its organization's whole notification policy tree") in str(refused.value).splitlines()
    # Another organization is another policy tree, but a Grafana Cloud stack is one environment's whatever the
    # organization (issue #22 item 14): still refused, as prod's Grafana Cloud stack.
    staging["config"]["grafana:orgId"] = 2
    with pytest.raises(ConfigError) as refused:
        plan_of(write_stack(tmp_path, staging, "Pulumi.staging.yaml"), "staging")
    lines = str(refused.value).splitlines()
    assert not any("is already the Grafana of environment" in ln for ln in lines), lines
    assert any(ln.startswith('Pulumi.staging.yaml: grafana:url: "https://acme-commerce.grafana.net/" is also prod\'s '
                             "Grafana Cloud stack (Pulumi.prod.yaml: grafana:url)") for ln in lines), lines
