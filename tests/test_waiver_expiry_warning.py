"""#25.9: no surprise red deploys. A waiver that expires within 14 days makes every plan say so (a warning
line naming the waiver's rule, resource, subject and expiry) and is in the plan JSON, so the pull-request
comment can show it. On its expiry day PLAT-WAIVER-001 refuses it and the deploy turns red."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult, stack_document, write_stack


def _prod_with_waiver_expiring_in(tmp_path: Path, days: int) -> Path:
    document = stack_document("prod")
    expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()
    document["config"]["platform:waivers"][0]["expires"] = expires
    return write_stack(tmp_path, document)


def test_a_waiver_expiring_within_14_days_is_a_warning_line_of_the_plan(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    path = _prod_with_waiver_expiring_in(tmp_path, 5)
    waiver = stack_document("prod")["config"]["platform:waivers"][0]

    result = run_cli("plan", "--stack", "prod", "--config-file", str(path))

    assert result.code == 0, result.err
    warnings = [line for line in result.out.splitlines() + result.err.splitlines() if "warning:" in line]
    assert len(warnings) == 1, result.out[-2000:]
    line = warnings[0]
    assert waiver["rule"] in line and waiver["resource"] in line and waiver["subject"] in line
    assert "in 5 days" in line


def test_the_expiring_waiver_is_in_the_plan_json_for_the_pull_request_comment(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    path = _prod_with_waiver_expiring_in(tmp_path, 14)

    result = run_cli("plan", "--stack", "prod", "--config-file", str(path), "--json")

    assert result.code == 0, result.err
    expiring = json.loads(result.out)["policy"]["expiringWaivers"]
    assert [(w["rule"], w["resource"], w["daysLeft"]) for w in expiring] == [("PLAT-WAF-002", "edge-waf", 14)]
    assert "warning:" in result.err  # --json keeps stdout a document; the warning still reaches the log


def test_a_waiver_with_weeks_left_is_no_warning(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    path = _prod_with_waiver_expiring_in(tmp_path, 15)

    result = run_cli("plan", "--stack", "prod", "--config-file", str(path), "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["policy"]["expiringWaivers"] == []
    assert "warning:" not in result.err
