"""The SLOs themselves are declared, not only their alerts (issue #21, item 6).

Every requirement of the document that states an objective (the "SLO" column: "< 70 %", "≤ 2.5 s", ...)
has, in the spec (slos.yaml), an objective with the document's number; a recording rule
`slo:<id>:<name>` whose value compares directly with that number, which promtool accepts in the rules each
stack deploys; and a panel in the overview dashboard's "Objectives" row that draws the number as its
threshold. The expected numbers are parsed from the document's own words as tests/document_numbers.py
copies them (the quotes), never read from the spec. tests/promtool/slo_objectives.test.yml feeds each
recorded series raw samples on both sides of the document's number (run by tests/test_document_promtool.py
against prod's rules, and here against every stack's).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from components.observability import dashboards
from components.observability.__main__ import stack_plan
from components.observability.rules import dump, rule_groups
from components.observability.spec import load
from tests import document_numbers as doc

STACKS = ("integration", "staging", "prod")
PROMTOOL_TEST = Path(__file__).resolve().parent / "promtool" / "slo_objectives.test.yml"


@dataclass(frozen=True)
class Objective:
    id: str
    operator: str
    """`<` (the document's "<") or `<=` (its "≤")."""
    value: float
    """In the SLI's own unit: seconds, a ratio (70 % -> 0.7), CLS's unitless score."""


OBJECTIVE_COLUMN = re.compile(r"^(?P<op><|≤)\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>%|ms|s)?(?:\s|$)")


def _parse(requirement: str, column: str) -> Objective | None:
    match = OBJECTIVE_COLUMN.match(column.strip())
    if match is None:
        return None
    value = float(match["number"]) * {"%": 0.01, "ms": 0.001, "s": 1.0, None: 1.0}[match["unit"]]
    return Objective(requirement, "<" if match["op"] == "<" else "<=", value)


def _document_objectives() -> dict[str, Objective]:
    """The objective column of every quoted requirement row: `metric | objective | alert`."""
    rows = [(t.id, t.quote) for t in doc.ALERTS.values()] + [("M1", doc.M1_SLO_QUOTE), ("M2", doc.M2_SLO_QUOTE)]
    found: dict[str, Objective] = {}
    for requirement, quote in rows:
        columns = quote.split("|")
        objective = _parse(requirement, columns[1]) if len(columns) >= 2 else None
        if objective is not None:
            found[requirement] = objective
    return found


DOCUMENT = _document_objectives()


def test_the_document_states_these_objectives() -> None:
    """Guards the parser: the rows of the document with an objective column, and two of its numbers by hand."""
    assert sorted(DOCUMENT) == ["M1", "M2", "M3", "M4", "U1", "U2", "U3", "U4", "U5"]
    assert (DOCUMENT["U2"].operator, DOCUMENT["U2"].value) == ("<=", pytest.approx(0.1))  # "≤ 100 ms"
    assert (DOCUMENT["M3"].operator, DOCUMENT["M3"].value) == ("<", pytest.approx(0.7))  # "< 70 %"
    assert (DOCUMENT["U5"].operator, DOCUMENT["U5"].value) == ("<", pytest.approx(0.05))  # "< 5 % a week"
    # M1's and M2's objectives as the document's SLO constants give them.
    assert DOCUMENT["M1"].value == pytest.approx(doc.M1_SLO_LATENCY_S)
    assert DOCUMENT["M2"].value == pytest.approx(1 - doc.M2_SLO_OBJECTIVE_PERCENT / 100)


def _declared(requirement: str) -> Any:
    matches = [o for o in load().objectives if o.requirement == requirement]
    assert len(matches) == 1, f"{requirement}: {len(matches)} objectives declared in slos.yaml, expected one"
    return matches[0]


@pytest.mark.parametrize("requirement", sorted(DOCUMENT))
def test_each_objective_is_declared_with_the_documents_number(requirement: str) -> None:
    expected = DOCUMENT[requirement]
    declared = _declared(requirement)
    assert declared.objective == pytest.approx(expected.value), \
        f"{requirement}: objective {declared.objective:g}, the document says {expected.operator} {expected.value:g}"
    assert declared.operator == expected.operator, f"{requirement}: {declared.operator}, the document says {expected.operator}"


def _record_name(requirement: str) -> str:
    return f"slo:{requirement.lower()}:{_declared(requirement).name}"


@pytest.mark.parametrize("stack", STACKS)
def test_each_objective_has_a_recording_rule_promtool_accepts(stack: str, tmp_path: Path) -> None:
    rules = rule_groups(stack_plan(stack).spec)
    recorded = {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    missing = [_record_name(r) for r in sorted(DOCUMENT) if _record_name(r) not in recorded]
    assert not missing, f"{stack}: objectives without a recording rule: {missing}"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (python3 tools/dev.py test does it as root)"
    (tmp_path / "rules.yml").write_text(dump(rules))
    result = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("stack", STACKS)
def test_each_objectives_series_is_on_the_right_side_of_the_documents_number(stack: str, tmp_path: Path) -> None:
    """The hand-written promtool test, against the rules each stack deploys."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing"
    (tmp_path / "prometheus-rules.yml").write_text(dump(rule_groups(stack_plan(stack).spec)))
    shutil.copy(PROMTOOL_TEST, tmp_path / PROMTOOL_TEST.name)
    result = subprocess.run([promtool, "test", "rules", PROMTOOL_TEST.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_promtool_test_covers_every_objective_on_both_sides() -> None:
    text = PROMTOOL_TEST.read_text()
    for requirement in sorted(DOCUMENT):
        assert text.count(f"- name: {requirement} ") >= 2, f"{requirement}: no test on each side of its objective"
        assert _record_name(requirement) in text, f"{requirement}: the promtool test does not read its recorded series"


def _objectives_row() -> list[dict[str, Any]]:
    panels = dashboards.overview()["panels"]
    rows = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Objectives"]
    assert len(rows) == 1, "the overview dashboard has no row titled Objectives"
    after = panels[rows[0] + 1:]
    end = next((i for i, p in enumerate(after) if p["type"] == "row"), len(after))
    return after[:end]


@pytest.mark.parametrize("requirement", sorted(DOCUMENT))
def test_the_objectives_row_draws_each_objective_at_the_documents_number(requirement: str) -> None:
    expected = DOCUMENT[requirement]
    panels = [p for p in _objectives_row() if re.search(rf"\b{requirement}\b", p["title"])]
    assert len(panels) == 1, f"{requirement}: {len(panels)} panels in the Objectives row, expected one"
    [panel] = panels
    defaults = panel["fieldConfig"]["defaults"]
    steps = [s["value"] for s in defaults["thresholds"]["steps"] if s["value"] is not None]
    assert steps == [pytest.approx(expected.value)], f"{requirement}: threshold {steps}, the document's {expected.value:g}"
    assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "dashed", "line+area", "dashed+area"}, \
        f"{requirement}: the threshold is not drawn"
    [rule] = [r for g in rule_groups(stack_plan("integration").spec)["groups"] for r in g["rules"] if r.get("record") == _record_name(requirement)]
    exprs = [t["expr"] for t in panel["targets"]]
    assert rule["expr"] in exprs or _record_name(requirement) in exprs, \
        f"{requirement}: the panel does not show the objective's series ({_record_name(requirement)})"


def _engine_buckets() -> dict[str, set[float]]:
    """The bucket boundaries of every histogram the engine defines, from prometheus_client's own collection of
    a probe child (removed again, so nothing the engine exports changes)."""
    from engine import metrics, vitals
    from prometheus_client import Histogram

    histograms: list[Histogram] = [metrics.HTTP_LATENCY, metrics.POCKETBASE_LATENCY,
                                   *(h for h, _, _ in vitals.HISTOGRAMS.values())]
    bounds: dict[str, set[float]] = {}
    for histogram in histograms:
        # Its label names: prometheus_client keeps them only in this attribute (no public accessor).
        labelnames = cast(tuple[str, ...], vars(histogram)["_labelnames"])
        probe = tuple("probe" for _ in labelnames)
        histogram.labels(*probe)
        try:
            for family in histogram.collect():
                bounds[f"{family.name}_bucket"] = {float(s.labels["le"]) for s in family.samples
                                                   if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}
        finally:
            histogram.remove(*probe)
    return bounds


@pytest.mark.parametrize("requirement", sorted(DOCUMENT))
def test_a_quantile_objective_is_a_bucket_boundary_of_the_engines_histogram(requirement: str) -> None:
    """Interpolated between two buckets, a quantile cannot tell 2.5 s from 2.9 s: the document's number must be a
    boundary of the histogram the objective reads, so the recorded series is exact at the objective."""
    [rule] = [r for g in rule_groups(stack_plan("prod").spec)["groups"] for r in g["rules"]
              if r.get("record") == _record_name(requirement)]
    match = re.search(r"histogram_quantile\([^,]+,.*?\b([a-z_]+_bucket)\b", rule["expr"])
    if match is None:
        assert "histogram_quantile" not in rule["expr"], rule["expr"]
        return  # a ratio, not a quantile: nothing to interpolate
    exported = {m for metrics in load().exporters.values() for m in metrics}
    if match.group(1) in exported:
        return  # another exporter's distribution (Cloud Run's utilization): its buckets are not ours to set
    buckets = _engine_buckets()
    assert match.group(1) in buckets, f"{requirement}: {match.group(1)} is not a histogram the engine defines"
    assert DOCUMENT[requirement].value in buckets[match.group(1)], \
        f"{requirement}: {DOCUMENT[requirement].value:g} is no bucket of {match.group(1)}: {sorted(buckets[match.group(1)])}"
