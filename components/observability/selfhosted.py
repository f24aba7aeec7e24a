"""The self-hosted observability stack of the docker backend (L6, A1): an OpenTelemetry Collector
receiving OTLP, Tempo keeping the traces it forwards, cAdvisor for container CPU and memory, a Redis
exporter, Prometheus scraping the engine, the exporters and the collector with the stack's rules loaded
(the same scrape jobs as the cloud stacks' agents: components/observability/agent.py), and Grafana with
its Prometheus and Tempo data sources and the dashboards provisioned. Every file is generated here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pulumi
import pulumi_random as random
import yaml

from components.backends.service import ContainerSpec, Endpoint
from components.backends.targets import Targets, deploy
from components.observability.agent import ScrapeJob, scrape_config
from components.observability.cloud import redis_exporter_spec
from components.observability.dashboards import DASHBOARDS, render
from components.observability.rules import dump, rule_groups
from components.observability.spec import ObservabilitySpec
from stacks.profile import ServiceProfile

COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.116.1"
PROMETHEUS_IMAGE = "prom/prometheus:v2.55.1"
GRAFANA_IMAGE = "grafana/grafana:11.3.1"
CADVISOR_IMAGE = "gcr.io/cadvisor/cadvisor:v0.49.1"
TEMPO_IMAGE = "grafana/tempo:2.6.1"
DATASOURCE_UID = "prometheus"
TRACES_DATASOURCE_UID = "tempo"
OTLP_HTTP_PORT = 4318
TRACE_RETENTION = "336h"


def _yaml(document: object) -> str:
    text: str = yaml.safe_dump(document, sort_keys=False)  # pyright: ignore[reportUnknownMemberType]
    return text


def collector_config() -> str:
    return _yaml({
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"},
                                             "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"}}}},
        "processors": {"batch": {}},
        # Traces to Tempo over OTLP on the private network (no TLS inside the host's network).
        "exporters": {"prometheus": {"endpoint": "0.0.0.0:8889"},
                      "otlp/tempo": {"endpoint": "tempo:4317", "tls": {"insecure": True}}},
        "service": {"pipelines": {
            "metrics": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["prometheus"]},
            "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp/tempo"]},
        }},
    })


def tempo_config() -> str:
    """Tempo as a single binary on a local disk, receiving OTLP gRPC from the collector
    (grafana.com/docs/tempo/latest/configuration: `distributor.receivers`, `storage.trace.backend: local`,
    `compactor.compaction.block_retention`)."""
    return _yaml({
        "server": {"http_listen_port": 3200},
        "distributor": {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}}}}},
        "storage": {"trace": {"backend": "local", "wal": {"path": "/var/tempo/wal"},
                              "local": {"path": "/var/tempo/blocks"}}},
        "compactor": {"compaction": {"block_retention": TRACE_RETENTION}},
    })


def prometheus_config(jobs: list[ScrapeJob]) -> str:
    """The stack's scrape jobs (components/observability/telemetry.py), the collector's and its own."""
    own = [ScrapeJob("otel-collector", targets=("otel-collector:8889",)),
           ScrapeJob("prometheus", targets=("localhost:9090",))]
    return _yaml({
        "global": {"scrape_interval": "15s", "evaluation_interval": "1m"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [scrape_config(job, "15s") for job in [*jobs, *own]],
    })


def grafana_files(environment: str) -> dict[str, str]:
    files = {
        "/etc/grafana/provisioning/datasources/prometheus.yml": _yaml({"apiVersion": 1, "datasources": [{
            "name": "Prometheus", "type": "prometheus", "uid": DATASOURCE_UID, "access": "proxy",
            "url": "http://prometheus:9090", "isDefault": True}, {
            "name": "Tempo", "type": "tempo", "uid": TRACES_DATASOURCE_UID, "access": "proxy",
            "url": "http://tempo:3200"}]}),
        "/etc/grafana/provisioning/dashboards/platform.yml": _yaml({"apiVersion": 1, "providers": [{
            "name": "platform", "folder": "Platform", "type": "file", "disableDeletion": True,
            "options": {"path": "/var/lib/grafana/dashboards"}}]}),
    }
    for name in DASHBOARDS:
        files[f"/var/lib/grafana/dashboards/{name}.json"] = render(name, environment)
    return files


@dataclass(frozen=True)
class SelfHostedArgs:
    spec: ObservabilitySpec
    """The stack's spec (components/observability/telemetry.py `stack_spec`)."""
    environment: str
    targets: Targets
    jobs: list[ScrapeJob]
    """The stack's scrape jobs (`telemetry.layout`)."""
    redis_url: pulumi.Input[str]
    """What the Redis exporter reads, password included: a secret."""
    size: ServiceProfile
    grafana_url: str
    """Where people (and the Pulumi program's Grafana provider) reach Grafana, through the edge."""


class SelfHostedObservability(pulumi.ComponentResource):
    otlp_endpoint: str
    grafana: Endpoint
    grafana_admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: SelfHostedArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:observability:SelfHosted", name, None, opts)
        admin = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False,
                                      opts=pulumi.ResourceOptions(parent=self))
        deploy(f"{name}-tempo", ContainerSpec(
            name="tempo", image=TEMPO_IMAGE, port=3200, size=args.size, command=["-config.file=/etc/tempo.yaml"],
            files={"/etc/tempo.yaml": tempo_config()}), args.targets, self)
        deploy(f"{name}-redis-exporter", redis_exporter_spec("docker", args.redis_url), args.targets, self)
        deploy(f"{name}-collector", ContainerSpec(
            name="otel-collector", image=COLLECTOR_IMAGE, port=OTLP_HTTP_PORT, size=args.size,
            command=["--config=/etc/otelcol-contrib/config.yaml"],
            files={"/etc/otelcol-contrib/config.yaml": collector_config()}), args.targets, self)
        deploy(f"{name}-cadvisor", ContainerSpec(
            name="cadvisor", image=CADVISOR_IMAGE, port=8080, size=args.size,
            # Containers' CPU and memory only (M3, M4): their cgroups, and Docker's socket for their names.
            # Not the host's root file system, nor the rest of /var/run; disk metrics are off.
            command=["--docker_only=true", "--housekeeping_interval=15s", "--disable_root_cgroup_stats=true",
                     "--disable_metrics=disk,diskIO,network,tcp,udp,percpu,sched,process,hugetlb,referenced_memory"],
            host_mounts={"/sys/fs/cgroup": "/sys/fs/cgroup", "/var/run/docker.sock": "/var/run/docker.sock",
                         "/var/lib/docker": "/var/lib/docker"}),
            args.targets, self)
        deploy(f"{name}-prometheus", ContainerSpec(
            name="prometheus", image=PROMETHEUS_IMAGE, port=9090, size=args.size,
            command=["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=30d"],
            healthcheck_command=["wget", "-q", "--spider", "http://127.0.0.1:9090/-/ready"],
            files={"/etc/prometheus/prometheus.yml": prometheus_config(args.jobs),
                   "/etc/prometheus/rules.yml": dump(rule_groups(args.spec))}), args.targets, self)
        public = dataclasses.replace(args.size, public=True)
        self.grafana = deploy(f"{name}-grafana", ContainerSpec(
            name="grafana", image=GRAFANA_IMAGE, port=3000, size=public,
            env={"GF_AUTH_ANONYMOUS_ENABLED": "false", "GF_USERS_ALLOW_SIGN_UP": "false",
                 "GF_SERVER_ROOT_URL": args.grafana_url},
            secret_env={"GF_SECURITY_ADMIN_PASSWORD": admin.result},
            healthcheck_command=["wget", "-q", "--spider", "http://127.0.0.1:3000/api/health"],
            files=grafana_files(args.environment)), args.targets, self)
        self.grafana_admin_password = pulumi.Output.secret(admin.result)
        self.otlp_endpoint = f"http://otel-collector:{OTLP_HTTP_PORT}"
        self.register_outputs({})

