"""Every Cloud Run service the program plans, declared or derived (the `telemetry` service, the standby engine),
within what Cloud Run accepts (#20 items 2 and 7).

The rules below are written by hand from the vendor's pages, not read from the code under test:

- Cloud Run, "Configure CPU limits for services" (cloud.google.com/run/docs/configuring/services/cpu): "if you
  want to use less than 1 vCPU, you can select any value between 0.08 and 1 [...] Values greater than 1 must be
  integer values. If you use less than 1 vCPU, the following requirements are enforced: [...] Concurrency:
  Maximum concurrency must be set to 1. [...] CPU allocated: CPU allocation must be set to CPU allocated only
  during request processing" (billing: request-based); memory "A minimum of 0.5 vCPU is needed to set a memory
  limit greater than 512MiB. A minimum of 1 vCPU is needed to set a memory limit greater than 1GiB"; and the
  table "1 vCPU: Up to 4 GiB, 2 vCPU: Up to 8 GiB, 4 vCPU: 2 to 16 GiB, 6 vCPU: 4 to 24 GiB, 8 vCPU: 4 to 32 GiB".
  An instance's CPU is what its containers' limits add up to (the issue's "0.75 vCPU" is 0.5 + 0.25).
- hashicorp/terraform-provider-google-beta, website/docs/r/cloud_run_v2_service.html.markdown (commit 37a5699,
  "Add Terraform support for Cloud Run v2 scaling controls"): `template.scaling.cpu_utilization` and
  `concurrency_utilization` are "(Optional, [Beta])", and the provider's own example for them sets
  `launch_stage = "BETA"`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

from infra.plan import Plan
from tests.conftest import PROJECT_DIR, STACKS, plan_of

SERVICE = "gcp:cloudrunv2/service:Service"

# (vCPU, lowest MiB, highest MiB) per whole vCPU count, from the table quoted above.
MEMORY_BY_CPU = {1: (128, 4096), 2: (128, 8192), 4: (2048, 16384), 6: (4096, 24576), 8: (4096, 32768)}

# Fields the google-beta provider documents as Beta: set only with `launchStage: BETA` (or ALPHA).
BETA_FIELDS = (("template", "scaling", "cpuUtilization"), ("template", "scaling", "concurrencyUtilization"))


def _millis(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


def _mib(memory: str) -> int:
    assert memory.endswith("Mi"), memory
    return int(memory[:-2])


def _problems(inputs: dict[str, Any]) -> list[str]:
    """What Cloud Run would refuse in one planned service, by the documented rules above."""
    template = inputs["template"]
    containers = template["containers"]
    cpu = sum(_millis(c["resources"]["limits"]["cpu"]) for c in containers)
    memory = sum(_mib(c["resources"]["limits"]["memory"]) for c in containers)
    concurrency = template.get("maxInstanceRequestConcurrency", 80)  # 80: Cloud Run's default
    always = any(c["resources"].get("cpuIdle") is False for c in containers)
    problems: list[str] = []
    if cpu < 80:
        problems.append(f"{cpu}m is below the 0.08 vCPU minimum")
    if cpu < 1000:
        if concurrency != 1:
            problems.append(f"{cpu}m (< 1 vCPU) needs maximum concurrency 1, not {concurrency}")
        if always:
            problems.append(f"{cpu}m (< 1 vCPU) needs CPU allocated only during requests, not always")
        if memory > 1024 or (memory > 512 and cpu < 500):
            problems.append(f"{cpu}m (< 1 vCPU) cannot have {memory} MiB")
    elif cpu % 1000:
        problems.append(f"{cpu}m: values greater than 1 vCPU must be whole vCPUs")
    elif cpu // 1000 not in MEMORY_BY_CPU:
        problems.append(f"{cpu}m is not a vCPU count Cloud Run offers")
    else:
        low, high = MEMORY_BY_CPU[cpu // 1000]
        if not low <= memory <= high:
            problems.append(f"{cpu // 1000} vCPU takes {low} to {high} MiB, not {memory}")
    return problems


def _services(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{r.inputs['name']}@{r.inputs['location']}", r.inputs) for r in plan.resources if r.type == SERVICE]


@pytest.mark.parametrize("stack", STACKS)
def test_every_planned_cloud_run_service_is_one_cloud_run_accepts(stack: str, committed_plans: dict[str, Plan]) -> None:
    found = {name: problems for name, inputs in _services(committed_plans[stack]) if (problems := _problems(inputs))}
    assert found == {}


def test_prod_plans_the_derived_services_too(committed_plans: dict[str, Plan]) -> None:
    """The check above would prove nothing if the derived services were not in the plan it reads."""
    names = {name for name, _ in _services(committed_plans["prod"])}
    assert {"telemetry@southamerica-east1", "commission-engine@southamerica-east1",
            "commission-engine@us-east1"} <= names


def test_a_derived_service_cloud_run_would_refuse_stops_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only the stack file's services are checked: a derived one (here the telemetry agent shrunk to 0.25 vCPU,
    concurrency 80 and CPU always allocated, as prod had it) stops the program with the rule and its source."""
    from components.observability import cloud

    original = cloud.agent_spec

    def shrunk(*args: Any, **kwargs: Any) -> Any:
        spec = original(*args, **kwargs)
        if spec.name != cloud.TELEMETRY_SERVICE:
            return spec
        return dataclasses.replace(spec, size=dataclasses.replace(spec.size, cpu_millis=250, peak_cpu_millis=250))

    monkeypatch.setattr(cloud, "agent_spec", shrunk)
    with pytest.raises(Exception) as raised:  # whatever the mock engine wraps it in
        plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")

    message = str(raised.value)
    assert "telemetry" in message and "concurrency" in message.lower(), message
    assert "cloud.google.com/run/docs/configuring/services/cpu" in message, message


@pytest.mark.parametrize("stack", STACKS)
def test_no_cloud_run_service_sets_a_beta_field_without_the_beta_launch_stage(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    def has(inputs: dict[str, Any], path: tuple[str, ...]) -> bool:
        node: Any = inputs
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return False
            node = cast(dict[str, Any], node)[key]
        return True

    found = {(name, ".".join(path)) for name, inputs in _services(committed_plans[stack]) for path in BETA_FIELDS
             if has(inputs, path) and inputs.get("launchStage") not in ("BETA", "ALPHA")}
    assert found == set()
