"""Where every signal of a stack comes from, per backend, and the alert rules that stack deploys.

- The engine's RED metrics, B1-B4 (its PocketBase calls), C3's lookups and the web vitals: docker, the
  stack's Prometheus scrapes `commission-engine:9000`; Railway, the `telemetry-agent` service scrapes
  every replica (`commission-engine.railway.internal`, AAAA); Cloud Run, a sidecar in each instance
  scrapes `localhost:9000`.
- Redis (C3): the `redis-exporter` container or Railway service; Memorystore's own usage ratio from
  Cloud Monitoring.
- Container CPU and memory (M3, M4): cAdvisor; Railway's metrics API (`railway-metrics`); Cloud
  Monitoring (`cloud-monitoring`) for Cloud Run containers and a Compute Engine VM.
- Cost (M6): nothing per use on docker (a fixed host); Railway's metrics API; Cloud Monitoring's billable
  instance time and the capacity Memorystore and a VM are billed for.

On Cloud Run the exporters that read provider APIs run once, in the `telemetry` service, not in every
engine instance: each instance would export the same series again. PocketBase has no metrics endpoint:
B1-B4 are the engine's own measures of its PocketBase calls, so they come with the engine's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from components.backends.railway import API_URL as RAILWAY_API_URL
from components.observability import cost, rules
from components.observability.agent import ScrapeJob
from components.observability.spec import ObservabilitySpec, with_alerts, with_cost, with_overrides
from stacks.profile import Backend, ServiceName, ServiceProfile

ENGINE_JOB = "commission-engine"
ENGINE_PORT = 9000
"""The engine's private listener (components/api.py INTERNAL_PORT): the only port serving /metrics without the
edge's secret, and never through the edge (engine.api.EdgeGuard)."""
REDIS_EXPORTER = "redis-exporter"
REDIS_EXPORTER_PORT = 9121
RAILWAY_METRICS = "railway-metrics"
RAILWAY_METRICS_PORT = 7979
RAILWAY_METRICS_USER = "telemetry-agent"
"""The one caller Railway's metrics exporter admits (exporter-toolkit basic auth, cloud.exporter_web_config)."""
CLOUD_MONITORING = "cloud-monitoring"
CLOUD_MONITORING_PORT = 9255
CADVISOR = "cadvisor"


def engine_job(backend: Backend) -> ScrapeJob:
    what = "the engine's requests, latency, PocketBase calls, cache lookups and web vitals"
    if backend == "railway":
        # Every replica has its own address under the service's private name (docs.railway.com/
        # networking/private-networking/how-it-works: it "resolves to the internal IP addresses of the
        # service"); AAAA, since legacy environments resolve to IPv6 only.
        return ScrapeJob(ENGINE_JOB, dns_names=(f"{ENGINE_JOB}.railway.internal",), dns_type="AAAA",
                         dns_port=ENGINE_PORT, severity="page", what=what)
    if backend == "cloudrun":
        # Containers of one Cloud Run instance share its network namespace: the sidecar reaches the engine
        # at localhost (cloud.google.com/blog/products/serverless/cloud-run-now-supports-multi-container-deployments).
        return ScrapeJob(ENGINE_JOB, targets=(f"localhost:{ENGINE_PORT}",), severity="page", what=what)
    return ScrapeJob(ENGINE_JOB, targets=(f"{ENGINE_JOB}:{ENGINE_PORT}",), severity="page", what=what)


def redis_job(backend: Backend) -> ScrapeJob | None:
    what = "Redis's memory against its maxmemory"
    if backend == "railway":
        return ScrapeJob("redis", targets=(f"{REDIS_EXPORTER}.railway.internal:{REDIS_EXPORTER_PORT}",), what=what)
    if backend == "docker":
        return ScrapeJob("redis", targets=(f"{REDIS_EXPORTER}:{REDIS_EXPORTER_PORT}",), what=what)
    return None  # Memorystore: its own metrics, through Cloud Monitoring


def railway_metrics_job(host: str, service_names: Mapping[str, str] | None = None) -> ScrapeJob:
    """Railway's metrics API through json_exporter; `service_names` (service id -> name) sets `name`."""
    return ScrapeJob(RAILWAY_METRICS, targets=(f"{host}:{RAILWAY_METRICS_PORT}",), metrics_path="/probe",
                     params={"module": ("railway",), "target": (RAILWAY_API_URL,)},
                     scrape_interval="60s", basic_auth_user=RAILWAY_METRICS_USER,
                     name_from=("service_id", service_names) if service_names is not None else None,
                     what="container CPU, memory and cost of the Railway services")


def cloud_monitoring_job() -> ScrapeJob:
    return ScrapeJob(CLOUD_MONITORING, targets=(f"localhost:{CLOUD_MONITORING_PORT}",), scrape_interval="60s",
                     what="Cloud Run's container CPU, memory and billable time, and Memorystore's memory")


CGROUP_NAME = r".*/platform-(.+)\.slice/(?:docker-)?[0-9a-f]{64}(?:\.scope)?"
"""A container's cgroup path as cAdvisor's raw factory reports it (`id`), its container's name captured: the
leaf under the parent Docker makes from `platform-<name>.slice` (components/backends/docker.py cgroup_parent), i.e.
`/platform.slice/platform-a.slice/platform-a-b.slice/docker-<64 hex>.scope` with the systemd driver and
`/platform-a-b.slice/<64 hex>` with cgroupfs. The slices above a container (no limit of their own) do not match.
Prometheus anchors the regex at both ends; `.*` is greedy, so the innermost `platform-` slice names it."""


def cadvisor_job() -> ScrapeJob:
    # cAdvisor reads cgroups, not Docker's API (#22 item 11): a container has its path as `id` and no `name`, which
    # the CPU and memory alerts select and group by; the scrape sets it from the path.
    return ScrapeJob(CADVISOR, targets=(f"{CADVISOR}:8080",), what="container CPU and memory on the Docker host",
                     name_from_pattern=("id", CGROUP_NAME))


@dataclass(frozen=True)
class Layout:
    """The scrape jobs of a stack, by the agent that runs them."""

    engine_agent: tuple[ScrapeJob, ...]
    """The jobs of the agent next to the engine (docker: the stack's Prometheus)."""
    exporter_agent: tuple[ScrapeJob, ...]
    """Cloud Run only: the jobs of the `telemetry` service (provider APIs, read once)."""

    @property
    def jobs(self) -> tuple[ScrapeJob, ...]:
        return self.engine_agent + self.exporter_agent


def layout(services: Mapping[ServiceName, ServiceProfile], railway_service_names: Mapping[str, str] | None = None
           ) -> Layout:
    engine_backend = services["engine"].backend
    backends = {svc.backend for svc in services.values()}
    engine_side: list[ScrapeJob] = [engine_job(engine_backend)]
    redis = redis_job(services["redis"].backend)
    if redis is not None:
        engine_side.append(redis)
    exporters: list[ScrapeJob] = []
    if "docker" in backends:
        engine_side.append(cadvisor_job())
    if "cloudrun" in backends:
        exporters.append(cloud_monitoring_job())
    if "railway" in backends:
        if engine_backend == "railway":
            engine_side.append(railway_metrics_job(f"{RAILWAY_METRICS}.railway.internal", railway_service_names))
        else:
            exporters.append(railway_metrics_job("localhost", railway_service_names))
    return Layout(tuple(engine_side), tuple(exporters))


COST_ALERT = "ComputeCostAboveBudget"


RESTORE_TEST_EXPORTER = "pocketbase_restore_test"


def restore_test_alerts(spec: ObservabilitySpec) -> set[str]:
    """The alerts that read what PocketBase's restore test pushes (`exporters.pocketbase_restore_test`)."""
    metrics = spec.exporters.get(RESTORE_TEST_EXPORTER, [])
    return {a.name for a in spec.alerts if any(m in a.expr for m in metrics)}


POSTGRES = "postgres"
"""The `service` label of the Cloud SQL alerts (slos.yaml)."""


def stack_spec(base: ObservabilitySpec, overrides: Iterable[tuple[str, float | None, str | None]],
               jobs: Iterable[ScrapeJob], billing: cost.Billing, monthly_budget_usd: float | None,
               restore_tested: bool = True, postgres: bool = False) -> ObservabilitySpec:
    """The spec a stack deploys: its thresholds, an absence alert per scrape job, its cost expression (none
    where nothing is billed per use: the docker backend's host), and the DR alerts only where a restore test
    runs (a stack that replicates PocketBase): elsewhere their data never comes, and they would page forever."""
    if not postgres:
        # Cloud SQL's alerts read metrics only a stack with `platform:database: {engine: postgres}` has.
        base = base.model_copy(update={"alerts": [a for a in base.alerts if a.labels.get("service") != POSTGRES]})
    if not restore_tested:
        dropped = restore_test_alerts(base)
        base = base.model_copy(update={"alerts": [a for a in base.alerts if a.name not in dropped]})
    spec = with_overrides(base, overrides)
    spec = with_alerts(spec, [rules.absence_alert(job) for job in jobs])
    per_hour = cost.cost_usd_per_hour(billing)
    if per_hour is None or monthly_budget_usd is None:
        return spec.model_copy(update={"alerts": [a for a in spec.alerts if a.name != COST_ALERT]})
    return with_cost(spec, per_hour, monthly_budget_usd)
