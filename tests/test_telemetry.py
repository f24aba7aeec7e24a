"""Every signal of the cloud stacks has a declared path to the environment's own Grafana: the agents
(configured by components/observability/agent.py, run as the cloud stacks declare them), the exporters,
the engine's traces, Railway's logs; the config each needs; the cost table."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from graphql import build_schema, parse, validate

from components.observability import agent, cloud, cost, telemetry
from components.observability.images import IMAGES_DIR, upstream
from infra.config import ConfigError
from infra.plan import Plan
from tests.conftest import PROJECT_DIR, plan_of, stack_document, write_stack
from tests.environment import _unwrap, service_environment

RAILWAY = "pulumi-python:dynamic/railway:Service"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"


def _containers(plan: Plan, service: str) -> dict[str, dict[str, Any]]:
    # The primary's service; the failover region's standby runs the same containers (tests/test_failover.py).
    [run] = [r for r in plan.resources if r.type == CLOUD_RUN and r.inputs["name"] == service
             and r.inputs.get("labels", {}).get("platform-standby") != "true"]
    template, _ = _unwrap(run.wire_inputs["template"])
    return {c["name"]: c for c in template["containers"]}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: (_unwrap(e["value"])[0] if "value" in e else "<secret manager>") for e in container["envs"]}


def _promtool_agent(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    (tmp_path / "agent.yml").write_text(config)
    return subprocess.run([promtool, "check", "config", "--agent", "agent.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)


def test_prod_runs_the_agent_beside_the_engine_in_every_cloud_run_instance(
    committed_plans: dict[str, Plan], tmp_path: Path,
) -> None:
    plan = committed_plans["prod"]
    containers = _containers(plan, "commission-engine")
    gc = stack_document("prod")["config"]["platform:grafanaCloud"]

    assert list(containers) == ["commission-engine", "telemetry-agent"]
    sidecar = containers["telemetry-agent"]
    assert str(sidecar["image"]).startswith("us-docker.pkg.dev/acme-commerce-prod/platform/telemetry-prometheus@sha256:")
    assert "ports" not in sidecar and sidecar["resources"]["cpuIdle"] is False
    # The instance's containers add up to whole vCPUs (1 + 1).
    assert [c["resources"]["limits"]["cpu"] for c in containers.values()] == ["1", "1"]
    assert sidecar["commands"] == ["sh", "-c", agent.start_script(replica="gce-metadata")]
    env = _env(sidecar)
    assert env[agent.PASSWORD_ENV] == "<secret manager>"
    config = yaml.safe_load(env[agent.CONFIG_ENV])
    # The engine's private listener (components/api.py INTERNAL_PORT): the public port refuses the scrape (#22.2).
    assert config["scrape_configs"] == [{"job_name": "commission-engine", "metrics_path": "/metrics",
                                         "scrape_timeout": "10s", "static_configs": [{"targets": ["localhost:9000"]}]}]
    # The instance, and the revision the canary rollout judges it by (Cloud Run's K_REVISION).
    assert config["global"]["external_labels"] == {"environment": "prod", "replica": "${REPLICA}",
                                                   "revision": "${K_REVISION}"}
    assert config["remote_write"] == [{"url": gc["prometheusPushUrl"], "basic_auth": {
        "username": gc["prometheusUser"], "password_file": "/prometheus/remote-write-password"}}]
    result = _promtool_agent(env[agent.CONFIG_ENV], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prod_reads_cloud_monitoring_once_in_its_telemetry_service(committed_plans: dict[str, Plan], tmp_path: Path) -> None:
    plan = committed_plans["prod"]
    containers = _containers(plan, "telemetry")
    [run] = [r for r in plan.resources if r.type == CLOUD_RUN and r.inputs["name"] == "telemetry"]

    assert list(containers) == ["telemetry", "stackdriver-exporter"]
    assert run.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    scaling = _unwrap(run.wire_inputs["template"])[0]["scaling"]
    assert (scaling["minInstanceCount"], scaling["maxInstanceCount"]) == (1, 1)
    # The agent runs its start-up script; the exporter asks for each metric the rules read, in prod's project.
    assert containers["telemetry"]["commands"] == ["sh", "-c", agent.start_script(replica="gce-metadata")]
    exporter = containers["stackdriver-exporter"]["commands"]
    assert "--google.project-ids=acme-commerce-prod" in exporter
    assert {f"--monitoring.metrics-prefixes={p}" for p in cloud.CLOUD_MONITORING_PREFIXES} <= set(exporter)
    config = yaml.safe_load(_env(containers["telemetry"])[agent.CONFIG_ENV])
    assert [(c["job_name"], c["static_configs"]) for c in config["scrape_configs"]] == [
        ("cloud-monitoring", [{"targets": ["localhost:9255"]}])]
    [grant] = [r for r in plan.resources if r.type == "gcp:projects/iAMMember:IAMMember"
               and r.inputs.get("role") == "roles/monitoring.viewer"]
    assert grant.name == "telemetry-service-monitoring-viewer"
    result = _promtool_agent(_env(containers["telemetry"])[agent.CONFIG_ENV], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_staging_runs_its_agent_exporters_and_log_drain_on_railway(committed_plans: dict[str, Plan],
                                                                   tmp_path: Path) -> None:
    plan = committed_plans["staging"]
    services = {r.inputs["name"]: r for r in plan.resources if r.type == RAILWAY}

    assert set(services) == {"commission-engine", "pocketbase", "redis", "telemetry-agent", "redis-exporter",
                             "railway-metrics", "log-drain"}
    # Every replica is found at its private address: the engine listens on both address families. The public
    # listener is named; Railway's PORT variable is the private one, where its healthcheck goes (#22.2).
    assert services["commission-engine"].inputs["start_command"] == "python -m engine serve --host :: --port 8000"
    assert services["commission-engine"].inputs["num_replicas"] == 2
    assert services["telemetry-agent"].inputs["start_command"].startswith("sh -c ")
    assert "--enable-feature=agent,expand-external-labels" in services["telemetry-agent"].inputs["start_command"]
    for name in ("telemetry-agent", "redis-exporter", "railway-metrics", "log-drain"):
        image = str(services[name].inputs["image"])
        assert image.startswith("ghcr.io/acme-commerce/telemetry-"), (name, image)
        assert not services[name].inputs.get("public_port"), f"{name} is private"
    config = service_environment(plan, "telemetry-agent")[agent.CONFIG_ENV][0]
    assert _promtool_agent(config, tmp_path).returncode == 0
    jobs = {c["job_name"]: c for c in yaml.safe_load(config)["scrape_configs"]}
    assert set(jobs) == {"commission-engine", "redis", "railway-metrics"}
    ids = {str(r.inputs["name"]): f"{r.name}-id" for r in services.values()}  # the plan's stand-in ids
    assert {(m.get("regex"), m.get("replacement")) for m in jobs["railway-metrics"]["metric_relabel_configs"][1:]} == {
        (ids[n], n) for n in ("commission-engine", "pocketbase", "redis", "redis-exporter", "railway-metrics")}
    drained = service_environment(plan, "log-drain")
    assert set(str(drained["LOCOMOTIVE_SERVICE_IDS"][0]).split(",")) == {i for n, i in ids.items() if n != "log-drain"}
    assert drained["LOCOMOTIVE_WEBHOOK_MODE"][0] == "loki" and drained["LOCOMOTIVE_WEBHOOK_URL"][1]
    [sink] = [r.inputs for r in plan.resources if r.type.endswith("observability:LogSink")]
    assert sink["retention_days"] == 90 and set(sink["sources"]) == set(services)
    assert sink["loki_url"] == stack_document("staging")["config"]["platform:grafanaCloud"]["lokiUrl"]


def test_the_railway_agent_finds_every_replica_and_names_railways_metrics_by_service() -> None:
    jobs = telemetry.layout(stack_services("staging")).engine_agent
    renamed = cloud._with_names(jobs, {"0a1b": "commission-engine", "2c3d": "pocketbase"})  # pyright: ignore[reportPrivateUsage]
    config = agent.agent_config(renamed, agent.RemoteWrite("https://x/api/prom/push", "1", "/p"),
                                cloud.agent_labels("railway", "staging"))
    jobs_by_name = {c["job_name"]: c for c in config["scrape_configs"]}

    assert jobs_by_name["commission-engine"]["dns_sd_configs"] == [
        {"names": ["commission-engine.railway.internal"], "type": "AAAA", "port": 9000, "refresh_interval": "30s"}]
    assert jobs_by_name["redis"]["static_configs"] == [{"targets": ["redis-exporter.railway.internal:9121"]}]
    metrics = jobs_by_name["railway-metrics"]
    assert metrics["metrics_path"] == "/probe" and metrics["params"]["module"] == ["railway"]
    assert metrics["metric_relabel_configs"][0] == {"source_labels": ["service_id"], "target_label": "name"}
    assert {(m["regex"], m["replacement"]) for m in metrics["metric_relabel_configs"][1:]} == {
        ("0a1b", "commission-engine"), ("2c3d", "pocketbase")}
    assert config["global"]["external_labels"] == {"environment": "staging"}


def stack_services(stack: str) -> dict[str, Any]:
    from infra.config import load_model
    from infra.stackfile import read_stack_file

    return dict(load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack)).services)


def test_railways_metrics_query_is_valid_against_railways_schema() -> None:
    config = cloud.railway_metrics_config("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "/tmp/token")
    module = config["modules"]["railway"]
    body = json.loads(module["body"]["content"].replace(
        '{{ dateInZone "2006-01-02T15:04:05Z" (now | dateModify "-5m") "UTC" }}', "2026-01-01T00:00:00Z"))
    schema = build_schema((PROJECT_DIR / "tests" / "schemas" / "railway-public-api.graphql").read_text(),
                          assume_valid=True)

    assert validate(schema, parse(body["query"])) == []
    assert set(body["variables"]) == {"environmentId", "startDate"}
    # The environment's project token, as Railway takes one (tests/test_railway_metrics_scope.py, #22 item 4).
    assert module["http_client_config"]["http_headers"] == {"Project-Access-Token": {"files": ["/tmp/token"]}}
    names = {f"{m['name']}_{next(iter(m['values']))}" for m in module["metrics"]}
    assert names == {"railway_cpu_usage_vcpus", "railway_cpu_limit_vcpus", "railway_memory_usage_gigabytes",
                     "railway_memory_limit_gigabytes"}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_engine_sends_its_traces_to_the_environments_grafana_cloud(stack: str, committed_plans: dict[str, Plan]) -> None:
    env = service_environment(committed_plans[stack], "commission-engine")
    gc = stack_document(stack)["config"]["platform:grafanaCloud"]

    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"][0] == gc["otlpEndpoint"]  # (every variable is secret on Railway)
    headers, secret = env["OTEL_EXPORTER_OTLP_HEADERS"]
    assert secret and str(headers).startswith("Authorization=Basic%20")


def test_prod_keeps_its_cloud_run_and_vm_logs_90_days_in_cloud_logging(committed_plans: dict[str, Plan]) -> None:
    [bucket] = [r.inputs for r in committed_plans["prod"].resources
                if r.type == "gcp:logging/projectBucketConfig:ProjectBucketConfig"]

    assert bucket["bucketId"] == "_Default" and bucket["retentionDays"] >= 90
    assert not [r for r in committed_plans["prod"].resources if r.type == RAILWAY]


@pytest.mark.parametrize(("stack", "delete", "missing"), [
    ("staging", "platform:grafanaCloud", "platform:grafanaCloud: is required because the engine's metrics"),
    ("prod", "platform:grafanaCloudToken", "platform:grafanaCloudToken: is required because the agents"),
])
def test_a_cloud_stack_without_its_telemetry_config_is_refused(stack: str, delete: str, missing: str,
                                                                tmp_path: Path) -> None:
    document = stack_document(stack)
    del document["config"][delete]

    with pytest.raises(ConfigError) as refused:
        plan_of(write_stack(tmp_path, document), stack)

    assert any(line.startswith(missing) for line in refused.value.problems), refused.value.problems


def test_the_budget_is_stack_config_and_required_where_anything_is_billed_per_use(tmp_path: Path) -> None:
    document = stack_document("prod")
    del document["config"]["platform:alerts"]["monthlyBudgetUsd"]

    with pytest.raises(ConfigError) as refused:
        plan_of(write_stack(tmp_path, document), "prod")

    assert "platform:alerts.monthlyBudgetUsd: is required because the cost alert (M6)" in str(refused.value)


def test_every_price_has_its_source_and_every_stack_region_is_priced() -> None:
    for key, price in cost.PRICES.items():
        assert price.source and price.unit, key
    for stack in ("staging", "prod"):
        region = stack_document(stack)["config"].get("platform:gcp", {}).get("region")
        if region:
            cost.cloud_run_tier(region)
    prod = cost.cost_usd_per_hour(cost.Billing(fixed=(cost.FixedBilled("gce", "southamerica-east1", 2, 4),)))
    assert prod == f"(vector({2 * 0.034335 + 4 * 0.0046005:.10g}))"


def test_the_telemetry_images_are_the_upstream_images_each_dockerfile_names() -> None:
    names = {path.parent.name for path in IMAGES_DIR.glob("*/Dockerfile")}

    assert names == {"prometheus", "stackdriver-exporter", "json-exporter", "redis-exporter", "locomotive"}
    assert upstream("prometheus") == "prom/prometheus:v2.55.1"
