"""Dashboards an on-call reads at a glance (#25.8): a status row first, the document's objective drawn on every
panel whose title names one, deploy/canary/rollback/failover annotations, canary against stable by revision,
CLS beside the other web vitals, and where the runbooks are. The expected numbers are the document's
(tests/document_numbers.py and the quotes below), never the dashboards' own."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.observability import dashboards
from tests import document_numbers as doc

# The objectives (not the alert thresholds) of the document's tables, by requirement id, in the panels' units.
OBJECTIVES: dict[str, float] = {
    "M1": doc.M1_SLO_LATENCY_S,                          # "P95 latency (SSR/API) | ≤ 500 ms"
    "M2": round(1 - doc.M2_SLO_OBJECTIVE_PERCENT / 100, 6),  # "5xx error rate | < 0.1 %"
    "M3": 0.70,                                          # "container CPU | < 70 % | > 85 % for 3 min"
    "M4": 0.70,                                          # "memory | < 70 % | > 85 % for 3 min"
    "U1": 2.5,                                           # "LCP | ≤ 2.5 s"
    "U2": 0.1,                                           # "FID (today INP) | ≤ 100 ms"
    "U3": 0.1,                                           # "CLS | ≤ 0.1"
    "U4": 0.3,                                           # "TTFB | ≤ 300 ms"
    **{i: doc.ALERTS[i].above for i in ("B1", "B2", "B3", "B4")},  # the B table's limits
}
IDS = re.compile(r"\b([MUB][1-9])\b")


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def threshold_values(panel: dict[str, Any]) -> list[float]:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    return [s["value"] for s in steps if s["value"] is not None]


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_every_panel_titled_with_an_objective_draws_the_documents_number(name: str) -> None:
    for panel in panels(dashboards.DASHBOARDS[name]()):
        named = {i for i in IDS.findall(panel["title"]) if i in OBJECTIVES}
        if not named:
            continue
        assert len(named) == 1, f"{panel['title']!r}: one objective per panel, so its line is unambiguous"
        [requirement] = named
        assert threshold_values(panel) == [pytest.approx(OBJECTIVES[requirement])], (
            f"{name}: {panel['title']!r} should draw {requirement}'s {OBJECTIVES[requirement]}")
        if panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"


def test_the_overview_opens_with_a_status_row() -> None:
    overview = dashboards.overview()["panels"]
    assert overview[0]["type"] == "row" and overview[0]["title"].startswith("Status")
    status: list[dict[str, Any]] = []
    for panel in overview[1:]:
        if panel["type"] == "row":
            break
        status.append(panel)
    assert status and all(p["type"] in ("stat", "text") for p in status), [p["type"] for p in status]
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in status}
    availability = [e for t, e in exprs.items() if "Availability" in t]
    budget = [e for t, e in exprs.items() if "budget left" in t]
    assert availability and "[30d]" in availability[0]  # the SLO period (30 days)
    assert budget and "[30d]" in budget[0] and str(round(1 - doc.M2_SLO_OBJECTIVE_PERCENT / 100, 6)) in budget[0]
    assert any("0.95" in e and "http_request_duration_seconds_bucket" in e for e in exprs.values()), "P95 now"
    assert any('ALERTS{alertstate="firing"' in e for e in exprs.values()), "firing alerts"
    assert all(p["gridPos"]["y"] < 8 for p in status), "the status row is on top, one row high"


def test_deploys_canary_steps_rollbacks_and_failovers_are_annotations_on_every_dashboard() -> None:
    for name, build in dashboards.DASHBOARDS.items():
        queries = build()["annotations"]["list"]
        tags = {tag for q in queries for tag in q.get("target", {}).get("tags", [])}
        assert {"deploy", "canary", "rollback", "failover"} <= tags, name


def test_canary_and_stable_are_compared_by_revision() -> None:
    by_revision = [p for p in panels(dashboards.overview()) if "revision" in p["title"].lower()]
    exprs = " ".join(t["expr"] for p in by_revision for t in p["targets"])
    assert "by (revision)" in exprs and "http_request_duration_seconds_bucket" in exprs and '5..' in exprs


def test_cls_is_beside_the_other_web_vitals() -> None:
    vitals = {p["title"].split()[0]: p for p in panels(dashboards.overview())
              if p["title"].split()[0] in ("LCP", "INP", "CLS", "TTFB")}
    assert set(vitals) == {"LCP", "INP", "CLS", "TTFB"}
    for name, metric in (("LCP", "web_vitals_lcp_seconds"), ("INP", "web_vitals_inp_seconds"),
                         ("CLS", "web_vitals_cls"), ("TTFB", "web_vitals_ttfb_seconds")):
        assert metric in " ".join(t["expr"] for t in vitals[name]["targets"]), name
    assert len({p["gridPos"]["y"] for p in vitals.values()}) == 1, "the four vitals side by side, one line"


def test_the_overview_says_where_the_runbooks_are() -> None:
    text = " ".join(p.get("options", {}).get("content", "") for p in dashboards.overview()["panels"])
    for runbook in ("failover.md", "rollback.md", "restore"):
        assert runbook in text, runbook
