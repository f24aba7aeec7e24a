"""Staging's Railway services, as the program declares them, deployed by the provider to the stand-in
of Railway's API (tests/railway_server.py): each deployment runs what the stack says it runs."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

from components.backends.railway import REGISTRY_PASSWORD_ENV, TOKEN_ENV, RailwayServiceProvider, start_command
from components.backends.targets import Targets
from components.cache import redis_spec
from components.images import Registry
from infra import program
from infra.config import load_model
from infra.model import StackModel
from infra.plan import Plan, run_plan
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, stack_document
from tests.railway_server import Deployment, FakeRailway

TOKEN = "fake-railway-token-for-the-test"
PULL_PASSWORD = "fake-read-packages-token-for-the-test"
# What the staging deploy job's environment holds (.github/workflows/deploy.yml), read by the provider when it applies.
DEPLOY_ENV = {TOKEN_ENV: TOKEN, REGISTRY_PASSWORD_ENV: PULL_PASSWORD, "RAILWAY_LOG_DRAIN_TOKEN": "fake-drain-token",
              "RAILWAY_METRICS_TOKEN": "fake-metrics-token", "BACKUP_SECRET_ACCESS_KEY": "fake-backup-secret"}
RAILWAY_SERVICE = "pulumi-python:dynamic/railway:Service"
# Pulumi's wire format for a secret (infra/plan.py).
SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
STACK_FILE = PROJECT_DIR / "Pulumi.staging.yaml"


def _model() -> StackModel:
    return load_model(read_stack_file(STACK_FILE))


@pytest.fixture(scope="module")
def plan() -> Iterator[Plan]:
    """The staging plan, the Railway target given the stack's registry as infra/program.py is to give
    it (a no-op once it does)."""
    original = program._targets  # pyright: ignore[reportPrivateUsage]

    def targets(model: StackModel, *args: Any, **kwargs: Any) -> Targets:
        found = original(model, *args, **kwargs)
        if found.railway is None or found.railway.registry is not None or model.registry is None:
            return found
        registry = Registry(model.registry.server, model.registry.repository, model.registry.username, None)
        return dataclasses.replace(found, railway=dataclasses.replace(found.railway, registry=registry))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(program, "_targets", targets)
        yield run_plan(read_stack_file(STACK_FILE), "staging")


def _plain(value: Any) -> Any:
    """A wire value as the provider receives it: secrets unwrapped."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:  # pyright: ignore[reportUnknownMemberType]
            return _plain(value["value"])
        return {str(k): _plain(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list):
        return [_plain(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def _railway_inputs(plan: Plan, *, masked: bool = False) -> dict[str, dict[str, Any]]:
    """Each Railway service's inputs by service name."""
    found: dict[str, dict[str, Any]] = {}
    for r in plan.resources:
        if r.type == RAILWAY_SERVICE:
            inputs = r.inputs if masked else _plain(r.wire_inputs)
            found[inputs["name"]] = {k: v for k, v in inputs.items() if not k.startswith("__")}
    return found


@pytest.fixture(scope="module")
def deployed(plan: Plan) -> Iterator[tuple[FakeRailway, dict[str, list[Deployment]]]]:
    """Every staging Railway service created through the provider; GHCR private, as staging's is."""
    model = _model()
    assert model.registry is not None
    with FakeRailway(TOKEN) as fake:
        # Railway pulls with the read-only token the deploy job's environment holds (RAILWAY_REGISTRY_PASSWORD).
        fake.config.registries[model.registry.server] = (model.registry.username, PULL_PASSWORD)
        provider = RailwayServiceProvider(url=fake.url, backoff_s=0.0, poll_s=0.0, environ=DEPLOY_ENV)
        provider.configure(ConfigureRequest(Config({}, "platform")))
        deployments: dict[str, list[Deployment]] = {}
        for name, props in _railway_inputs(plan).items():
            created = provider.create(props)
            deployments[name] = fake.state.deployments_of(created.id)
        yield fake, deployments


def test_staging_runs_its_three_services_on_railway(plan: Plan) -> None:
    assert {"commission-engine", "pocketbase", "redis"} <= set(_railway_inputs(plan))


def test_each_service_is_deployed_once_with_its_image_and_its_variables(
    plan: Plan, deployed: tuple[FakeRailway, dict[str, list[Deployment]]]
) -> None:
    inputs = _railway_inputs(plan)
    _, deployments = deployed

    for name, props in inputs.items():
        assert [(d.image, d.status) for d in deployments[name]] == [(props["image"], "SUCCESS")], name
        named: dict[str, str] = props.get("deploy_variables") or {}
        from_deploy = {k: DEPLOY_ENV[v] for k, v in named.items()}
        assert deployments[name][0].variables == {**props["variables"], **from_deploy}, name
    # The write credentials that left the stack file (#22 item 1) reach the running services all the same.
    assert deployments["railway-metrics"][0].variables["RAILWAY_PROJECT_TOKEN"] == "fake-metrics-token"
    assert deployments["pocketbase"][0].variables["PB_BACKUP_S3_SECRET"] == "fake-backup-secret"
    assert deployments["pocketbase"][0].variables["LITESTREAM_SECRET_ACCESS_KEY"] == "fake-backup-secret"


def test_the_engine_runs_two_replicas_in_the_stack_region(
    deployed: tuple[FakeRailway, dict[str, list[Deployment]]]
) -> None:
    _, deployments = deployed

    assert deployments["commission-engine"][-1].replicas == {"us-east4-eqdc4a": 2}
    assert deployments["pocketbase"][-1].replicas == {"us-east4-eqdc4a": 1}


def test_the_engine_answers_for_the_api_hostname_with_a_custom_domain_and_has_no_railway_app_domain(
    deployed: tuple[FakeRailway, dict[str, list[Deployment]]]
) -> None:
    fake, _ = deployed
    names = {service_id: service["name"] for service_id, service in fake.state.services.items()}

    assert [(names[d["serviceId"]], d["domain"], d["targetPort"]) for d in fake.state.custom_domains.values()] == [
        ("commission-engine", "api.acme-commerce-staging.dev", 8000)]
    assert fake.state.domains == {}, "no *.up.railway.app URL: the edge is the only way in"


def test_redis_starts_with_its_password_and_its_memory_limit(
    deployed: tuple[FakeRailway, dict[str, list[Deployment]]]
) -> None:
    _, deployments = deployed
    want = list(redis_spec(_model().services["redis"], "unused").command)

    started = deployments["redis"][-1].start_command

    assert started == want
    assert started is not None and '--requirepass "$REDIS_PASSWORD"' in started[-1] and "--maxmemory " in started[-1]


def test_only_images_on_the_private_registry_carry_its_credentials_and_only_by_name(plan: Plan) -> None:
    masked = _railway_inputs(plan, masked=True)
    registry = stack_document("staging")["config"]["platform:registry"]["server"]

    on_registry = {name for name, inputs in masked.items() if str(inputs.get("image", "")).startswith(f"{registry}/")}
    with_credentials = {name for name, inputs in masked.items() if "registry_credentials" in inputs}
    # Redis too: staging runs the upstream image rebuilt into its registry, never Docker Hub's tag (#11.8).
    assert {"pocketbase", "commission-engine", "redis"} <= on_registry
    assert with_credentials == on_registry, "credentials go to the registry they are for, and only there"
    # The password is no input at all (issue #22 item 1): the provider reads it from the deploy job's environment.
    assert all(masked[name]["registry_credentials"] == {"username": "acme-commerce-ci",
                                                         "password_from": REGISTRY_PASSWORD_ENV}
               for name in with_credentials)


@pytest.mark.parametrize("argv", [
    ["sh", "-c", "exec redis-server --requirepass \"$REDIS_PASSWORD\" --save '' --appendonly no"],
    ["/pb/entrypoint.sh"],
    ["python", "-m", "engine", "serve"],
    ["echo", "it's", 'say "hi"', "back\\slash", "", "tab\there"],
])
def test_a_start_command_is_the_container_command_split_back_as_railway_splits_it(argv: list[str]) -> None:
    assert shlex.split(start_command(argv)) == argv
