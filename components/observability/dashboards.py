"""Grafana dashboards, as JSON models generated here (goldens in `generated/dashboards/`).

Three views of the same metrics: the service overview (RED, saturation, cache, database, web
vitals, SLO burn and 30-day trends for capacity planning), per route, and per tenant. Deployed, each
carries its environment in its UID (`platform-<environment>-<name>`): a Grafana shared by mistake keeps
one copy per environment instead of each deploy overwriting the other's. The goldens have none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]
    """(PromQL, legend) pairs."""
    unit: str = "short"
    width: int = 12
    threshold: float | None = None
    """An objective, drawn as a red line across the graph (green below it); on a stat, its colour."""
    kind: str = "timeseries"
    """"timeseries", "stat" (one number, the status row) or "text" (markdown in `content`)."""
    content: str = ""
    height: int = 8


@dataclass(frozen=True)
class Row:
    """A row header: the panels after it, up to the next row, are its own."""

    title: str


def _thresholds(value: float) -> dict[str, Any]:
    # Grafana's time series: `custom.thresholdsStyle.mode` "line" draws each threshold step as a line
    # (grafana/grafana's schema, GraphTresholdsStyleMode: "off" | "line" | "area" | "line+area" | "series");
    # the base step has no value (`null`), the next one starts at the objective.
    return {"custom": {"thresholdsStyle": {"mode": "line"}},
            "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                         {"color": "red", "value": value}]}}


def _panel(panel: Panel | Row, index: int, x: int, y: int) -> dict[str, Any]:
    if isinstance(panel, Row):
        return {"id": index + 1, "type": "row", "title": panel.title, "collapsed": False, "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
    grid = {"h": panel.height, "w": panel.width, "x": x, "y": y}
    if panel.kind == "text":
        return {"id": index + 1, "type": "text", "title": panel.title, "gridPos": grid,
                "options": {"mode": "markdown", "content": panel.content}}
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.threshold is not None:
        defaults |= _thresholds(panel.threshold)
        if panel.kind == "stat":
            del defaults["custom"]  # a stat colours its number by the steps; it draws no line
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for i, (expr, legend) in enumerate(panel.exprs)],
    }


def _layout(panels: list[Panel | Row]) -> list[dict[str, Any]]:
    """Left to right, wrapping at Grafana's 24 columns; a row starts on a line of its own."""
    placed: list[dict[str, Any]] = []
    x = y = line_height = 0
    for index, panel in enumerate(panels):
        if isinstance(panel, Row) or x + panel.width > 24:
            y, x, line_height = y + line_height, 0, 0
        if isinstance(panel, Row):
            placed.append(_panel(panel, index, 0, y))
            y += 1
            continue
        placed.append(_panel(panel, index, x, y))
        x, line_height = x + panel.width, max(line_height, panel.height)
    return placed


ANNOTATIONS = {"deploy": "blue", "canary": "yellow", "rollback": "red", "failover": "purple"}
"""Events the deploy workflow and the ops commands post to Grafana's annotations API with these tags
(infra/ops/annotate.py), drawn on every dashboard."""


def _annotations() -> dict[str, Any]:
    # Grafana's built-in annotation source queried by tag (grafana/grafana: `AnnotationQuery` with
    # `datasource: {"type": "grafana", "uid": "-- Grafana --"}` and `target: {"type": "tags", "tags": [...]}`).
    builtin = {"type": "grafana", "uid": "-- Grafana --"}
    return {"list": [{"name": f"{tag}s", "datasource": builtin, "enable": True, "iconColor": color,
                      "target": {"type": "tags", "tags": [tag], "matchAny": True, "limit": 100}}
                     for tag, color in ANNOTATIONS.items()]}


def _dashboard(uid: str, title: str, panels: list[Panel | Row], variables: list[dict[str, Any]]) -> dict[str, Any]:
    templating = [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}]
    return {"uid": uid, "title": title, "schemaVersion": 39, "editable": False, "time": {"from": "now-6h", "to": "now"},
            "tags": ["platform"], "templating": {"list": templating + variables}, "annotations": _annotations(),
            "panels": _layout(panels)}


def _variable(name: str, metric: str) -> dict[str, Any]:
    return {"name": name, "type": "query", "datasource": DATASOURCE, "query": f"label_values({metric}, {name})",
            "includeAll": True, "multi": True, "refresh": 2}


RATE = "sum(rate(http_requests_total[5m]))"


def _no_errors_is_zero(by: str, errors: str, requests: str) -> str:
    """A ratio of errors per `by` that reads 0, not "No data", where requests came and none failed (a series of
    errors exists only after the first one)."""
    total = f"sum by ({by}) (rate({requests}[5m]))"
    return f"(sum by ({by}) (rate({errors}[5m])) or {total} * 0) / {total}"


def _alert_expr(name: str) -> str:
    from components.observability.spec import load

    [alert] = [a for a in load().alerts if a.name == name]
    return alert.expr


def _legend(expr: str, fallback: str) -> str:
    """One line per container (`by (name)`) or per tenant (`by (le, tenant)`), else the requirement's id."""
    for label in ("name", "tenant"):
        if f"by ({label})" in expr or f", {label})" in expr:
            return "{{" + label + "}}"
    return fallback


def objectives() -> list[Panel | Row]:
    """The Objectives row: each SLO of the spec as the series it records, with the document's number drawn.
    The panel queries the recorded expression itself, not `slo:*`: a hosted Grafana may not hold the platform's
    recording rules (components/observability/grafana.py)."""
    from components.observability.spec import load, objective_expr

    spec = load()
    return [Row("Objectives"), *(
        Panel(f"{o.requirement} objective: {o.record} {o.operator} {o.objective:g}",
              ((objective_expr(spec, o), _legend(objective_expr(spec, o), o.requirement)),), o.unit,
              threshold=o.objective)
        for o in spec.objectives)]


P95 = "histogram_quantile(0.95, sum by (le{by}) (rate(http_request_duration_seconds_bucket{sel}[5m])))"


ERRORS_30D = 'sum(increase(http_requests_total{status=~"5.."}[30d])) or vector(0)'
REQUESTS_30D = "sum(increase(http_requests_total[30d]))"
M2_BUDGET = 0.001
"""M2: under 0.1 % of requests fail (5xx), over the SLO's 30 days: the error budget."""
RUNBOOKS = """**Runbooks** (in the platform's repository, `docs/runbooks/`)

- failover to the standby region: `docs/runbooks/failover.md`
- roll back the engine or an infrastructure change: `docs/runbooks/rollback.md`
- restore PocketBase to the latest state or a point in time: `docs/runbooks/restore.md`
- every alert carries its own runbook line (Alerting > alert rules)"""


def status() -> list[Panel | Row]:
    """What an on-call reads first: the 30 days' availability and budget left, P95 now, what fires."""
    return [
        Row("Status: the last 30 days, and now"),
        Panel("Availability, 30 days", ((f"1 - ({ERRORS_30D}) / {REQUESTS_30D}", "availability"),), "percentunit",
              4, kind="stat", height=6),
        Panel("Error budget left, 30 days", ((f"1 - (({ERRORS_30D}) / {REQUESTS_30D}) / {M2_BUDGET}", "left"),),
              "percentunit", 4, kind="stat", height=6),
        Panel("API P95 now (M1 <= 500 ms)", ((P95.format(by="", sel=""), "p95"),), "s", 4, threshold=0.5, kind="stat",
              height=6),
        Panel("Alerts firing", (('count(ALERTS{alertstate="firing"}) or vector(0)', "firing"),), "short", 4,
              kind="stat", height=6),
        Panel("Runbooks", (), width=8, kind="text", content=RUNBOOKS, height=6),
    ]


def overview() -> dict[str, Any]:
    return _dashboard("platform-overview", "Platform: service overview", [
        *status(),
        Row("Traffic and errors"),
        Panel("Requests per second (M5)", ((RATE, "all"),), "reqps"),
        Panel("5xx ratio (M2, SLO < 0.1 %)", (
            ('(sum(rate(http_requests_total{status=~"5.."}[5m])) or vector(0)) / ' + RATE, "5xx"),), "percentunit",
            threshold=M2_BUDGET),
        Panel("API latency P50/P95/P99 (M1, SLO P95 <= 500 ms)", tuple(
            (P95.replace("0.95", str(q)).format(by="", sel=""), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)), "s",
            threshold=0.5),
        Panel("Requests in flight", (("sum(http_requests_in_flight)", "in flight"),)),
        # A canary rollout's revision beside the stable one (the engine's series carry `revision` on Cloud Run:
        # components/observability/cloud.py); the rollout judges the canary on the same series.
        Row("Canary against stable, by revision"),
        Panel("5xx ratio by revision", ((
            _no_errors_is_zero("revision", 'http_requests_total{status=~"5.."}', "http_requests_total"),
            "{{revision}}"),), "percentunit"),
        Panel("P95 latency by revision", ((P95.format(by=", revision", sel=""), "{{revision}}"),), "s"),
        Row("Saturation"),
        # The alerts' own expressions: each backend's source (cAdvisor, Cloud Monitoring, Railway's API).
        Panel("Container CPU (M3, target < 70 %)", ((_alert_expr("ContainerCpuHigh"), "{{name}}"),), "percentunit",
              threshold=0.70),
        Panel("Container memory (M4, target < 70 %)", ((_alert_expr("ContainerMemoryHigh"), "{{name}}"),),
              "percentunit", threshold=0.70),
        Panel("Redis memory against maxmemory (C3)", ((_alert_expr("RedisMemoryHigh"), "redis"),), "percentunit"),
        Panel("Cache hit ratio (C3, C6)", ((
            'sum by (cache) (rate(cache_requests_total{result="hit"}[5m])) / '
            'sum by (cache) (rate(cache_requests_total{result=~"hit|miss"}[5m]))', "{{cache}}"),), "percentunit"),
        Row("Database"),
        Panel("SQLite locks per minute (B1, review above 5)", (
            ("sum(rate(pocketbase_lock_errors_total[5m])) * 60", "locks/min"),), threshold=5),
        Panel("PocketBase calls in flight (B2, above 80)", (("sum(pocketbase_requests_in_flight)", "in flight"),),
              threshold=80),
        Panel("PocketBase error ratio (B3, above 0.5 %)", ((_alert_expr("DbErrorRatioHigh"), "errors"),),
              "percentunit", threshold=0.005),
        Panel("PocketBase latency P95 (B4, above 200 ms)", (
            ("histogram_quantile(0.95, sum by (le) (rate(pocketbase_request_duration_seconds_bucket[5m])))", "p95"),),
            "s", threshold=0.2),
        Row("Web vitals, P75"),
        Panel("LCP P75 (U1 <= 2.5 s)", (
            ("histogram_quantile(0.75, sum by (le) (rate(web_vitals_lcp_seconds_bucket[1h])))", "LCP"),), "s", 6,
            threshold=2.5),
        Panel("INP P75 (U2 <= 100 ms)", (
            ("histogram_quantile(0.75, sum by (le) (rate(web_vitals_inp_seconds_bucket[1h])))", "INP"),), "s", 6,
            threshold=0.1),
        Panel("CLS P75 (U3 <= 0.1)", (
            ("histogram_quantile(0.75, sum by (le) (rate(web_vitals_cls_bucket[1h])))", "CLS"),), "none", 6,
            threshold=0.1),
        Panel("TTFB P95 (U4 <= 300 ms)", ((_alert_expr("WebVitalsTtfbP95High"), "TTFB"),), "s", 6, threshold=0.3),
        Row("Error budget and trends"),
        Panel("Error budget burn, availability (U5)", (
            ("sli:availability_error_ratio:rate1h / 0.001", "1h burn rate"),
            ("sli:availability_error_ratio:rate6h / 0.001", "6h burn rate"))),
        Panel("Trend: daily peak requests per second, 30 days (A6)", (
            ("max_over_time(sum(rate(http_requests_total[5m]))[1d:5m])", "daily peak"),), "reqps"),
        *objectives(),
    ], [])


def routes() -> dict[str, Any]:
    sel = '{route=~"$route"}'
    return _dashboard("platform-routes", "Platform: per route", [
        Panel("Requests per second by route", ((f"sum by (route) (rate(http_requests_total{sel}[5m]))", "{{route}}"),),
              "reqps"),
        Panel("5xx ratio by route", ((
            _no_errors_is_zero("route", 'http_requests_total{route=~"$route",status=~"5.."}',
                               f"http_requests_total{sel}"), "{{route}}"),), "percentunit"),
        Panel("P95 latency by route", ((P95.format(by=", route", sel=sel), "{{route}}"),), "s", 24),
    ], [_variable("route", "http_requests_total")])


def tenants() -> dict[str, Any]:
    sel = '{tenant=~"$tenant"}'
    return _dashboard("platform-tenants", "Platform: per tenant", [
        Panel("Requests per second by tenant", ((f"sum by (tenant) (rate(http_requests_total{sel}[5m]))",
                                                 "{{tenant}}"),), "reqps"),
        Panel("5xx ratio by tenant", ((
            _no_errors_is_zero("tenant", 'http_requests_total{tenant=~"$tenant",status=~"5.."}',
                               f"http_requests_total{sel}"), "{{tenant}}"),), "percentunit"),
        Panel("P95 latency by tenant", ((P95.format(by=", tenant", sel=sel), "{{tenant}}"),), "s"),
        Panel("Orders per hour by tenant", ((f"sum by (tenant) (increase(orders_total{sel}[1h]))", "{{tenant}}"),)),
        Panel("LCP P75 by tenant (U1 <= 2.5 s)", ((
            f"histogram_quantile(0.75, sum by (le, tenant) (rate(web_vitals_lcp_seconds_bucket{sel}[1h])))",
            "{{tenant}}"),), "s", threshold=2.5),
        Panel("Trend: orders per day by tenant, 30 days", ((
            f"sum by (tenant) (increase(orders_total{sel}[1d]))", "{{tenant}}"),), "short"),
    ], [_variable("tenant", "http_requests_total")])


DASHBOARDS = {"overview": overview, "routes": routes, "tenants": tenants}


def uid(name: str, environment: str | None) -> str:
    return f"platform-{environment}-{name}" if environment else f"platform-{name}"


def render(name: str, environment: str | None = None) -> str:
    dashboard = DASHBOARDS[name]()
    dashboard["uid"] = uid(name, environment)
    if environment:
        dashboard["title"] = f"{dashboard['title']} ({environment})"
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
