"""Service contracts through `plan`: every stack's plan keeps every contract, and a plan that breaks one
exits 2 with one line per breach naming the resource, the rule id and its source.

Which layer catches what: a declared service's size in a stack file is refused by config validation
(stacks/backends.py, exit 2 naming the key path, nothing declared); the contracts judge the planned
resources, including those the program derives from the stack file (the telemetry service, sidecars,
standbys), which config validation never sees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from infra.config import load_model
from infra.plan import contract_violations, run_program
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, CliResult, stack_document, write_stack

CPU_DOC = "https://cloud.google.com/run/docs/configuring/services/cpu"


@pytest.mark.parametrize("stack", ["integration", "staging", "prod"])
def test_every_stack_plan_keeps_every_service_contract(stack: str) -> None:
    raw = read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack)
    model = load_model(raw)
    assert [v.line() for v in contract_violations(run_program(model, raw, stack), model)] == []


def test_a_declared_service_at_half_a_vcpu_is_refused_by_config_before_any_contract(
        tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    document["config"]["platform:services"] = {"engine": {"cpuMillis": 500}}
    path = write_stack(tmp_path, document, name="Pulumi.prod-half.yaml")

    result = run_cli("plan", "--stack", "prod", "--config-file", str(path))

    assert result.code == 2
    assert "Pulumi.prod-half.yaml: platform:services.engine.cpuMillis: 500 is not a CPU size" in result.err
    assert "nothing was declared" in result.err
    assert "CR-CPU" not in result.err  # the plan never ran: the first layer caught it
    # The line names the rule's source, as a contract line does (Cloud Run's CPU page: below 1 vCPU, "Maximum
    # concurrency must be set to 1", which a service taking concurrent requests cannot have).
    [line] = [ln for ln in result.err.splitlines() if "engine.cpuMillis: 500" in ln]
    assert "source: https://cloud.google.com/run/docs/configuring/services/cpu" in line, line


def test_a_derived_service_at_half_a_vcpu_with_concurrency_80_stops_the_plan(
        tmp_path: Path, run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch) -> None:
    """The program itself derives the bad size (the telemetry agent's share of its instance shrunk to 0.5 vCPU, so
    the instance is 0.75 vCPU beside the 0.25 vCPU exporter, concurrency 80, CPU always allocated): the program
    stops on it, and `plan` reports the rule lines with exit 2, never a traceback."""
    from components.observability import cloud

    def half_a_vcpu_agent(railway: bool) -> tuple[int, int]:
        return 500, 512

    monkeypatch.setattr(cloud, "telemetry_agent_size", half_a_vcpu_agent)
    path = write_stack(tmp_path, stack_document("prod"), name="Pulumi.prod-copy.yaml")

    result = run_cli("plan", "--stack", "prod", "--config-file", str(path))

    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = [ln for ln in result.err.splitlines() if "telemetry-service: CR-CPU-00" in ln]
    # Cloud Run's CPU page: below 1 vCPU, "Maximum concurrency must be set to 1" and request-based billing.
    assert [ln.split(": ")[2] for ln in lines] == ["CR-CPU-001", "CR-CPU-002"], result.err
    assert all(ln.startswith("Pulumi.prod-copy.yaml: gcp:cloudrunv2/service:Service telemetry-service: ")
               for ln in lines)
    assert "concurrency 1 (found: 0.75 vCPU with concurrency 80)" in lines[0]
    assert all(f"source: {CPU_DOC}" in ln for ln in lines)
    assert result.out == ""  # nothing is presented as a plan that would deploy
