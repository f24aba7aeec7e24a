"""Telemetry of the cloud stacks: agents and exporters on the stack's own backends, sending metrics to the
Grafana Cloud stack of the environment (its Prometheus remote-write endpoint) and Railway's logs to its
Loki. Images are existing agents and exporters; the only program of ours is their configuration.

- `agent_spec`: Prometheus in agent mode (components/observability/agent.py), a Cloud Run sidecar of the
  engine or a Railway service.
- `redis_exporter_spec`: oliver006/redis_exporter, reading Redis's INFO over the private network.
- `railway_metrics_spec`: prometheus-community/json_exporter asking Railway's public API for each
  service's CPU and memory, used and allowed (query `metrics`, tests/schemas/railway-public-api.graphql).
- `cloud_monitoring_spec`: prometheus-community/stackdriver_exporter reading Cloud Monitoring (Cloud Run
  containers, a Compute Engine VM, Memorystore) with its service account's `roles/monitoring.viewer`
  ("the `roles/monitoring.viewer` IAM role contains the required permissions", its README).
- `log_drain_spec`: Locomotive (components/observability/logs.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random
import yaml

from components.backends.railway import LOG_DRAIN_TOKEN_ENV, RailwayService
from components.backends.service import ContainerSpec, Endpoint
from components.backends.targets import Targets, deploy
from components.observability import agent, images
from components.observability.agent import RemoteWrite, ScrapeJob
from components.observability.logs import LogSink
from components.observability.stackconfig import RAILWAY_METRICS_TOKEN_ENV
from components.observability.telemetry import (
    CLOUD_MONITORING_PORT,
    RAILWAY_METRICS,
    RAILWAY_METRICS_PORT,
    RAILWAY_METRICS_USER,
    REDIS_EXPORTER,
    REDIS_EXPORTER_PORT,
    Layout,
)
from stacks.profile import Backend, ServiceProfile

Image = Callable[[str], pulumi.Input[str]]
"""An image's name (components/observability/images.py) -> the image to run."""
AGENT = "telemetry-agent"
LOG_DRAIN = "log-drain"
TELEMETRY_SERVICE = "telemetry"

# What Cloud Monitoring is asked for (stackdriver_exporter `--monitoring.metrics-prefixes`): Cloud Run's
# container utilizations and billable time (cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-run), a
# VM's CPU utilization and memory (compute.googleapis.com/instance/...), Memorystore's memory usage ratio.
CLOUD_MONITORING_PREFIXES = (
    "run.googleapis.com/container/cpu/utilizations",
    "run.googleapis.com/container/memory/utilizations",
    "run.googleapis.com/container/billable_instance_time",
    "compute.googleapis.com/instance/cpu/utilization",
    "compute.googleapis.com/instance/memory/balloon",
    "redis.googleapis.com/stats/memory/usage_ratio",
)
CLOUD_SQL_PREFIXES = (
    # Cloud SQL for PostgreSQL, on stacks with `platform:database: {engine: postgres}` (components/postgres.py):
    # connections, backends waiting on locks, deadlocks, the replica's lag, disk and CPU utilization
    # (https://cloud.google.com/sql/docs/postgres/admin-api/metrics; docs/runbooks/postgres.md).
    "cloudsql.googleapis.com/database/postgresql/num_backends",
    "cloudsql.googleapis.com/database/postgresql/backends_in_wait",
    "cloudsql.googleapis.com/database/postgresql/deadlock_count",
    "cloudsql.googleapis.com/database/replication/replica_lag",
    "cloudsql.googleapis.com/database/disk/utilization",
    "cloudsql.googleapis.com/database/cpu/utilization",
)

# Railway's `metrics` query, last five minutes, a point a minute, per service and replica.
RAILWAY_METRICS_QUERY = """query metrics($environmentId: String!, $startDate: DateTime!) {
  metrics(environmentId: $environmentId, startDate: $startDate, sampleRateSeconds: 60,
          groupBy: [SERVICE_ID, DEPLOYMENT_INSTANCE_ID],
          measurements: [CPU_USAGE, CPU_LIMIT, MEMORY_USAGE_GB, MEMORY_LIMIT_GB]) {
    measurement
    tags { serviceId deploymentInstanceId }
    values { ts value }
  }
}"""
RAILWAY_MEASUREMENTS = {"CPU_USAGE": ("railway_cpu_usage", "vcpus"), "CPU_LIMIT": ("railway_cpu_limit", "vcpus"),
                        "MEMORY_USAGE_GB": ("railway_memory_usage", "gigabytes"),
                        "MEMORY_LIMIT_GB": ("railway_memory_limit", "gigabytes")}


def _small(backend: Backend, cpu_millis: int, memory_mib: int) -> ServiceProfile:
    return ServiceProfile(backend, cpu_millis, memory_mib, cpu_millis, memory_mib, 1, 1)


# Sizes (CPU millis, MiB). The engine's sidecar: one vCPU, since an instance's containers add up to whole
# vCPUs above one (cloud.google.com/run/docs/configuring/services/cpu: "Values greater than 1 must be
# integer values"), as Google's own sidecar sample leaves each container at its default. The `telemetry`
# service: the agent and its exporters add up to one whole vCPU, the agent taking what the exporters leave:
# below 1 vCPU Cloud Run requires concurrency 1 and CPU only during requests (same page), and an agent that
# scrapes between requests needs its CPU always (components/backends/cloudrun.py checks every service).
ENGINE_SIDECAR = (1000, 512)
TELEMETRY_AGENT = (500, 512)
"""The agent's least size; `telemetry_agent_size` gives it the rest of the instance's whole vCPU."""
STACKDRIVER_EXPORTER = (250, 256)
JSON_EXPORTER = (250, 128)
SMALL = (250, 128)


def telemetry_agent_size(railway: bool) -> tuple[int, int]:
    """The agent's CPU: at least `TELEMETRY_AGENT`'s, rounded up so that the instance is a whole number of vCPUs."""
    exporters = STACKDRIVER_EXPORTER[0] + (JSON_EXPORTER[0] if railway else 0)
    whole = max(1000, -(-(exporters + TELEMETRY_AGENT[0]) // 1000) * 1000)
    return whole - exporters, TELEMETRY_AGENT[1]


def telemetry_service_size(railway: bool) -> tuple[int, int]:
    parts = [telemetry_agent_size(railway), STACKDRIVER_EXPORTER, *([JSON_EXPORTER] if railway else [])]
    return sum(c for c, _ in parts), sum(m for _, m in parts)


@dataclass(frozen=True)
class GrafanaCloud:
    """The environment's Grafana Cloud stack: where its metrics, traces and logs go."""

    prometheus_push_url: str
    prometheus_user: str
    token: pulumi.Input[str]
    """An access policy token (metrics:write, logs:write, traces:write): a secret."""
    otlp_endpoint: str
    otlp_user: str
    loki_url: str | None = None
    loki_user: str | None = None


def remote_write(grafana: GrafanaCloud) -> RemoteWrite:
    return RemoteWrite(grafana.prometheus_push_url, grafana.prometheus_user, agent.password_file())


def agent_spec(name: str, backend: Backend, jobs: Sequence[ScrapeJob], grafana: GrafanaCloud, environment: str,
               size: ServiceProfile, config: pulumi.Input[str] | None = None,
               image: Image = images.upstream, labels: Mapping[str, str] | None = None,
               exporter_password: pulumi.Input[str] | None = None) -> ContainerSpec:
    """Prometheus in agent mode; `exporter_password` is what it presents to Railway's metrics exporter. `config`
    (the rendered agent configuration) may be an output, when a job
    names services by ids the stack only knows once they exist; left out, it is rendered from `jobs` with
    `labels` (by default `agent_labels`)."""
    cloud_run = backend == "cloudrun"
    labels = labels if labels is not None else agent_labels(backend, environment)
    text = config if config is not None else agent.render(agent.agent_config(jobs, remote_write(grafana), labels))
    return ContainerSpec(
        name=name, image=image(images.PROMETHEUS), port=agent.AGENT_PORT, size=size,
        env={agent.CONFIG_ENV: text}, secret_env={agent.PASSWORD_ENV: grafana.token, **(
            {agent.EXPORTER_PASSWORD_ENV: exporter_password} if exporter_password is not None else {})},
        command=["sh", "-c", agent.start_script(replica="gce-metadata" if cloud_run else "none")],
        health_path="/-/ready")


def agent_labels(backend: Backend, environment: str) -> dict[str, str]:
    """Every series an agent sends carries its stack's environment; on Cloud Run also the instance
    (`replica`), without which the instances' series would be one series in the remote store."""
    return {"environment": environment, **({"replica": f"${{{agent.REPLICA_ENV}}}"} if backend == "cloudrun" else {})}


def sidecar_labels(environment: str) -> dict[str, str]:
    """The engine sidecar's labels: also the revision its instance runs (`revision`), by which the canary
    rollout judges a revision on its own series (infra/ops/rollout.py `canary_selector`). Cloud Run sets
    `K_REVISION` in every container of an instance, sidecars included (cloud.google.com/run/docs/
    container-contract, "Environment variables": all but PORT go to every container); Prometheus expands
    `${K_REVISION}` with `expand-external-labels` (the agent's start-up enables it)."""
    return {**agent_labels("cloudrun", environment), "revision": "${K_REVISION}"}


def engine_sidecar(jobs: Sequence[ScrapeJob], grafana: GrafanaCloud, environment: str,
                   image: Image = images.upstream) -> ContainerSpec:
    """The agent in each Cloud Run instance of the engine (ENGINE_SIDECAR)."""
    return agent_spec(AGENT, "cloudrun", jobs, grafana, environment, _small("cloudrun", *ENGINE_SIDECAR),
                      image=image, labels=sidecar_labels(environment))


def redis_exporter_spec(backend: Backend, redis_url: pulumi.Input[str], image: Image = images.upstream
                        ) -> ContainerSpec:
    """REDIS_ADDR with the password in it (redis_exporter accepts `redis://:password@host:port`): a secret."""
    return ContainerSpec(name=REDIS_EXPORTER, image=image(images.REDIS_EXPORTER), port=REDIS_EXPORTER_PORT,
                         size=_small(backend, *SMALL), secret_env={"REDIS_ADDR": redis_url},
                         health_path="/health", healthcheck_command=["/redis_exporter", "--version"])


EXPORTER_USER = RAILWAY_METRICS_USER
RAILWAY_PROJECT_TOKEN_ENV = "RAILWAY_PROJECT_TOKEN"
"""The exporter's Railway token: a project token of the stack's environment."""
# Where the exporter is a Railway service, the deploy job's RAILWAY_METRICS_TOKEN holds that token (issue #22 item 1):
# it can write the environment, so it is in no stack file a preview decrypts; the Railway provider sets it when it
# applies. A Cloud Run sidecar cannot be given it that way and reads `platform:railwayMetricsToken` (a Pulumi secret).
EXPORTER_WEB_CONFIG_ENV = "EXPORTER_WEB_CONFIG"
"""exporter-toolkit's web configuration (`--web.config.file`): the agent's bcrypt-hashed password."""


def railway_metrics_config(environment_id: str, token_file: str) -> dict[str, Any]:
    """json_exporter's configuration: one POST to Railway's API per scrape, its body a Go template (Sprig's
    `now`, `dateModify`, `dateInZone`), the latest value of each measurement per service and replica.

    The token is a project token of the stack's environment, which Railway takes as `Project-Access-Token`
    ("Project token | Single environment in a project", https://docs.railway.com/reference/public-api), not
    an account token as `Authorization: Bearer` (#22 item 4). prometheus/common's `http_headers` (config.Headers,
    v0.62.0 as json_exporter v0.7.0 builds it) reads each of its `files` on every request."""
    body = json.dumps({"query": RAILWAY_METRICS_QUERY, "variables": {
        "environmentId": environment_id, "startDate": "__START__"}})
    start = '{{ dateInZone "2006-01-02T15:04:05Z" (now | dateModify "-5m") "UTC" }}'
    metrics = [{
        "name": name, "type": "object", "help": f"Railway {measurement} of a service replica (its metrics API)",
        "path": f'{{ .data.metrics[?(@.measurement == "{measurement}")] }}',
        "labels": {"service_id": "{ .tags.serviceId }", "replica": "{ .tags.deploymentInstanceId }"},
        "values": {unit: "{ .values[-1:].value }"},
    } for measurement, (name, unit) in RAILWAY_MEASUREMENTS.items()]
    return {"modules": {"railway": {
        "metrics": metrics,
        "http_client_config": {"http_headers": {"Project-Access-Token": {"files": [token_file]}}},
        "headers": {"Content-Type": "application/json"},
        "body": {"content": body.replace("__START__", start), "templatize": True},
    }}}


def exporter_web_config(password_hash: str) -> dict[str, Any]:
    """exporter-toolkit's web configuration: only the agent, with its password (bcrypt, as `basic_auth_users`
    requires: prometheus/exporter-toolkit docs/web-configuration.md)."""
    return {"basic_auth_users": {EXPORTER_USER: password_hash}}


def railway_metrics_spec(backend: Backend, environment_id: str, project_token: pulumi.Input[str] | None,
                         password_hash: pulumi.Input[str], image: Image = images.upstream) -> ContainerSpec:
    """json_exporter fetches whatever URL its caller names in `/probe?target=` with the module's token
    (prometheus-community/json_exporter v0.7.0 cmd/main.go `probeHandler`: `target :=
    r.URL.Query().Get("target")`; no configuration fixes it). So it answers only the agent, whose scrape job
    names Railway's API (exporter-toolkit basic auth: every path, so no health path), and, as a Cloud Run sidecar,
    listens on loopback (the instance's containers share it; cloud.google.com/run/docs/deploying#sidecars). On
    Railway it is a service of its own: the private network reaches it, and the password keeps it shut.

    Its token can also write (issue #22 item 4, a limit of Railway's): `project_token` is a project token of this one
    environment, the narrowest API token Railway has, and Railway's tokens carry a scope, never a permission level
    ("Project token | Single environment in a project", docs.railway.com/reference/public-api "Choosing a token
    type"), so it may also change that environment's variables and deployments. Railway's one read-only credential is
    an OAuth access token with the `project:viewer` scope (docs.railway.com/integrations/oauth/
    scopes-and-user-consent), which "expire[s] after one hour" (docs.railway.com/integrations/oauth/
    login-and-tokens) and is renewed with the OAuth app's secret and a refresh token: json_exporter sends a fixed
    header and cannot renew it, and whether `project:viewer` may read `metrics` is undocumented. docs/review.md,
    "Railway has no read-only token".

    `project_token` None: the exporter is a Railway service and the provider sets the token from the deploy job's
    RAILWAY_METRICS_TOKEN (deploy_env), so it is in no stack file, preview or state (#22 item 1)."""
    config = yaml.safe_dump(railway_metrics_config(environment_id, "/tmp/railway-token"),  # pyright: ignore[reportUnknownMemberType]
                            sort_keys=False)
    web = pulumi.Output.secret(pulumi.Output.from_input(password_hash).apply(
        lambda hashed: str(yaml.safe_dump(exporter_web_config(hashed)))))  # pyright: ignore[reportUnknownMemberType]
    listen = f"127.0.0.1:{RAILWAY_METRICS_PORT}" if backend == "cloudrun" else f":{RAILWAY_METRICS_PORT}"
    script = "\n".join([
        "set -eu",
        'printf "%s" "$JSON_EXPORTER_CONFIG" > /tmp/config.yml',
        f'printf "%s" "${RAILWAY_PROJECT_TOKEN_ENV}" > /tmp/railway-token',
        f'printf "%s" "${EXPORTER_WEB_CONFIG_ENV}" > /tmp/web.yml',
        "exec /bin/json_exporter --config.file=/tmp/config.yml --web.config.file=/tmp/web.yml "
        f"--web.listen-address={listen}",
    ])
    return ContainerSpec(name=RAILWAY_METRICS, image=image(images.JSON_EXPORTER), port=RAILWAY_METRICS_PORT,
                         size=_small(backend, *JSON_EXPORTER), env={"JSON_EXPORTER_CONFIG": config},
                         secret_env={EXPORTER_WEB_CONFIG_ENV: web,
                                     **({RAILWAY_PROJECT_TOKEN_ENV: project_token} if project_token is not None
                                        else {})},
                         deploy_env={RAILWAY_PROJECT_TOKEN_ENV: RAILWAY_METRICS_TOKEN_ENV} if project_token is None
                         else {},
                         command=["sh", "-c", script])


def cloud_monitoring_spec(project: str, image: Image = images.upstream, postgres: bool = False) -> ContainerSpec:
    prefixes = (*CLOUD_MONITORING_PREFIXES, *(CLOUD_SQL_PREFIXES if postgres else ()))
    flags = [f"--google.project-ids={project}", f"--web.listen-address=:{CLOUD_MONITORING_PORT}",
             *(f"--monitoring.metrics-prefixes={p}" for p in prefixes)]
    return ContainerSpec(name="stackdriver-exporter", image=image(images.STACKDRIVER_EXPORTER),
                         port=CLOUD_MONITORING_PORT,
                         size=_small("cloudrun", *STACKDRIVER_EXPORTER),
                         command=["/bin/stackdriver_exporter", *flags])


def telemetry_service_spec(jobs: Sequence[ScrapeJob], grafana: GrafanaCloud, environment: str, project: str,
                           railway: tuple[str, pulumi.Input[str]] | None, image: Image = images.upstream,
                           exporter: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None,
                           postgres: bool = False) -> ContainerSpec:
    """The Cloud Run service that reads provider APIs once for the stack: the agent takes requests (its
    readiness), the exporters are its sidecars; one instance, always (the instance sums to one vCPU)."""
    sidecars = [cloud_monitoring_spec(project, image, postgres)]
    if railway is not None:
        assert exporter is not None, "Railway's metrics exporter answers the agent's password only"
        sidecars.append(railway_metrics_spec("cloudrun", railway[0], railway[1], exporter[1], image))
    spec = agent_spec(TELEMETRY_SERVICE, "cloudrun", jobs, grafana, environment,
                      _small("cloudrun", *telemetry_agent_size(railway is not None)), image=image,
                      exporter_password=exporter[0] if exporter is not None else None)
    return dataclasses.replace(spec, sidecars=tuple(sidecars), project_roles=("roles/monitoring.viewer",))


def log_drain_spec(environment_id: str, service_ids: pulumi.Input[str], loki_push_url: pulumi.Input[str],
                   image: Image = images.upstream) -> ContainerSpec:
    """Locomotive, with a Railway account token (its README: project level keys do not work), which can change every
    project of the account: it is in no stack file, preview or state; the Railway provider sets it from the deploy
    job's RAILWAY_LOG_DRAIN_TOKEN when it applies (issue #22 item 1)."""
    return ContainerSpec(
        name=LOG_DRAIN, image=image(images.LOCOMOTIVE), port=8080, size=_small("railway", *SMALL),
        env={"LOCOMOTIVE_ENVIRONMENT_ID": environment_id, "LOCOMOTIVE_SERVICE_IDS": service_ids,
             "LOCOMOTIVE_WEBHOOK_MODE": "loki", "LOCOMOTIVE_ENABLE_DEPLOY_LOGS": "true"},
        secret_env={"LOCOMOTIVE_WEBHOOK_URL": loki_push_url},
        deploy_env={"LOCOMOTIVE_RAILWAY_API_KEY": LOG_DRAIN_TOKEN_ENV})


def loki_push_url(loki_url: str, user: str, token: pulumi.Input[str]) -> pulumi.Output[str]:
    """`https://{USERNAME}:{PASSWORD}@{LOKI_HOSTNAME}/loki/api/v1/push` (Locomotive's Loki setup)."""
    host = loki_url.removeprefix("https://").rstrip("/")
    return pulumi.Output.secret(pulumi.Output.concat("https://", user, ":", token, "@", host, "/loki/api/v1/push"))


def otlp_headers(user: str, token: pulumi.Input[str]) -> pulumi.Output[str]:
    """OTEL_EXPORTER_OTLP_HEADERS for Grafana Cloud's OTLP gateway: Basic auth of the stack's instance id and
    the token, the space percent-encoded as the OpenTelemetry environment variables require."""
    import base64

    return pulumi.Output.secret(pulumi.Output.from_input(token).apply(
        lambda t: "Authorization=Basic%20" + base64.b64encode(f"{user}:{t}".encode()).decode()))


def id_names(ids: Mapping[str, pulumi.Output[str]]) -> pulumi.Output[dict[str, str]]:
    """{service id: name} once Railway has answered the ids."""
    names = sorted(ids)
    return pulumi.Output.all(*[ids[n] for n in names]).apply(lambda values: dict(zip(values, names, strict=True)))


def railway_service_id(endpoint: Endpoint) -> pulumi.Output[str] | None:
    """The Railway service behind an endpoint, once Railway has made it (its resource id is Railway's
    service id: components/backends/railway.py `create`)."""
    for resource in endpoint.resources:
        if isinstance(resource, RailwayService):
            return resource.id
    return None


@dataclass(frozen=True)
class RailwaySide:
    environment_id: str
    services: Mapping[str, pulumi.Output[str]]
    """The platform's Railway services: name -> service id."""
    metrics_token: pulumi.Input[str] | None
    """The metrics exporter's: a project token of this environment only (#22 item 4). None where the exporter is a
    Railway service: the deploy job's RAILWAY_METRICS_TOKEN (#22 item 1)."""


@dataclass(frozen=True)
class CloudTelemetryArgs:
    environment: str
    layout: Layout
    engine_backend: Backend
    targets: Targets
    grafana: GrafanaCloud
    redis_url: pulumi.Input[str] | None
    """Redis on the engine's backend (Railway): what its exporter reads. None for Memorystore."""
    railway: RailwaySide | None
    gcp_project: str | None
    log_retention_days: int
    image: Image = images.upstream
    postgres: bool = False
    """Cloud SQL's metrics are read too (`platform:database: {engine: postgres}`)."""


class CloudTelemetry(pulumi.ComponentResource):
    """Agents and exporters of a cloud stack and, where Railway keeps the logs, their drain and sink."""

    def __init__(self, name: str, args: CloudTelemetryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:observability:CloudTelemetry", name, None, opts)
        railway_ids: dict[str, pulumi.Output[str]] = dict(args.railway.services) if args.railway else {}

        def run(key: str, spec: ContainerSpec) -> None:
            endpoint = deploy(f"{name}-{key}", spec, args.targets, self)
            service_id = railway_service_id(endpoint)
            if service_id is not None:
                railway_ids[spec.name] = service_id

        small = _small(args.engine_backend, 250, 256)  # the agent on Railway, one replica
        # The agent's password to Railway's metrics exporter, which answers no one else (railway_metrics_spec).
        exporter: tuple[pulumi.Output[str], pulumi.Output[str]] | None = None
        if args.railway is not None:
            password = random.RandomPassword(f"{name}-railway-metrics-password", length=40, special=False,
                                             opts=pulumi.ResourceOptions(parent=self))
            exporter = (pulumi.Output.secret(password.result), pulumi.Output.secret(password.bcrypt_hash))
        if args.engine_backend == "railway":
            if args.redis_url is not None:
                run("redis-exporter", redis_exporter_spec("railway", args.redis_url, args.image))
            if args.railway is not None and exporter is not None:
                run("railway-metrics", railway_metrics_spec("railway", args.railway.environment_id,
                                                            args.railway.metrics_token, exporter[1], args.image))
            names = id_names(railway_ids)
            config = names.apply(lambda by_id: agent.render(agent.agent_config(
                _with_names(args.layout.engine_agent, by_id), remote_write(args.grafana),
                agent_labels("railway", args.environment))))
            run("agent", agent_spec(AGENT, "railway", args.layout.engine_agent, args.grafana, args.environment, small,
                                    config=config, image=args.image,
                                    exporter_password=exporter[0] if exporter is not None else None))
        elif args.engine_backend == "cloudrun" and args.layout.exporter_agent:
            assert args.gcp_project is not None, "Cloud Run runs in the stack's GCP project"
            railway: tuple[str, pulumi.Input[str]] | None = None
            if args.railway is not None:
                # A sidecar is no Railway service: the provider cannot set it from the deploy job's environment.
                assert args.railway.metrics_token is not None, "a Cloud Run sidecar reads platform:railwayMetricsToken"
                railway = (args.railway.environment_id, args.railway.metrics_token)
            run("service", telemetry_service_spec(args.layout.exporter_agent, args.grafana, args.environment,
                                                  args.gcp_project, railway, args.image, exporter, args.postgres))
        if args.railway is not None and args.railway.services:
            loki_url, loki_user = args.grafana.loki_url, args.grafana.loki_user
            assert loki_url is not None and loki_user is not None, "Railway's logs go to the stack's Loki"
            drained = sorted(railway_ids)
            ids = pulumi.Output.all(*[railway_ids[n] for n in drained]).apply(lambda values: ",".join(values))
            run("log-drain", log_drain_spec(args.railway.environment_id, ids,
                                            loki_push_url(loki_url, loki_user, args.grafana.token), args.image))
            LogSink(f"{name}-log-sink", loki_url=loki_url, loki_user=loki_user,
                    retention_days=args.log_retention_days, sources=[*drained, LOG_DRAIN], drain=LOG_DRAIN,
                    opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


def _with_names(jobs: Sequence[ScrapeJob], by_id: Mapping[str, str]) -> list[ScrapeJob]:
    return [dataclasses.replace(job, name_from=("service_id", by_id)) if job.name == RAILWAY_METRICS else job
            for job in jobs]
