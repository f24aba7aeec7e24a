"""Prometheus recording and alerting rules, and their promtool tests, generated from the spec.

Every alert compares a recorded SLI, `sli:<name>`, with its threshold. The tests feed that series
directly: one test where the alert fires exactly when the threshold has been crossed for the stated
duration (pending one minute before), one where the SLI stays just under the threshold and nothing
fires. Burn-rate alerts follow the SRE workbook's multiwindow, multi-burn-rate table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from components.observability.agent import ScrapeJob
from components.observability.spec import (
    AlertSpec,
    ObservabilitySpec,
    SloSpec,
    minutes,
    objective_expr,
    unresolved,
)

# (severity, long window, short window, burn rate): page 2 % of the monthly budget in 1 h, 5 % in
# 6 h; ticket 10 % in 3 days (1d/2h at 3x and 3d/6h at 1x).
BURN_RATES = (("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0), ("ticket", "1d", "2h", 3.0),
              ("ticket", "3d", "6h", 1.0))
RULES_FILE = "prometheus-rules.yml"
WINDOW = "{window}"


ABSENT_OVER_TIME = re.compile(r"absent_over_time\((?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\[")


def absent_metric(alert: AlertSpec) -> str | None:
    """The metric an alert on a pushed series' absence watches (`absent_over_time(METRIC[...])`), if it is one."""
    match = ABSENT_OVER_TIME.search(alert.expr)
    return match.group("metric") if match else None


def _alert_rule(alert: AlertSpec) -> dict[str, Any]:
    # An absence alert reads `up` (or the absent metric) itself, not its recorded SLI: Prometheus evaluates rule
    # groups in no set order, and a recorded series one evaluation late would delay the alert that tells of
    # missing data; its SLI is never without a value, so its tests feed the raw series, not `sli:*`.
    absence = alert.name.startswith(ABSENCE_PREFIX) or absent_metric(alert) is not None
    expr = f"({alert.expr}) > {alert.above:g}" if absence else f"sli:{alert.sli} > {alert.above:g}"
    return {
        "alert": alert.name,
        "expr": expr,
        "for": alert.for_,
        "labels": {"severity": alert.severity, "requirement": alert.requirement, **alert.labels},
        "annotations": {"summary": f"{alert.name}: sli:{alert.sli} above {alert.above:g} for {alert.for_}",
                        "runbook": alert.runbook},
    }


def _ratio(slo: SloSpec, window: str) -> str:
    return f"sli:{slo.name}_error_ratio:rate{window}"


def _burn_rules(slo: SloSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    windows = sorted({w for _, long, short, _ in BURN_RATES for w in (long, short)}, key=minutes)
    recording = [{"record": _ratio(slo, w),
                  "expr": f"({slo.errors.replace(WINDOW, w)}) / ({slo.total.replace(WINDOW, w)})"} for w in windows]
    budget = 1 - slo.objective_percent / 100
    alerts: list[dict[str, Any]] = []
    for severity, long, short, rate in BURN_RATES:
        threshold = f"{rate:g} * {budget:g}"
        alerts.append({
            "alert": f"{slo.name.title()}ErrorBudgetBurn{long}",
            "expr": f"({_ratio(slo, long)} > ({threshold})) and ({_ratio(slo, short)} > ({threshold}))",
            "labels": {"severity": severity, "requirement": "U5", "slo": slo.name},
            "annotations": {"summary": f"{slo.name} SLO burns its error budget {rate:g}x too fast over {long} "
                                       f"(confirmed over {short})",
                            "runbook": f"The {slo.name} SLO ({slo.objective_percent:g} %) spends its budget "
                                       f"{rate:g} times faster than it can afford. Find what changed; roll back."},
        })
    return recording, alerts


ABSENCE_FOR = "2m"
ABSENCE_PREFIX = "TelemetryAbsent"


def absence_alert(job: ScrapeJob) -> AlertSpec:
    """No blind alerts: a scrape job that stops reporting alerts by itself. It fires when a target of the
    job is down (`up` is 0) and when nothing of the job arrives at all (`up` is absent: the agent, its
    remote write or the service discovery is gone), which every other alert would read as no data."""
    words = job.name.replace("_", "-").split("-")
    sli = "telemetry_" + "_".join(words) + "_targets_missing"
    selector = f'up{{job="{job.name}"}}'
    return AlertSpec.model_validate({
        "name": ABSENCE_PREFIX + "".join(w.title() for w in words),
        "requirement": "L6",
        "sli": sli,
        "expr": f"(count({selector} == 0) or vector(0)) + (sum(absent({selector})) or vector(0))",
        "above": 0.0,
        "for": ABSENCE_FOR,
        "severity": job.severity,
        "labels": {"service": "telemetry", "job": job.name},
        "runbook": f"The {job.name} scrape job reports nothing, or a target of it is down: {job.what or job.name} "
                   "is unseen, and the alerts that read it see no data. Check the target, the agent and its "
                   "remote write.",
    }, by_alias=True)


def rule_groups(spec: ObservabilitySpec) -> dict[str, Any]:
    if unresolved(spec):
        raise ValueError(f"alerts whose expression the stack has not filled in: {unresolved(spec)}")
    slis = [{"record": f"sli:{a.sli}", "expr": a.expr} for a in spec.alerts]
    alerts = [_alert_rule(a) for a in spec.alerts]
    burn_recording: list[dict[str, Any]] = []
    burn_alerts: list[dict[str, Any]] = []
    for slo in spec.slos:
        recording, alerting = _burn_rules(slo)
        burn_recording += recording
        burn_alerts += alerting
    return {"groups": [
        {"name": "platform-slis", "interval": "1m", "rules": slis},
        {"name": "platform-alerts", "interval": "1m", "rules": alerts},
        {"name": "platform-slo-burn-recording", "interval": "1m", "rules": burn_recording},
        {"name": "platform-slo-burn-alerts", "interval": "1m", "rules": burn_alerts},
        {"name": "platform-slo-objectives", "interval": "1m", "rules": objective_rules(spec)},
    ]}


def objective_rules(spec: ObservabilitySpec) -> list[dict[str, Any]]:
    """One recorded series per SLO objective, `slo:<requirement>:<name>`, in the objective's own unit, so that
    the series compares directly with the document's number (P75 LCP in seconds against 2.5). Alerts stay on
    their own SLIs; these are what the Objectives row of the overview draws."""
    return [{"record": o.record, "expr": objective_expr(spec, o),
             "labels": {"requirement": o.requirement, "objective": f"{o.operator} {o.objective:g}"}}
            for o in spec.objectives]


@dataclass(frozen=True)
class ExpandedAlert:
    """An alert as a single query and a threshold, for a Grafana that lacks the recording rules."""

    name: str
    query: str
    above: float
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]


def expanded_alerts(spec: ObservabilitySpec) -> list[ExpandedAlert]:
    """Every alerting rule of `rule_groups`, its recorded series replaced by their expressions."""
    groups = rule_groups(spec)["groups"]
    recorded = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    expanded: list[ExpandedAlert] = []
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        expr = rule["expr"]
        for name in sorted(recorded, key=len, reverse=True):
            expr = expr.replace(name, f"({recorded[name]})")
        if rule["alert"] in {a.name for a in spec.alerts}:
            query, threshold = expr.rsplit(" > ", 1)
            above = float(threshold)
        else:
            # A burn-rate alert is `(long > t) and (short > t)`: it has a value only while both burn.
            query, above = expr, 0.0
        expanded.append(ExpandedAlert(rule["alert"], query, above, rule.get("for", "0m"), rule["labels"],
                                      rule["annotations"]))
    return expanded


def _expected(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]


def _absence_tests(alert: AlertSpec) -> list[dict[str, Any]]:
    """An absence alert is tested from `up` itself: a target down, nothing at all, every target up."""
    rule = _alert_rule(alert)
    hold = minutes(alert.for_)
    steps = hold + 10
    up = f'up{{job="{alert.labels["job"]}",instance="target:9090"}}'
    at_threshold: list[dict[str, Any]] = [
        {"eval_time": f"{hold - 1}m", "alertname": alert.name, "exp_alerts": []},
        {"eval_time": f"{hold}m", "alertname": alert.name, "exp_alerts": _expected(rule)}]
    return [
        {"name": f"{alert.name} fires once a target is down for {alert.for_}", "interval": "1m",
         "input_series": [{"series": up, "values": f"0x{steps}"}], "alert_rule_test": at_threshold},
        {"name": f"{alert.name} fires once nothing of the job arrives for {alert.for_}", "interval": "1m",
         "input_series": [], "alert_rule_test": at_threshold},
        {"name": f"{alert.name} stays silent while every target is up", "interval": "1m",
         "input_series": [{"series": up, "values": f"1x{steps}"}],
         "alert_rule_test": [{"eval_time": f"{steps}m", "alertname": alert.name, "exp_alerts": []}]},
    ]


def _absent_metric_tests(alert: AlertSpec, metric: str) -> list[dict[str, Any]]:
    """An alert on a pushed metric's absence, tested from the metric: none at all, then one arriving."""
    rule = _alert_rule(alert)
    hold = minutes(alert.for_)
    steps = hold + 10
    return [
        {"name": f"{alert.name} fires once nothing of {metric} arrives for {alert.for_}", "interval": "1m",
         "input_series": [], "alert_rule_test": [
             {"eval_time": f"{hold - 1}m", "alertname": alert.name, "exp_alerts": []},
             {"eval_time": f"{hold}m", "alertname": alert.name, "exp_alerts": _expected(rule)}]},
        {"name": f"{alert.name} stays silent while {metric} arrives", "interval": "1m",
         "input_series": [{"series": metric, "values": f"1x{steps}"}],
         "alert_rule_test": [{"eval_time": f"{steps}m", "alertname": alert.name, "exp_alerts": []}]},
    ]


def rule_tests(spec: ObservabilitySpec, rules_file: str = RULES_FILE) -> dict[str, Any]:
    tests: list[dict[str, Any]] = []
    for alert in spec.alerts:
        if alert.name.startswith(ABSENCE_PREFIX):
            tests += _absence_tests(alert)
            continue
        metric = absent_metric(alert)
        if metric is not None:
            tests += _absent_metric_tests(alert, metric)
            continue
        rule = _alert_rule(alert)
        hold = minutes(alert.for_)
        steps = hold + 10
        over, under = alert.above * 1.05 + 1e-9, alert.above * 0.95
        series = f"sli:{alert.sli}"
        at_threshold = [{"eval_time": f"{hold}m", "alertname": alert.name, "exp_alerts": _expected(rule)}]
        if hold > 0:
            at_threshold.insert(0, {"eval_time": f"{hold - 1}m", "alertname": alert.name, "exp_alerts": []})
        tests.append({"name": f"{alert.name} fires once above {alert.above:g} for {alert.for_}", "interval": "1m",
                      "input_series": [{"series": series, "values": f"{over:g}x{steps}"}],
                      "alert_rule_test": at_threshold})
        tests.append({"name": f"{alert.name} stays silent just under {alert.above:g}", "interval": "1m",
                      "input_series": [{"series": series, "values": f"{under:g}x{steps}"}],
                      "alert_rule_test": [{"eval_time": f"{steps}m", "alertname": alert.name, "exp_alerts": []}]})
    for slo in spec.slos:
        _, alerting = _burn_rules(slo)
        budget = 1 - slo.objective_percent / 100
        for (_, long, short, rate), rule in zip(BURN_RATES, alerting, strict=True):
            burning = f"{rate * budget * 1.1:g}x30"
            calm = f"{rate * budget * 0.9:g}x30"
            tests.append({"name": f"{rule['alert']} fires when both windows burn over {rate:g}x", "interval": "1m",
                          "input_series": [{"series": _ratio(slo, long), "values": burning},
                                           {"series": _ratio(slo, short), "values": burning}],
                          "alert_rule_test": [{"eval_time": "5m", "alertname": rule["alert"],
                                               "exp_alerts": _expected(rule)}]})
            tests.append({"name": f"{rule['alert']} stays silent when only the long window burns", "interval": "1m",
                          "input_series": [{"series": _ratio(slo, long), "values": burning},
                                           {"series": _ratio(slo, short), "values": calm}],
                          "alert_rule_test": [{"eval_time": "5m", "alertname": rule["alert"], "exp_alerts": []}]})
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}


def dump(document: dict[str, Any]) -> str:
    header = "# Generated from components/observability/slos.yaml by `python3 tools/dev.py generate`: do not edit.\n"
    body: str = yaml.safe_dump(document, sort_keys=False, width=120)  # pyright: ignore[reportUnknownMemberType]
    return header + body
