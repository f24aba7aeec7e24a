"""Grafana for one stack (L6, L7): a folder, Slack and e-mail contact points, the notification
policy, rule groups carrying the same PromQL as the generated Prometheus rules, and the dashboards.

Grafana's Prometheus may not hold the platform's recording rules (a hosted Grafana reads whatever
is remote-written to it), so each Grafana rule queries the SLI's full expression (`A`) and compares
it with the threshold (`B`); `tests/test_observability_grafana.py` checks both against the
Prometheus rule of the same spec entry.

No rule is blind: a query that returns nothing is `NoData`, which Grafana notifies as such
(a `DatasourceNoData` alert with the rule's labels), never `OK`; a query that fails is `Error`, likewise
notified (`DatasourceError`) (grafana.com/docs/grafana/latest/alerting/fundamentals/alert-rule-evaluation/
nodata-and-error-states). The absence alerts of every scrape job (`rules.absence_alert`) read `up`, which
is there or absent by design, and alert on both. Each environment has its own Grafana organization
(infra/config.py refuses two on one): the notification policy tree is one per organization, and this
stack owns all of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumiverse_grafana as grafana

from components.observability.dashboards import DASHBOARDS, render
from components.observability.rules import ABSENCE_PREFIX, expanded_alerts
from components.observability.spec import ObservabilitySpec, minutes
from stacks.contracts import ContractError
from stacks.contracts import grafana as grafana_contract
from stacks.contracts.rule import Violation

NO_DATA_STATE = "NoData"
EXEC_ERR_STATE = "Error"
ABSENCE_NO_DATA_STATE = "Alerting"
COVERED_NO_DATA_STATE = "OK"
"""Only for a rule whose absence another rule pages (`no_data_covered_by`): the DR rules read pushes a day
apart, and a new stack has none for its first hours; `NoData` would page them as `DatasourceNoData` at once,
before the first push is due, while the absence alert waits its `for` and then pages."""


NO_DATA_PAGED_BY = "no_data_paged_by"
"""The annotation naming, on a rule whose no data reads as OK, the rule that pages that absence."""


def no_data_state(alert: str, spec: ObservabilitySpec) -> str:
    """How a rule reads a query that returns nothing: absence alerts (and the ones covering another rule's
    absence) as Alerting, a covered rule as OK, every other as NoData, which Grafana notifies."""
    covered_by = {a.name: a.no_data_covered_by for a in spec.alerts if a.no_data_covered_by is not None}
    if alert.startswith(ABSENCE_PREFIX) or alert in covered_by.values():
        return ABSENCE_NO_DATA_STATE
    return COVERED_NO_DATA_STATE if alert in covered_by else NO_DATA_STATE


@dataclass(frozen=True)
class AlertingArgs:
    environment: str
    spec: ObservabilitySpec
    prometheus_datasource_uid: str
    emails: tuple[str, ...]
    slack_webhook_url: pulumi.Input[str]
    file_provisioned_dashboards: frozenset[str] = frozenset()
    """UIDs this Grafana already loads from provisioning files (the self-hosted one's
    `provisioned_dashboard_uids`): the API cannot save those, so none may be declared here too."""


def api_dashboards(name: str, environment: str, file_provisioned: frozenset[str]) -> dict[str, str]:
    """The dashboards created through the API, by name, as JSON; refused for a UID a file provisions.

    Grafana answers such a save with 400 "Cannot save provisioned dashboard": `BuildSaveDashboardCommand`
    returns `dashboards.ErrDashboardCannotSaveProvisionedDashboard` when `GetProvisionedDashboardDataByDashboardID`
    finds the dashboard (grafana/grafana pkg/services/dashboards/service/dashboard_service.go; the error is
    `DashboardErr{Reason: "Cannot save provisioned dashboard", StatusCode: 400}` in
    pkg/services/dashboards/errors.go). `overwrite` does not lift it. The refusal is the contract's rule GF-PROV-001
    (stacks/contracts/grafana.py), raised as `ContractError` so `plan` reports it with exit 2, naming the
    `grafana:oss/Dashboard` (`<name>-dashboard-<dashboard>`) that would have been declared."""
    rendered = {dashboard: render(dashboard, environment) for dashboard in DASHBOARDS}
    rule = next(r for r in grafana_contract.RULES if r.id == "GF-PROV-001")
    both = [Violation(grafana_contract.DASHBOARD, f"{name}-dashboard-{dashboard}", rule,
                      f"uid {uid!r} is also provisioned from a file of the self-hosted Grafana")
            for dashboard, uid in ((d, json.loads(text)["uid"]) for d, text in rendered.items())
            if uid in file_provisioned]
    if both:
        raise ContractError(both)
    return rendered


def _query(datasource_uid: str, expr: str) -> str:
    return json.dumps({"refId": "A", "expr": expr, "instant": True, "intervalMs": 60000, "maxDataPoints": 43200,
                       "datasource": {"type": "prometheus", "uid": datasource_uid}}, sort_keys=True)


def _threshold(above: float) -> str:
    return json.dumps({"refId": "B", "type": "threshold", "expression": "A",
                       "datasource": {"type": "__expr__", "uid": "__expr__"},
                       "conditions": [{"evaluator": {"type": "gt", "params": [above]}}]}, sort_keys=True)


class Alerting(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlertingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:observability:Alerting", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env = args.environment
        folder = grafana.oss.Folder(f"{name}-folder", title=f"Platform alerts ({env})", uid=f"platform-{env}",
                                    opts=child)
        slack = grafana.alerting.ContactPoint(
            f"{name}-slack", name=f"platform-{env}-slack",
            slacks=[{"url": args.slack_webhook_url, "title": "{{ .CommonLabels.alertname }}"}], opts=child)
        email = grafana.alerting.ContactPoint(
            f"{name}-email", name=f"platform-{env}-email",
            emails=[{"addresses": list(args.emails), "single_email": True}], opts=child)
        # Grafana has one notification policy tree per organisation: this resource owns all of it.
        grafana.alerting.NotificationPolicy(
            f"{name}-policy",
            contact_point=email.name,
            group_bies=["alertname", "environment"],
            policies=[
                {"matchers": [{"label": "severity", "match": "=", "value": "page"},
                              {"label": "environment", "match": "=", "value": env}],
                 "contact_point": slack.name, "continue_": True, "group_wait": "30s", "repeat_interval": "1h"},
                {"matchers": [{"label": "severity", "match": "=~", "value": "page|ticket"}],
                 "contact_point": email.name, "repeat_interval": "4h"},
            ],
            opts=child,
        )
        rules: list[grafana.alerting.RuleGroupRuleArgsDict] = []
        covered_by = {a.name: a.no_data_covered_by for a in args.spec.alerts if a.no_data_covered_by is not None}
        for alert in expanded_alerts(args.spec):
            # A rule whose no data reads as OK names the rule that pages its absence, for the pack to check
            # (PLAT-OBS-001).
            paged_by = {NO_DATA_PAGED_BY: covered_by[alert.name]} \
                if no_data_state(alert.name, args.spec) == COVERED_NO_DATA_STATE and alert.name in covered_by else {}
            rules.append({
                "name": alert.name,
                "condition": "B",
                "for_": f"{minutes(alert.for_)}m",
                "labels": {**alert.labels, "environment": env},
                "annotations": {**alert.annotations, **paged_by},
                "no_data_state": no_data_state(alert.name, args.spec),
                "exec_err_state": EXEC_ERR_STATE,
                "datas": [
                    {"ref_id": "A", "datasource_uid": args.prometheus_datasource_uid,
                     "relative_time_range": {"from_": 600, "to": 0},
                     "model": _query(args.prometheus_datasource_uid, alert.query)},
                    {"ref_id": "B", "datasource_uid": "__expr__", "relative_time_range": {"from_": 0, "to": 0},
                     "model": _threshold(alert.above)},
                ],
            })
        grafana.alerting.RuleGroup(f"{name}-rules", name="platform-slos", folder_uid=folder.uid, interval_seconds=60,
                                   rules=rules, opts=child)
        for dashboard, config_json in api_dashboards(name, env, args.file_provisioned_dashboards).items():
            grafana.oss.Dashboard(f"{name}-dashboard-{dashboard}", folder=folder.uid, overwrite=True,
                                  config_json=config_json, opts=child)
        self.register_outputs({})

