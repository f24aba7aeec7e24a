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
    """An objective, drawn as a red line across the graph (green below it)."""


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


def _panel(panel: Panel | Row, index: int) -> dict[str, Any]:
    if isinstance(panel, Row):
        return {"id": index + 1, "type": "row", "title": panel.title, "collapsed": False, "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": index * 8}}
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.threshold is not None:
        defaults |= _thresholds(panel.threshold)
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": (index * 12) % 24 if panel.width == 12 else 0, "y": index * 8},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for i, (expr, legend) in enumerate(panel.exprs)],
    }


def _dashboard(uid: str, title: str, panels: list[Panel | Row], variables: list[dict[str, Any]]) -> dict[str, Any]:
    templating = [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}]
    return {"uid": uid, "title": title, "schemaVersion": 39, "editable": False, "time": {"from": "now-6h", "to": "now"},
            "tags": ["platform"], "templating": {"list": templating + variables},
            "panels": [_panel(p, i) for i, p in enumerate(panels)]}


def _variable(name: str, metric: str) -> dict[str, Any]:
    return {"name": name, "type": "query", "datasource": DATASOURCE, "query": f"label_values({metric}, {name})",
            "includeAll": True, "multi": True, "refresh": 2}


RATE = "sum(rate(http_requests_total[5m]))"


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


def overview() -> dict[str, Any]:
    return _dashboard("platform-overview", "Platform: service overview", [
        Panel("Requests per second (M5)", ((RATE, "all"),), "reqps"),
        Panel("5xx ratio (M2, SLO < 0.1 %)", (
            ('sum(rate(http_requests_total{status=~"5.."}[5m])) / ' + RATE, "5xx"),), "percentunit"),
        Panel("API latency P50/P95/P99 (M1, SLO P95 <= 500 ms)", tuple(
            (P95.replace("0.95", str(q)).format(by="", sel=""), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)), "s"),
        Panel("Requests in flight", (("sum(http_requests_in_flight)", "in flight"),)),
        # The alerts' own expressions: each backend's source (cAdvisor, Cloud Monitoring, Railway's API).
        Panel("Container CPU (M3, target < 70 %)", ((_alert_expr("ContainerCpuHigh"), "{{name}}"),), "percentunit"),
        Panel("Container memory (M4, target < 70 %)", ((_alert_expr("ContainerMemoryHigh"), "{{name}}"),),
              "percentunit"),
        Panel("Redis memory against maxmemory (C3)", ((_alert_expr("RedisMemoryHigh"), "redis"),), "percentunit"),
        Panel("Cache hit ratio (C3, C6)", ((
            'sum by (cache) (rate(cache_requests_total{result="hit"}[5m])) / '
            'sum by (cache) (rate(cache_requests_total{result=~"hit|miss"}[5m]))', "{{cache}}"),), "percentunit"),
        Panel("PocketBase latency P95 (B4) and calls in flight (B2)", (
            ("histogram_quantile(0.95, sum by (le) (rate(pocketbase_request_duration_seconds_bucket[5m])))", "p95"),
            ("sum(pocketbase_requests_in_flight)", "in flight")), "s"),
        Panel("PocketBase errors and SQLite locks per minute (B1, B3)", (
            ("sum(rate(pocketbase_errors_total[5m])) * 60", "errors/min"),
            ("sum(rate(pocketbase_lock_errors_total[5m])) * 60", "locks/min"))),
        Panel("Web vitals P75 (U1-U4)", (
            ("histogram_quantile(0.75, sum by (le) (rate(web_vitals_lcp_seconds_bucket[1h])))", "LCP"),
            ("histogram_quantile(0.75, sum by (le) (rate(web_vitals_inp_seconds_bucket[1h])))", "INP"),
            ("histogram_quantile(0.75, sum by (le) (rate(web_vitals_ttfb_seconds_bucket[1h])))", "TTFB")), "s"),
        Panel("Error budget burn, availability (U5)", (
            ("sli:availability_error_ratio:rate1h / 0.001", "1h burn rate"),
            ("sli:availability_error_ratio:rate6h / 0.001", "6h burn rate"))),
        Panel("Trend: daily peak requests per second, 30 days (A6)", (
            ("max_over_time(sum(rate(http_requests_total[5m]))[1d:5m])", "daily peak"),), "reqps", 24),
        *objectives(),
    ], [])


def routes() -> dict[str, Any]:
    sel = '{route=~"$route"}'
    return _dashboard("platform-routes", "Platform: per route", [
        Panel("Requests per second by route", ((f"sum by (route) (rate(http_requests_total{sel}[5m]))", "{{route}}"),),
              "reqps"),
        Panel("5xx ratio by route", ((
            f'sum by (route) (rate(http_requests_total{{route=~"$route",status=~"5.."}}[5m])) / '
            f"sum by (route) (rate(http_requests_total{sel}[5m]))", "{{route}}"),), "percentunit"),
        Panel("P95 latency by route", ((P95.format(by=", route", sel=sel), "{{route}}"),), "s", 24),
    ], [_variable("route", "http_requests_total")])


def tenants() -> dict[str, Any]:
    sel = '{tenant=~"$tenant"}'
    return _dashboard("platform-tenants", "Platform: per tenant", [
        Panel("Requests per second by tenant", ((f"sum by (tenant) (rate(http_requests_total{sel}[5m]))",
                                                 "{{tenant}}"),), "reqps"),
        Panel("5xx ratio by tenant", ((
            f'sum by (tenant) (rate(http_requests_total{{tenant=~"$tenant",status=~"5.."}}[5m])) / '
            f"sum by (tenant) (rate(http_requests_total{sel}[5m]))", "{{tenant}}"),), "percentunit"),
        Panel("P95 latency by tenant", ((P95.format(by=", tenant", sel=sel), "{{tenant}}"),), "s"),
        Panel("Orders per hour by tenant", ((f"sum by (tenant) (increase(orders_total{sel}[1h]))", "{{tenant}}"),)),
        Panel("LCP P75 by tenant (U1)", ((
            f"histogram_quantile(0.75, sum by (le, tenant) (rate(web_vitals_lcp_seconds_bucket{sel}[1h])))",
            "{{tenant}}"),), "s"),
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
