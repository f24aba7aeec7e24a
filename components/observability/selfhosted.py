"""The self-hosted observability stack of the docker backend (L6, A1): an OpenTelemetry Collector
receiving OTLP, Tempo keeping the traces it forwards, cAdvisor for container CPU and memory, a Redis
exporter, Prometheus scraping the engine, the exporters and the collector with the stack's rules loaded
(the same scrape jobs as the cloud stacks' agents: components/observability/agent.py), and Grafana with
its Prometheus and Tempo data sources provisioned from files. Every file is generated here.

The dashboards are not provisioned from files: the stack creates them through Grafana's API
(components/observability/grafana.py), as staging and prod do. Grafana refuses to save through the API a
dashboard a file provisions (`dashboards.ErrDashboardCannotSaveProvisionedDashboard`, "Cannot save provisioned
dashboard", 400: grafana/grafana pkg/services/dashboards/service/dashboard_service.go, errors.go), so one UID has
one path; `provisioned_dashboard_uids` tells `Alerting` which UIDs the files own, and it refuses to create them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random
import yaml

from components.backends.service import ContainerSpec, Endpoint
from components.backends.targets import Targets, deploy
from components.observability.agent import ScrapeJob, scrape_config
from components.observability.cloud import redis_exporter_spec
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


DASHBOARD_PROVIDERS_DIR = "/etc/grafana/provisioning/dashboards/"
"""Where Grafana reads its dashboard providers ("adding one or more YAML config files in the
provisioning/dashboards directory", grafana.com/docs/grafana/latest/administration/provisioning)."""


def grafana_files(environment: str) -> dict[str, str]:
    """Grafana's data sources, provisioned; no dashboard provider (the dashboards go through the API)."""
    del environment  # the same data sources in every environment; kept for the callers' one signature
    return {
        "/etc/grafana/provisioning/datasources/prometheus.yml": _yaml({"apiVersion": 1, "datasources": [{
            "name": "Prometheus", "type": "prometheus", "uid": DATASOURCE_UID, "access": "proxy",
            "url": "http://prometheus:9090", "isDefault": True}, {
            "name": "Tempo", "type": "tempo", "uid": TRACES_DATASOURCE_UID, "access": "proxy",
            "url": "http://tempo:3200"}]}),
    }


def provisioned_dashboard_uids(files: dict[str, str]) -> frozenset[str]:
    """The UIDs of the dashboards Grafana would load from `files`: each JSON file under the path
    (`options.path`) of a file dashboard provider in the provisioning directory."""
    paths: list[str] = []
    for name, content in files.items():
        if name.startswith(DASHBOARD_PROVIDERS_DIR):
            document: dict[str, Any] = yaml.safe_load(content) or {}
            providers: list[dict[str, Any]] = document.get("providers") or []
            paths += [str(p["options"]["path"]).rstrip("/") + "/" for p in providers if p.get("type", "file") == "file"]
    return frozenset(str(json.loads(content)["uid"]) for name, content in files.items()
                     if name.endswith(".json") and any(name.startswith(p) for p in paths))


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
    provisioned_dashboard_uids: frozenset[str]
    """Dashboards Grafana loads from files: none today; the API must not create these (`Alerting`)."""

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
            # Containers' CPU and memory only (M3, M4), from their cgroups alone (#22 item 11): no Docker socket,
            # which is the whole Engine API and so root on the host, even mounted read-only (google/cadvisor#2009),
            # and no /var/lib/docker, which only Docker's factory reads. Without the socket Docker's factory does
            # not register ("Registration of the docker container factory failed" is logged and cAdvisor goes on,
            # google/cadvisor container/factory.go InitializePlugins), and with --docker_only the raw factory takes
            # only "/" and the cgroups under --raw_cgroup_prefix_whitelist (container/raw/factory.go
            # CanHandleAndAccept): the containers' own parents, `platform-<name>.slice` (components/backends/
            # docker.py cgroup_parent), under /platform.slice with Docker's systemd driver, at the root with
            # cgroupfs on a host without systemd, and under /system.slice with cgroupfs on a systemd host (runc puts
            # a relative path under the parent of its own cgroup, dockerd's: opencontainers/cgroups
            # fs2/defaultpath.go). Their `name` label, which Docker's factory used to set, is set by the scrape from
            # the path (telemetry.cadvisor_job). Disk metrics are off.
            command=["--docker_only=true", "--housekeeping_interval=15s", "--disable_root_cgroup_stats=true",
                     "--raw_cgroup_prefix_whitelist=/platform.slice/,/platform-,/system.slice/platform-",
                     "--disable_metrics=disk,diskIO,network,tcp,udp,percpu,sched,process,hugetlb,referenced_memory"],
            host_mounts={"/sys/fs/cgroup": "/sys/fs/cgroup"}),
            args.targets, self)
        deploy(f"{name}-prometheus", ContainerSpec(
            name="prometheus", image=PROMETHEUS_IMAGE, port=9090, size=args.size,
            command=["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=30d"],
            healthcheck_command=["wget", "-q", "--spider", "http://127.0.0.1:9090/-/ready"],
            files={"/etc/prometheus/prometheus.yml": prometheus_config(args.jobs),
                   "/etc/prometheus/rules.yml": dump(rule_groups(args.spec))}), args.targets, self)
        public = dataclasses.replace(args.size, public=True)
        files = grafana_files(args.environment)
        self.provisioned_dashboard_uids = provisioned_dashboard_uids(files)
        self.grafana = deploy(f"{name}-grafana", ContainerSpec(
            name="grafana", image=GRAFANA_IMAGE, port=3000, size=public,
            env={"GF_AUTH_ANONYMOUS_ENABLED": "false", "GF_USERS_ALLOW_SIGN_UP": "false",
                 "GF_SERVER_ROOT_URL": args.grafana_url},
            # Applied at Grafana's first start only, when it creates its database ("admin_password: The password
            # of the default Grafana Admin. Set once on first-run. Default is `admin`", grafana/grafana
            # docs/sources/setup-grafana/configure-grafana/_index.md). With the database on the volume below, this
            # must stay the password Grafana was created with: the provider (infra/program.py) logs in with it.
            # Replacing `<name>-grafana-admin` alone would hand the provider a password Grafana never heard of
            # (401). Rotate in three steps: `pulumi up --target <its URN> --replace <its URN>` (only the new value
            # is made); pipe that value into the running Grafana, never onto a command line or into a shell's
            # history: `pulumi stack export --show-secrets | jq -r '.deployment.resources[] | select(.urn |
            # endswith("::<name>-grafana-admin")) | .outputs.result' | docker exec -i grafana grafana cli admin
            # reset-admin-password --password-from-stdin`; then `pulumi up` (the container is replaced with the
            # new variable; the database, with the new password, stays). A lost password is reset the same way.
            secret_env={"GF_SECURITY_ADMIN_PASSWORD": admin.result},
            healthcheck_command=["wget", "-q", "--spider", "http://127.0.0.1:3000/api/health"],
            # Grafana's database (folder, dashboards, rule group, contact points created through the API) lives in
            # `paths.data`, /var/lib/grafana in the image: on a named volume it survives a replaced container, as
            # PocketBase's data does (components/backends/docker.py declares `<service>-data`). The first `up` that
            # adds the volume replaces the container and starts an empty database while the state still lists
            # what the API created: integration's deploy refreshes before its up (deploy.yml), so they are made again.
            volume_path="/var/lib/grafana",
            files=files), args.targets, self)
        self.grafana_admin_password = pulumi.Output.secret(admin.result)
        self.otlp_endpoint = f"http://otel-collector:{OTLP_HTTP_PORT}"
        self.register_outputs({})

