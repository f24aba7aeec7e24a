"""Railway's metrics exporter holds a token of its own environment only, and answers only the agent (#22 item 4).

- json_exporter takes the URL it fetches from the caller: `target := r.URL.Query().Get("target")` and
  `fetcher.FetchJSON(target)` with the module's http_client_config (prometheus-community/json_exporter v0.7.0,
  cmd/main.go `probeHandler`); no configuration fixes it. So whoever can call `/probe` sends the module's
  credentials wherever they like. The exporter therefore refuses every caller but the agent (exporter-toolkit's
  `--web.config.file` with `basic_auth_users`, bcrypt-hashed; json_exporter serves through
  `web.ListenAndServe(server, toolkitFlags, ...)`, cmd/main.go), and on Cloud Run, where it is the telemetry
  service's sidecar, it listens on loopback only. The agent's scrape job names the one target.
- The token is a Railway project token: "Project token | Single environment in a project"
  (https://docs.railway.com/reference/public-api, "Choosing a token type"), sent as `Project-Access-Token`
  (same page; components/backends/railway.py sends the deploy's the same way), never an account token as
  `Authorization: Bearer`, which reaches "All your resources and workspaces". It is the exporter's own
  (`platform:railwayMetricsToken`), not the deploy's RAILWAY_TOKEN: a running service never holds
  the credential the deploy changes the environment with, and each is revoked alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.observability import agent, cloud, telemetry
from infra.config import ConfigError
from infra.plan import Plan
from tests.conftest import PROJECT_DIR, plan_of, stack_document, write_stack
from tests.environment import service_environment

A_BCRYPT_HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
"""exporter-toolkit's own example hash (docs/web-configuration.md), for a configuration check only."""


def _module() -> dict[str, Any]:
    module: dict[str, Any] = cloud.railway_metrics_config("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                                                          "/tmp/railway-token")["modules"]["railway"]
    return module



@pytest.fixture(autouse=True)
def _event_loop() -> None:
    """The specs hold Pulumi outputs, which need a current event loop; a test before may have closed its own
    (the tests passed alone and failed after others in the full run)."""
    asyncio.set_event_loop(asyncio.new_event_loop())


def test_the_exporter_sends_a_project_token_as_project_access_token_never_a_bearer() -> None:
    client = _module()["http_client_config"]

    assert "authorization" not in client and "bearer_token" not in client and "bearer_token_file" not in client
    # prometheus/common config.Headers (v0.62.0, json_exporter v0.7.0's): `files` are read on every request.
    assert client["http_headers"] == {"Project-Access-Token": {"files": ["/tmp/railway-token"]}}
    assert "Authorization" not in _module().get("headers", {})


def test_the_exporter_answers_only_the_agent_with_its_password() -> None:
    spec = cloud.railway_metrics_spec("railway", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "project-token",
                                      "agent-password-hash")
    script = " ".join(spec.command)

    assert "--web.config.file=" in script
    assert set(spec.secret_env) == {cloud.RAILWAY_PROJECT_TOKEN_ENV, cloud.EXPORTER_WEB_CONFIG_ENV}
    web = cloud.exporter_web_config("HASH")
    assert web == {"basic_auth_users": {cloud.EXPORTER_USER: "HASH"}}


def test_on_railway_the_exporters_token_is_a_deploy_variable_and_in_no_input() -> None:
    """The script still writes $RAILWAY_PROJECT_TOKEN to the file json_exporter reads: the Railway provider sets that
    variable from the deploy job's RAILWAY_METRICS_TOKEN (#22 item 1), so the service runs as before."""
    spec = cloud.railway_metrics_spec("railway", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", None, "agent-password-hash")

    assert spec.deploy_env == {cloud.RAILWAY_PROJECT_TOKEN_ENV: "RAILWAY_METRICS_TOKEN"}
    assert cloud.RAILWAY_PROJECT_TOKEN_ENV not in spec.secret_env and cloud.RAILWAY_PROJECT_TOKEN_ENV not in spec.env
    assert f'"${cloud.RAILWAY_PROJECT_TOKEN_ENV}" > /tmp/railway-token' in " ".join(spec.command)


def test_an_engine_on_cloud_run_beside_railway_still_needs_the_stack_files_metrics_token(tmp_path: Path) -> None:
    """Its exporter is a sidecar of the Cloud Run telemetry service, which the Railway provider cannot give the deploy
    job's variable: only there is `platform:railwayMetricsToken` read (and required)."""
    from components.observability.stackconfig import telemetry_config_problems
    from infra.spec import StackSpecV1
    from stacks.registry import PROFILES

    document = stack_document("staging")
    config = {k.removeprefix("platform:"): v for k, v in document["config"].items() if k.startswith("platform:")}
    spec = StackSpecV1.model_validate({k: v for k, v in config.items() if not isinstance(v, dict) or "secure" not in v}
                                      | {"grafanaCloudToken": "t", "slackWebhookUrl": "s", "catalogPurgeToken": "c"})
    services = dict(PROFILES["staging"].services)
    services["engine"] = dataclasses.replace(services["engine"], backend="cloudrun")

    problems = telemetry_config_problems(spec, services, str(tmp_path / "Pulumi.x.yaml"), {}, "platform")
    assert any(p.startswith("platform:railwayMetricsToken: is required because") for p in problems), problems
    with_token = telemetry_config_problems(spec.model_copy(update={"railway_metrics_token": "tok"}), services,
                                           str(tmp_path / "Pulumi.x.yaml"), {}, "platform")
    assert not [p for p in with_token if "railwayMetricsToken" in p], with_token


def test_on_cloud_run_the_exporter_listens_on_loopback_only() -> None:
    spec = cloud.railway_metrics_spec("cloudrun", "env", "project-token", "hash")
    assert f"--web.listen-address=127.0.0.1:{telemetry.RAILWAY_METRICS_PORT}" in " ".join(spec.command)


def test_the_exporters_web_config_is_one_prometheus_accepts(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    (tmp_path / "web.yml").write_text(str(yaml.safe_dump(cloud.exporter_web_config(A_BCRYPT_HASH))))  # pyright: ignore[reportUnknownMemberType]
    result = subprocess.run([promtool, "check", "web-config", "web.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_agent_calls_the_exporter_with_its_password_and_the_one_target() -> None:
    job = telemetry.railway_metrics_job("railway-metrics.railway.internal")
    config = agent.scrape_config(job, "15s")

    assert config["basic_auth"] == {"username": cloud.EXPORTER_USER, "password_file": agent.exporter_password_file()}
    assert config["params"]["target"] == [telemetry.RAILWAY_API_URL]


def test_the_agent_writes_the_exporters_password_where_its_job_reads_it() -> None:
    script = agent.start_script()
    assert f'"${{{agent.EXPORTER_PASSWORD_ENV}:-}}" > {agent.exporter_password_file()}' in script


@pytest.fixture(scope="module")
def staging() -> Plan:
    return plan_of(PROJECT_DIR / "Pulumi.staging.yaml", "staging")


def test_stagings_exporter_holds_no_account_token(staging: Plan) -> None:
    exporter = service_environment(staging, "railway-metrics")
    agent_env = service_environment(staging, "telemetry-agent")

    assert "RAILWAY_API_TOKEN" not in exporter
    # The project token is no input at all: set from the deploy job's RAILWAY_METRICS_TOKEN (below, #22 item 1).
    assert cloud.RAILWAY_PROJECT_TOKEN_ENV not in exporter and exporter[cloud.EXPORTER_WEB_CONFIG_ENV][1]
    assert agent_env[agent.EXPORTER_PASSWORD_ENV][1]
    # The account token is Locomotive's only (its README: "Project level keys do not work"), and set from the deploy
    # job's environment when the Railway provider applies, never a plan's input (issue #22 item 1).
    names = ("commission-engine", "pocketbase", "redis", "telemetry-agent", "redis-exporter", "railway-metrics",
             "log-drain")
    assert not {name for name in names if any("RAILWAY_API" in key for key in service_environment(staging, name))}
    from_deploy = {str(r.inputs["name"]): r.inputs.get("deploy_variables") for r in staging.resources
                   if r.type == "pulumi-python:dynamic/railway:Service" and r.inputs.get("deploy_variables")}
    assert from_deploy["log-drain"] == {"LOCOMOTIVE_RAILWAY_API_KEY": "RAILWAY_LOG_DRAIN_TOKEN"}
    # The exporter's project token can write too (Railway has no read-only one): from the deploy job's environment.
    assert from_deploy["railway-metrics"] == {cloud.RAILWAY_PROJECT_TOKEN_ENV: "RAILWAY_METRICS_TOKEN"}


def test_a_railway_exporter_refuses_a_stack_file_metrics_token(tmp_path: Path) -> None:
    document = stack_document("staging")
    document["config"]["platform:railwayMetricsToken"] = {"secure": "v1:UmFpbHdheS1tZXRyaWNzLXRva2Vu"}

    with pytest.raises(ConfigError) as refused:
        plan_of(write_stack(tmp_path, document), "staging")
    assert "platform:railwayMetricsToken: is a write credential" in str(refused.value)
    assert "RAILWAY_METRICS_TOKEN" in str(refused.value)
