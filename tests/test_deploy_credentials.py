"""Write credentials live in the deploy job's environment, never in a stack file (issue #22 items 1 and 4).

`pulumi preview` decrypts the stack's config for the pull request's program, and the drift job's refresh reads it
with read-only tokens: a `secure:` write credential in a stack file reaches both. Staging's Railway project token,
Locomotive's Railway account token and the registry password therefore come from the `staging` GitHub environment at
run time: the Railway dynamic provider reads them when it applies (components/backends/railway.py), the engine image
is pushed with the deploy job's `docker login`. The stack-file keys are refused, even as secrets, with where the
credential goes now; a preview and a refresh of a Railway service without any token still work."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

from components.backends.railway import (
    REGISTRY_PASSWORD_ENV,
    TOKEN_ENV,
    RailwayError,
    RailwayServiceProvider,
)
from infra.plan import Plan
from tests.conftest import PROJECT_DIR, CliResult, stack_document, write_stack
from tests.railway_server import FakeRailway

# The stack-file keys that held write credentials, and the deploy environment's variable each moved to.
MOVED = {
    "platform:railwayToken": "RAILWAY_TOKEN",
    "platform:railwayApiToken": "RAILWAY_LOG_DRAIN_TOKEN",
    "platform:registryPassword": "docker login",
    "platform:railwayMetricsToken": "RAILWAY_METRICS_TOKEN",
    "platform:backupSecretAccessKey": "BACKUP_SECRET_ACCESS_KEY",
}
TOKEN = "fake-railway-project-token-for-the-test"
DRAIN_TOKEN = "fake-railway-account-token-for-the-drain"
PULL_PASSWORD = "fake-read-packages-token-for-the-pull"
PROPS: dict[str, Any] = {
    "project_id": "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
    "environment_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "name": "log-drain",
    "image": "ghcr.io/acme-commerce/locomotive:1a2b3c4d5e6f",
    "region": "us-east4-eqdc4a",
    "num_replicas": 1,
    "vcpus": 0.25,
    "memory_gb": 0.25,
    "healthcheck_path": None,
    "variables": {"LOCOMOTIVE_WEBHOOK_MODE": "loki"},
    "deploy_variables": {"LOCOMOTIVE_RAILWAY_API_KEY": "RAILWAY_LOG_DRAIN_TOKEN"},
    "registry_credentials": {"username": "acme-commerce-ci", "password_from": REGISTRY_PASSWORD_ENV},
    "volume_mount_path": None,
    "public_port": None,
}


def test_no_committed_stack_file_holds_a_write_credential() -> None:
    for path in sorted(PROJECT_DIR.glob("Pulumi.*.yaml")):
        document: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        config: dict[str, Any] = document.get("config") or {}
        held = sorted(set(config) & set(MOVED))
        assert not held, f"{path.name} holds write credentials a preview decrypts: {held}"


@pytest.mark.parametrize("key", sorted(MOVED))
def test_a_write_credential_in_a_stack_file_is_refused_even_as_a_secret_naming_where_it_goes(
    tmp_path: Path, run_cli: Callable[..., CliResult], registrations: list[str], key: str,
) -> None:
    document = stack_document("staging")
    document["config"][key] = {"secure": "v1:c29tZS13cml0ZS10b2tlbi1jaXBoZXJ0ZXh0"}

    result = run_cli("plan", "--stack", "staging", "--config-file",
                     str(write_stack(tmp_path, document, name="Pulumi.staging.yaml")))

    assert result.code == 2
    line = next((ln for ln in result.err.splitlines() if f": {key}:" in ln), None)
    assert line is not None, result.err
    assert line.startswith(f"Pulumi.staging.yaml: {key}: ")
    assert "write credential" in line and "not even as a secret" in line
    assert MOVED[key] in line, f"the message does not say where the credential goes now: {line}"
    assert "Traceback" not in result.err and registrations == []


def test_a_write_credential_in_plain_text_is_refused_without_echoing_it(
    tmp_path: Path, run_cli: Callable[..., CliResult],
) -> None:
    document = stack_document("staging")
    document["config"]["platform:railwayToken"] = "rw-live-0123456789abcdef0123"

    result = run_cli("plan", "--stack", "staging", "--config-file", str(write_stack(tmp_path, document)))

    assert result.code == 2 and "platform:railwayToken: " in result.err
    assert "rw-live-0123456789abcdef0123" not in result.err + result.out


# ---------------------------------------------------------------------------------------------
# The Railway provider: its credentials from the process environment, only when it applies


@pytest.fixture
def railway() -> Iterator[FakeRailway]:
    with FakeRailway(TOKEN) as fake:
        fake.config.registries["ghcr.io"] = ("acme-commerce-ci", PULL_PASSWORD)  # a private image: pulled with these
        yield fake


def _deploy_env() -> dict[str, str]:
    return {TOKEN_ENV: TOKEN, "RAILWAY_LOG_DRAIN_TOKEN": DRAIN_TOKEN, REGISTRY_PASSWORD_ENV: PULL_PASSWORD}


def _provider(url: str, environ: dict[str, str]) -> RailwayServiceProvider:
    provider = RailwayServiceProvider(url=url, backoff_s=0.0, poll_s=0.0, environ=environ)
    # What the engine hands a dynamic provider: the stack's config, which holds no Railway credential any more.
    provider.configure(ConfigureRequest(Config({}, "platform")))
    return provider


def test_a_preview_without_any_railway_credential_checks_and_diffs_without_calling_railway() -> None:
    # Nothing listens on port 9: any call to Railway would fail the preview.
    provider = _provider("http://127.0.0.1:9/graphql", {})

    checked = provider.check({}, dict(PROPS))
    changed = provider.diff("svc", {**PROPS, "service_id": "svc"}, {**PROPS, "image": "ghcr.io/x/y:2"})
    same = provider.diff("svc", dict(PROPS), dict(PROPS))

    assert checked.failures == []
    assert changed.changes is not False and same.changes is False


def test_a_refresh_without_a_railway_token_keeps_the_state_as_it_is(railway: FakeRailway) -> None:
    created = _provider(railway.url, _deploy_env()).create(dict(PROPS))
    assert created.outs is not None
    calls = len(railway.requests_seen)

    read = _provider("http://127.0.0.1:9/graphql", {}).read(created.id, created.outs)

    assert read.id == created.id and read.outs == created.outs
    assert read.inputs is not None and all(read.inputs[k] == v for k, v in PROPS.items())
    assert len(railway.requests_seen) == calls


def test_an_apply_without_the_token_says_which_environment_variable_the_deploy_job_sets() -> None:
    with pytest.raises(RailwayError) as caught:
        _provider("http://127.0.0.1:9/graphql", {}).create(dict(PROPS))

    assert TOKEN_ENV in str(caught.value) and "staging" in str(caught.value)
    assert "pulumi config set" not in str(caught.value)


def test_the_token_comes_from_the_environment_and_deploy_variables_reach_railway_but_not_the_state(
    railway: FakeRailway,
) -> None:
    provider = _provider(railway.url, _deploy_env())

    created = provider.create(dict(PROPS))

    assert created.outs is not None
    service = railway.state.services[created.id]
    assert service["variables"]["LOCOMOTIVE_RAILWAY_API_KEY"] == DRAIN_TOKEN
    assert [d.status for d in railway.state.deployments_of(created.id)] == ["SUCCESS"]  # pulled with the password
    assert all(headers.get("Project-Access-Token") == TOKEN for headers in railway.headers_seen)
    state = json.dumps(created.outs)
    assert DRAIN_TOKEN not in state and PULL_PASSWORD not in state and TOKEN not in state

    read = provider.read(created.id, created.outs)

    assert read.outs is not None and DRAIN_TOKEN not in json.dumps(read.outs), "a refresh put the token in the state"
    assert read.inputs is not None and read.inputs["variables"] == PROPS["variables"]


def test_a_deploy_variable_missing_from_the_environment_fails_the_apply_naming_it(railway: FakeRailway) -> None:
    environ = _deploy_env()
    del environ["RAILWAY_LOG_DRAIN_TOKEN"]

    with pytest.raises(RailwayError, match="RAILWAY_LOG_DRAIN_TOKEN") as caught:
        _provider(railway.url, environ).create(dict(PROPS))

    assert "LOCOMOTIVE_RAILWAY_API_KEY" in str(caught.value)
    assert railway.state.services == {}


def test_the_provider_serialized_into_the_state_carries_no_environment() -> None:
    """A dynamic provider is pickled into every resource's `__provider` input: it must not capture os.environ."""
    import dill  # pyright: ignore[reportMissingTypeStubs]

    provider = RailwayServiceProvider()
    pickled: bytes = dill.dumps(provider, recurse=True)  # pyright: ignore[reportUnknownMemberType]

    assert b"RAILWAY_TOKEN=" not in pickled and getattr(provider, "_environ", None) is None


# ---------------------------------------------------------------------------------------------
# The committed staging plan


def test_staging_plan_holds_no_registry_password_and_names_the_deploy_variables(
    committed_plans: dict[str, Plan],
) -> None:
    plan = committed_plans["staging"]
    images = [r for r in plan.resources if r.type == "docker:index/image:Image"]
    services = [r for r in plan.resources if r.type == "pulumi-python:dynamic/railway:Service"]

    assert images and services
    for image in images:
        registry: dict[str, Any] = image.inputs.get("registry") or {}
        assert "password" not in registry and "username" not in registry, \
            f"{image.name} pushes with a password from the stack: {sorted(registry)}"
    drain = [s for s in services if s.inputs.get("name") == "log-drain"]
    assert drain and drain[0].inputs["deploy_variables"] == {"LOCOMOTIVE_RAILWAY_API_KEY": "RAILWAY_LOG_DRAIN_TOKEN"}
    # The metrics exporter's project token and the backup bucket's secret can write too: set from the staging deploy
    # job's environment, never an input a preview sees.
    by_name = {str(s.inputs.get("name")): s for s in services}
    assert by_name["railway-metrics"].inputs["deploy_variables"] == {"RAILWAY_PROJECT_TOKEN": "RAILWAY_METRICS_TOKEN"}
    assert by_name["pocketbase"].inputs["deploy_variables"] == {
        "PB_BACKUP_S3_SECRET": "BACKUP_SECRET_ACCESS_KEY", "LITESTREAM_SECRET_ACCESS_KEY": "BACKUP_SECRET_ACCESS_KEY"}
    for service in services:
        variables: dict[str, Any] = service.inputs.get("variables") or {}
        assert not {"RAILWAY_PROJECT_TOKEN", "PB_BACKUP_S3_SECRET", "LITESTREAM_SECRET_ACCESS_KEY"} & set(variables), \
            f"{service.name} gets a write credential as an input"
    for service in services:
        credentials = service.inputs.get("registry_credentials")
        if credentials:
            assert credentials == {"username": "acme-commerce-ci", "password_from": REGISTRY_PASSWORD_ENV}


@pytest.mark.parametrize("backend", ["cloudrun", "docker", "gce"])
def test_a_deploy_variable_on_a_backend_that_cannot_read_it_is_refused_before_anything_is_declared(
    backend: str,
) -> None:
    """Only the Railway provider sets variables from the deploy job's environment: elsewhere the variable would be
    silently missing from the running service."""
    import dataclasses

    from components.backends.targets import Targets, deploy
    from components.observability import cloud

    drain = cloud.log_drain_spec("env-id", "svc-1,svc-2", "https://user:token@logs.example/loki/api/v1/push")
    elsewhere = dataclasses.replace(drain, size=dataclasses.replace(drain.size, backend=backend))

    with pytest.raises(ValueError, match=f"deploy_env is supported on the railway backend only, not '{backend}'"):
        deploy("log-drain", elsewhere, Targets(), parent=None)  # pyright: ignore[reportArgumentType]
