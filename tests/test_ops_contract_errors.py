"""Every command that runs the program reports a contract the program finds broken as `plan` does: the rule lines,
exit 2, no traceback, and nothing changed. The program derives the bad size itself here (the telemetry agent's
share shrunk to 0.5 vCPU, so the instance is below 1 vCPU with concurrency 80: Cloud Run's CPU page, "Maximum
concurrency must be set to 1"), which config validation cannot see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_failover import fake_pulumi

__all__ = ["fake_pulumi"]


@pytest.fixture
def telemetry_below_one_vcpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from components.observability import cloud

    monkeypatch.setattr(cloud, "telemetry_agent_size", lambda railway: (500, 512))


def _reported(result: Any) -> None:
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert "telemetry-service: CR-CPU-001" in result.err, result.err
    assert "source: https://cloud.google.com/run/docs/configuring/services/cpu" in result.err


def test_wait_certificate_reports_a_broken_contract(telemetry_below_one_vcpu: None, run_cli: Any) -> None:
    _reported(run_cli("wait-certificate", "--stack", "prod", "--timeout-minutes", "0"))


def test_failing_back_reports_a_broken_contract_before_it_changes_the_stack_s_config(
        telemetry_below_one_vcpu: None, fake_pulumi: Path, run_cli: Any) -> None:
    """The failback plans the primary's resources to target them; a plan that cannot be made must stop it before
    `pulumi config set` moves the stack to the primary with nothing deployed."""
    result = run_cli("failover", "--stack", "prod", "--to", "primary", "--yes", "--url", "http://127.0.0.1:9/readyz")

    _reported(result)
    assert not fake_pulumi.exists(), fake_pulumi.read_text()
