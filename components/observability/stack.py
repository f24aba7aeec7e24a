"""A stack's telemetry, decided once from its services: the scrape jobs, what it bills, the rules it deploys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from components.observability import cloud, cost, telemetry
from components.observability.spec import ObservabilitySpec, load
from stacks.profile import ServiceName, ServiceProfile


@dataclass(frozen=True)
class TelemetryPlan:
    layout: telemetry.Layout
    billing: cost.Billing
    spec: ObservabilitySpec


def _gce_size(size: ServiceProfile) -> tuple[float, float]:
    """The VM the gce backend makes: E2 custom, an even number of vCPUs from 2, at its peak size."""
    from components.backends.gce import machine_type

    name = machine_type(size.peak_cpu_millis, size.peak_memory_mib)  # e2-custom-<cpus>-<MiB>
    cpus, mib = name.split("-")[-2:]
    return float(cpus), int(mib) / 1024


def billing(services: Mapping[ServiceName, ServiceProfile], region: str | None, layout: telemetry.Layout
            ) -> cost.Billing:
    cloud_run: list[cost.CloudRunBilled] = []
    fixed: list[cost.FixedBilled] = []
    engine = services["engine"]
    if engine.backend == "cloudrun":
        assert region is not None
        cpu, mib = cloud.ENGINE_SIDECAR
        cloud_run.append(cost.CloudRunBilled(telemetry.ENGINE_JOB, (engine.cpu_millis + cpu) / 1000,
                                             (engine.memory_mib + mib) / 1024, region))
        if layout.exporter_agent:
            cpu, mib = cloud.telemetry_service_size(any(s.backend == "railway" for s in services.values()))
            cloud_run.append(cost.CloudRunBilled(cloud.TELEMETRY_SERVICE, cpu / 1000, mib / 1024, region))
    if services["redis"].backend == "cloudrun":
        assert region is not None
        fixed.append(cost.FixedBilled("memorystore", region, gb=services["redis"].memory_mib // 1024))
    for size in services.values():
        if size.backend == "gce":
            assert region is not None
            vcpus, gb = _gce_size(size)
            fixed.append(cost.FixedBilled("gce", region, vcpus=vcpus, gb=gb))
    railway = any(size.backend == "railway" for size in services.values())
    return cost.Billing(tuple(cloud_run), tuple(fixed), railway)


def plan(services: Mapping[ServiceName, ServiceProfile], overrides: Iterable[tuple[str, float | None, str | None]],
         monthly_budget_usd: float | None, region: str | None, base: ObservabilitySpec | None = None,
         restore_tested: bool = True, postgres: bool = False) -> TelemetryPlan:
    """`restore_tested`: PocketBase is replicated, so its image runs the scheduled restore test (A5). `postgres`: the
    stack has Cloud SQL (`platform:database: {engine: postgres}`), so it deploys the Postgres alerts."""
    layout = telemetry.layout(services)
    billed = billing(services, region, layout)
    spec = telemetry.stack_spec(base or load(), overrides, layout.jobs, billed, monthly_budget_usd, restore_tested,
                                postgres)
    return TelemetryPlan(layout, billed, spec)
