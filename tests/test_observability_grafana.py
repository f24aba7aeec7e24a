"""Under the mock engine, each stack declares Grafana's folder, contact points, the notification
policy and the rule groups, and each Grafana rule carries the PromQL of the Prometheus rule
generated from the same spec entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.observability.rules import rule_groups
from components.observability.spec import load, minutes
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
    groups = rule_groups(load())["groups"]
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
