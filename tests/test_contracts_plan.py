"""Service contracts through `plan`: every stack's plan keeps every contract, and a plan that breaks one
exits 2 with one line per breach naming the resource, the rule id and its source.

Which layer catches what: a declared service's size in a stack file is refused by config validation
(stacks/backends.py, exit 2 naming the key path, nothing declared); the contracts judge the planned
resources, including those the program derives from the stack file (the telemetry service, sidecars,
standbys), which config validation never sees."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra import cli
from infra.config import load_model
from infra.plan import Plan, PlannedResource, contract_violations, run_program
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


def _half_vcpu_telemetry(resource: PlannedResource) -> PlannedResource:
    """The telemetry service as a program could derive it: one container at 0.5 vCPU, CPU always allocated,
    concurrency 80 (what Cloud Run refuses below one vCPU)."""
    template: dict[str, Any] = dict(resource.inputs["template"])
    template["containers"] = [{
        "name": "telemetry", "image": template["containers"][0]["image"], "ports": {"containerPort": 9090},
        "resources": {"cpuIdle": False, "limits": {"cpu": "500m", "memory": "512Mi"}}}]
    template["maxInstanceRequestConcurrency"] = 80
    return dataclasses.replace(resource, inputs=resource.inputs | {"template": template})


def test_a_derived_service_at_half_a_vcpu_with_concurrency_80_stops_the_plan(
        tmp_path: Path, run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch) -> None:
    def derive_small_telemetry(*args: Any, **kwargs: Any) -> Plan:
        plan = run_program(*args, **kwargs)
        resources = tuple(_half_vcpu_telemetry(r) if r.name == "telemetry-service" else r for r in plan.resources)
        assert resources != plan.resources, "prod derives a telemetry Cloud Run service"
        return dataclasses.replace(plan, resources=resources)

    monkeypatch.setattr(cli, "run_program", derive_small_telemetry)
    path = write_stack(tmp_path, stack_document("prod"), name="Pulumi.prod-copy.yaml")

    result = run_cli("plan", "--stack", "prod", "--config-file", str(path))

    assert result.code == 2, result.err
    lines = [ln for ln in result.err.splitlines() if "telemetry-service: CR-CPU-00" in ln]
    assert [ln.split(": ")[2] for ln in lines] == ["CR-CPU-001", "CR-CPU-002"], result.err
    assert all(ln.startswith("Pulumi.prod-copy.yaml: gcp:cloudrunv2/service:Service telemetry-service: ")
               for ln in lines)
    assert "0.5 vCPU with concurrency 80" in lines[0]
    assert all(f"source: {CPU_DOC}" in ln for ln in lines)
    assert result.out == ""  # nothing is presented as a plan that would deploy
