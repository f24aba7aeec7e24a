"""The drift issue's body fits GitHub's limit: an issue body over 65,536 characters is refused with 422
("body is too long (maximum is 65536 characters)", docs.github.com REST issues; the PR comment path's
infra/review/comment.py keeps COMMENT_LIMIT for the same reason). A pathological refresh digest (the recorded
one's drifted Cloud Run service copied to 40 resources of 20 long properties each, 40 long error diagnostics)
renders the first resources that fit, then "and K more, see the run"."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from infra.review import drift

GITHUB_ISSUE_BODY_LIMIT = 65_536
RECORDED = Path(__file__).resolve().parent / "drift" / "refresh-preview-prod.json"


def _pathological() -> dict[str, Any]:
    document: Any = json.loads(RECORDED.read_text())
    step = next(s for s in document["steps"] if s["op"] == "update")
    steps: list[dict[str, Any]] = []
    for i in range(40):
        one = copy.deepcopy(step)
        one["urn"] = f"{step['urn']}-{i}"
        for state in ("oldState", "newState"):
            if one.get(state):
                one[state]["urn"] = one["urn"]
                for j in range(20):
                    value = f"{state}-{i}-{j}-" + "x" * 400
                    one[state].setdefault("inputs", {})[f"label{j}"] = value
                    one[state].setdefault("outputs", {})[f"label{j}"] = value
        one["detailedDiff"] = {f"label{j}": {"kind": "update", "inputDiff": True} for j in range(20)}
        one["diffReasons"] = [f"label{j}" for j in range(20)]
        steps.append(one)
    document["steps"] = steps
    document["changeSummary"] = {"update": 40}
    document["diagnostics"] = [{"urn": step["urn"], "message": f"error {k}: " + "y" * 5000, "severity": "error"}
                               for k in range(40)]
    return document


def test_a_pathological_drift_fits_a_github_issue_and_says_how_many_more() -> None:
    report = drift.parse("prod", _pathological())
    assert len(report.resources) == 40 and all(len(r.properties) >= 20 for r in report.resources)
    body = drift.render(report, "https://github.com/o/r/actions/runs/1")
    assert len(body) <= GITHUB_ISSUE_BODY_LIMIT
    assert "### " in body  # the first resources are still shown
    shown = body.count("### `")
    assert shown < 40 and f"and {40 - shown} more" in body
    assert "see [the run](https://github.com/o/r/actions/runs/1)" in body


def test_the_recorded_drift_is_shown_whole() -> None:
    report = drift.parse("prod", json.loads(RECORDED.read_text()))
    body = drift.render(report)
    assert "more, see the run" not in body
    assert body.count("### `") == len(report.resources)
