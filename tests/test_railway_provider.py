"""The Railway dynamic provider against a schema-backed stand-in of Railway's API: every document is
valid against the schema, create -> update -> delete works, each deployment runs what the inputs say
(image, variables, start command, replicas, registry credentials), a public service answers for its
hostname through a custom domain whose DNS records Railway verifies, and failures surface as clear
messages that never carry the token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import parse, validate
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

from components.backends.railway import (
    DOCUMENTS,
    REGISTRY_PASSWORD_ENV,
    TOKEN_ENV,
    RailwayError,
    RailwayServiceProvider,
    custom_domain_dns,
    verification_value,
)
from components.backends.service import DnsEntry
from tests.railway_server import SCHEMA, FakeRailway

TOKEN = "fake-railway-token-for-the-test"
REGISTRY = ("acme-commerce-ci", "fake-registry-password-for-the-test")

PROPS: dict[str, Any] = {
    "project_id": "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
    "environment_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "name": "pocketbase",
    "image": "ghcr.io/acme-commerce/pocketbase:1a2b3c4d5e6f",
    "region": "us-east4-eqdc4a",
    "num_replicas": 1,
    "vcpus": 2.0,
    "memory_gb": 4.0,
    "healthcheck_path": "/api/health",
    "variables": {"PB_SUPERUSER_PASSWORD": "fake-generated-value"},
    "volume_mount_path": "/pb/pb_data",
    "public_port": None,
}


API_HOST = "api.acme-commerce-staging.dev"
# staging's engine: public, answering for the API hostname the edge forwards (stacks/staging.py).
ENGINE: dict[str, Any] = {**PROPS, "name": "commission-engine", "num_replicas": 2, "volume_mount_path": None,
                          "healthcheck_path": "/readyz", "public_port": 8000, "custom_domain": API_HOST}


@pytest.fixture
def railway() -> Iterator[FakeRailway]:
    with FakeRailway(TOKEN) as fake:
        yield fake


def _provider(fake: FakeRailway, token: str = TOKEN) -> RailwayServiceProvider:
    # The token from the deploy job's environment (never the stack's config: components/backends/railway.py).
    provider = RailwayServiceProvider(url=fake.url, backoff_s=0.0, poll_s=0.0,
                                      environ={TOKEN_ENV: token, REGISTRY_PASSWORD_ENV: REGISTRY[1]})
    provider.configure(ConfigureRequest(Config({}, "platform")))
    return provider


@pytest.mark.parametrize("operation", sorted(DOCUMENTS))
def test_every_document_the_provider_sends_validates_against_railways_schema(operation: str) -> None:
    assert validate(SCHEMA, parse(DOCUMENTS[operation])) == []


def test_a_service_is_created_updated_and_deleted(railway: FakeRailway) -> None:
    provider = _provider(railway)

    created = provider.create(dict(PROPS))
    service = railway.state.services[created.id]
    assert service["instance"]["source"] == {"image": PROPS["image"]}
    assert service["limits"] == {"vCPUs": 2.0, "memoryGB": 4.0}
    assert service["variables"] == PROPS["variables"]
    assert [v["mountPath"] for v in railway.state.volumes.values()] == ["/pb/pb_data"]
    assert railway.state.domains == {}
    assert created.outs is not None and created.outs["private_hostname"] == "pocketbase.railway.internal"

    news = {**PROPS, "image": "ghcr.io/acme-commerce/pocketbase:ffffffffffff", "public_port": 8090,
            "variables": {"PB_SUPERUSER_PASSWORD": "rotated"}}
    diff = provider.diff(created.id, created.outs, news)
    # None is DIFF_UNKNOWN: an update the engine itself names key by key (diffResource); never False.
    assert diff.changes in (True, None) and not diff.replaces
    updated = provider.update(created.id, created.outs, news)
    assert railway.state.services[created.id]["instance"]["source"] == {"image": news["image"]}
    assert railway.state.services[created.id]["variables"] == {"PB_SUPERUSER_PASSWORD": "rotated"}
    assert len(railway.state.volumes) == 1, "an update never makes a second volume"
    assert updated.outs is not None and updated.outs["domain"] == "pocketbase-production.up.railway.app"
    assert [(d.image, d.status) for d in railway.state.deployments_of(created.id)] == [
        (PROPS["image"], "SUCCESS"), (news["image"], "SUCCESS")], "one deployment per create or update"

    provider.delete(created.id, updated.outs)
    assert railway.state.services == {} and railway.state.volumes == {} and railway.state.domains == {}


def test_replicas_are_placed_in_the_region_through_multi_region_config(railway: FakeRailway) -> None:
    # staging's engine: two replicas, no volume (stacks/staging.py).
    engine = {**PROPS, "name": "commission-engine", "num_replicas": 2, "volume_mount_path": None}

    created = _provider(railway).create(engine)

    deployments = railway.state.deployments_of(created.id)
    assert [d.replicas for d in deployments] == [{"us-east4-eqdc4a": 2}]


def test_moving_the_region_leaves_no_replica_in_the_old_one(railway: FakeRailway) -> None:
    provider = _provider(railway)
    engine = {**PROPS, "name": "commission-engine", "num_replicas": 2, "volume_mount_path": None}
    created = provider.create(engine)
    assert created.outs is not None

    provider.update(created.id, created.outs, {**engine, "region": "europe-west4-drams3a"})

    assert railway.state.deployments_of(created.id)[-1].replicas == {"europe-west4-drams3a": 2}


def test_the_first_deployment_already_runs_with_the_variables_and_settings(railway: FakeRailway) -> None:
    created = _provider(railway).create({**PROPS, "start_command": "/pb/entrypoint.sh"})

    deployments = railway.state.deployments_of(created.id)
    assert len(deployments) == 1, "a deployment without the variables would crash-loop (the image requires them)"
    first = deployments[0]
    assert (first.image, first.status) == (PROPS["image"], "SUCCESS")
    assert first.variables == PROPS["variables"]
    assert first.start_command == ["/pb/entrypoint.sh"]
    assert first.replicas == {"us-east4-eqdc4a": 1}


def test_an_update_deploys_the_new_image(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(PROPS))
    assert created.outs is not None
    news = {**PROPS, "image": "ghcr.io/acme-commerce/pocketbase:ffffffffffff"}

    provider.update(created.id, created.outs, news)

    latest = railway.state.deployments_of(created.id)[-1]
    assert (latest.image, latest.status) == (news["image"], "SUCCESS")


def test_a_private_image_is_pulled_with_the_registry_credentials(railway: FakeRailway) -> None:
    railway.config.registries["ghcr.io"] = REGISTRY
    credentials = {"username": REGISTRY[0], "password_from": REGISTRY_PASSWORD_ENV}

    created = _provider(railway).create({**PROPS, "registry_credentials": credentials})

    assert [d.status for d in railway.state.deployments_of(created.id)] == ["SUCCESS"]
    # The state names where the password comes from, never the password (issue #22 item 1).
    assert created.outs is not None and created.outs["registry_credentials"] == credentials
    assert REGISTRY[1] not in json.dumps(created.outs)


def test_a_failed_deployment_fails_the_create_and_leaves_nothing_behind(railway: FakeRailway) -> None:
    railway.config.registries["ghcr.io"] = REGISTRY

    with pytest.raises(RailwayError) as caught:
        _provider(railway).create(dict(PROPS))

    assert "deployment" in str(caught.value) and "FAILED" in str(caught.value)
    assert PROPS["image"] in str(caught.value)
    assert railway.state.services == {}, "create is transactional"


def test_credentials_the_registry_refuses_fail_the_deployment_without_showing_the_password(
    railway: FakeRailway,
) -> None:
    railway.config.registries["ghcr.io"] = (REGISTRY[0], "rotated-elsewhere-0123456789")
    credentials = {"username": REGISTRY[0], "password_from": REGISTRY_PASSWORD_ENV}

    with pytest.raises(RailwayError, match="FAILED") as caught:
        _provider(railway).create({**PROPS, "registry_credentials": credentials})

    assert REGISTRY[1] not in str(caught.value) and TOKEN not in str(caught.value)
    assert railway.state.services == {}


def test_a_deployment_that_never_finishes_fails_the_create_after_the_timeout(railway: FakeRailway) -> None:
    railway.config.deploy_polls = 1_000
    provider = RailwayServiceProvider(url=railway.url, backoff_s=0.0, poll_s=0.0, deploy_timeout_s=0.0,
                                      environ={TOKEN_ENV: TOKEN})
    provider.configure(ConfigureRequest(Config({}, "platform")))

    with pytest.raises(RailwayError, match="is still DEPLOYING after 0 s"):
        provider.create(dict(PROPS))

    assert railway.state.services == {}, "create is transactional"


def test_a_failed_deployment_fails_the_update(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(PROPS))
    assert created.outs is not None
    railway.config.registries["ghcr.io"] = REGISTRY

    with pytest.raises(RailwayError, match="FAILED"):
        provider.update(created.id, created.outs, {**PROPS, "image": "ghcr.io/acme-commerce/pocketbase:ffffffffffff"})

    assert created.id in railway.state.services, "Railway keeps the last good deployment running"


def test_refresh_of_a_service_deleted_outside_pulumi_reports_it_gone(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(PROPS))
    assert created.outs is not None
    railway.state.services.clear()  # deleted in Railway's dashboard

    result = provider.read(created.id, created.outs)

    assert result.id == ""


def test_moving_the_volume_or_renaming_replaces_the_service(railway: FakeRailway) -> None:
    provider = _provider(railway)

    diff = provider.diff("svc", dict(PROPS), {**PROPS, "volume_mount_path": "/data"})

    assert diff.replaces == ["volume_mount_path"]
    assert diff.delete_before_replace


def test_check_refuses_replicas_on_a_service_with_a_volume(railway: FakeRailway) -> None:
    result = _provider(railway).check({}, {**PROPS, "num_replicas": 2})

    assert [(f.property, f.reason) for f in result.failures] == [
        ("num_replicas", "2: Railway runs a service with a volume as exactly one replica")]


def test_a_refused_token_says_how_to_fix_it_without_showing_the_token(railway: FakeRailway) -> None:
    wrong = "rw_wrong_token_fedcba9876543210"

    with pytest.raises(RailwayError) as caught:
        _provider(railway, token=wrong).create(dict(PROPS))

    message = str(caught.value)
    assert "HTTP 401" in message and f"set {TOKEN_ENV}" in message
    assert wrong not in message and TOKEN not in message
    assert railway.state.services == {}


def test_rate_limits_and_server_errors_are_retried(railway: FakeRailway) -> None:
    railway.http_failures.extend([429, 502])

    created = _provider(railway).create(dict(PROPS))

    assert created.id in railway.state.services


def test_a_rate_limit_that_persists_fails_with_a_clear_message(railway: FakeRailway) -> None:
    railway.http_failures.extend([429] * 4)

    with pytest.raises(RailwayError, match="HTTP 429: rate limited, gave up after 4 attempts"):
        _provider(railway).create(dict(PROPS))


def test_a_graphql_error_mid_create_leaves_nothing_behind(railway: FakeRailway) -> None:
    railway.fail_operations["volumeCreate"] = "Volume limit reached for this project"

    with pytest.raises(RailwayError, match="Railway volumeCreate failed: Volume limit reached"):
        _provider(railway).create(dict(PROPS))

    assert railway.state.services == {}, "create is transactional"
    assert railway.state.operations[-1] == "serviceDelete"


def test_the_token_travels_only_in_its_header_never_in_a_request_body_or_the_outputs(railway: FakeRailway) -> None:
    created = _provider(railway).create(dict(PROPS))

    assert all(TOKEN not in json.dumps(body) for body in railway.requests_seen)
    assert all(headers.get("Project-Access-Token") == TOKEN for headers in railway.headers_seen)
    assert "Authorization" not in railway.headers_seen[0]
    assert TOKEN not in json.dumps(created.outs)


def test_without_a_token_the_provider_says_which_environment_variable_is_missing() -> None:
    provider = RailwayServiceProvider(url="http://127.0.0.1:9/unused", environ={})
    provider.configure(ConfigureRequest(Config({}, "platform")))

    with pytest.raises(RailwayError, match=f"reads {TOKEN_ENV} from the deploy job's environment"):
        provider.create(dict(PROPS))


# ---------------------------------------------------------------------------------------------
# A public service that answers for its own hostname: a Railway custom domain, no service domain


def _publish(fake: FakeRailway, records: list[DnsEntry]) -> None:
    """What the edge declares in the zone (components/edge.py), in the public DNS Railway reads."""
    for record in records:
        assert isinstance(record.content, str)
        fake.state.publish(record.name, record.type, record.content, proxied=record.proxied)


def _records(outs: dict[str, Any] | None) -> list[DnsEntry]:
    assert outs is not None
    return custom_domain_dns(outs["custom_domain"], outs["custom_domain_target"], outs["custom_domain_verification"])


def test_a_public_service_with_a_hostname_gets_a_custom_domain_and_no_service_domain(railway: FakeRailway) -> None:
    created = _provider(railway).create(dict(ENGINE))

    assert [(d["domain"], d["serviceId"], d["targetPort"]) for d in railway.state.custom_domains.values()] == [
        (API_HOST, created.id, 8000)]
    assert railway.state.domains == {}, "a *.up.railway.app URL would let anyone skip the edge"
    assert "serviceDomainCreate" not in railway.state.operations
    domain = next(iter(railway.state.custom_domains.values()))
    assert created.outs is not None
    assert created.outs["custom_domain_id"] == domain["id"]
    assert created.outs["custom_domain_target"] == domain["target"]
    assert created.outs["custom_domain_verification"] == f"railway-verify={domain['token']}"
    assert created.outs["domain"] is None


def test_the_records_the_service_returns_are_the_ones_railway_verifies_behind_cloudflares_proxy(
    railway: FakeRailway,
) -> None:
    created = _provider(railway).create(dict(ENGINE))
    assert created.outs is not None
    domain_id = created.outs["custom_domain_id"]
    records = _records(created.outs)

    assert [(r.name, r.type, r.proxied) for r in records] == [
        (API_HOST, "CNAME", True), (f"_railway-verify.{API_HOST}", "TXT", False)]
    assert railway.state.custom_domain_status(domain_id)["verified"] is False

    _publish(railway, records)

    status = railway.state.custom_domain_status(domain_id)
    assert status["verified"] is True
    assert status["cdnProvider"] == "DETECTED_CDN_PROVIDER_CLOUDFLARE"
    assert status["certificateStatus"] == "CERTIFICATE_STATUS_TYPE_VALID"


def test_without_the_verification_txt_railway_never_verifies_the_domain(railway: FakeRailway) -> None:
    created = _provider(railway).create(dict(ENGINE))
    assert created.outs is not None

    _publish(railway, [r for r in _records(created.outs) if r.type == "CNAME"])

    assert railway.state.custom_domain_status(created.outs["custom_domain_id"])["verified"] is False


def test_an_update_keeps_the_custom_domain_and_moves_its_port_in_place(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(ENGINE))
    assert created.outs is not None
    before = len(railway.state.operations)

    kept = provider.update(created.id, created.outs, {**ENGINE, "image": "ghcr.io/acme-commerce/engine:ffffffffffff"})
    moved = provider.update(created.id, kept.outs or {}, {**ENGINE, "public_port": 8080})

    since = railway.state.operations[before:]
    assert "customDomainCreate" not in since and "customDomainDelete" not in since
    assert kept.outs is not None and moved.outs is not None
    assert created.outs["custom_domain_id"] == kept.outs["custom_domain_id"] == moved.outs["custom_domain_id"]
    assert moved.outs["custom_domain_target"] == created.outs["custom_domain_target"], "the zone's records hold"
    assert [d["targetPort"] for d in railway.state.custom_domains.values()] == [8080]


def test_every_update_puts_the_custom_domain_back_on_the_public_port_after_drift(railway: FakeRailway) -> None:
    """PORT is 9000 on Railway (the engine's private listener, which serves /metrics and /readyz's reasons
    without the edge's secret); a custom domain left there (the dashboard, an older deploy) would route the world
    to it. Every update sends the target port, not only when `public_port` changed."""
    provider = _provider(railway)
    created = provider.create(dict(ENGINE))
    assert created.outs is not None
    railway.state.custom_domains[created.outs["custom_domain_id"]]["targetPort"] = 9000  # drift

    updated = provider.update(created.id, created.outs, {**ENGINE, "image": "ghcr.io/acme-commerce/engine:eeeeeeeeeeee"})

    assert updated.outs is not None and updated.outs["custom_domain_id"] == created.outs["custom_domain_id"]
    assert [d["targetPort"] for d in railway.state.custom_domains.values()] == [8000]


def test_a_new_hostname_replaces_the_custom_domain_not_the_service(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(ENGINE))
    assert created.outs is not None
    news = {**ENGINE, "custom_domain": "api.acme-commerce.com"}

    diff = provider.diff(created.id, created.outs, news)
    updated = provider.update(created.id, created.outs, news)

    # None is DIFF_UNKNOWN: an update the engine itself names key by key (diffResource); never False.
    assert diff.changes in (True, None) and not diff.replaces
    assert [d["domain"] for d in railway.state.custom_domains.values()] == ["api.acme-commerce.com"]
    assert updated.outs is not None and updated.outs["custom_domain_id"] != created.outs["custom_domain_id"]
    assert railway.state.domains == {}


def test_a_hostname_that_goes_away_deletes_the_custom_domain(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(ENGINE))
    assert created.outs is not None

    # Still public, without a hostname: today's service domain, as PocketBase has when it is public.
    public = provider.update(created.id, created.outs, {**ENGINE, "custom_domain": None})
    assert railway.state.custom_domains == {}
    assert [d["domain"] for d in railway.state.domains.values()] == ["commission-engine-production.up.railway.app"]
    assert public.outs is not None and public.outs["custom_domain_id"] is None

    private = provider.update(created.id, public.outs, {**ENGINE, "custom_domain": None, "public_port": None})
    assert railway.state.custom_domains == {} and railway.state.domains == {}
    assert private.outs is not None and private.outs["domain"] is None


def test_a_service_domain_gives_way_to_the_custom_domain(railway: FakeRailway) -> None:
    # A service deployed before the edge forwarded to it: public through *.up.railway.app.
    provider = _provider(railway)
    created = provider.create({**ENGINE, "custom_domain": None})
    assert created.outs is not None and created.outs["domain"] is not None

    updated = provider.update(created.id, created.outs, dict(ENGINE))

    assert railway.state.domains == {}
    assert [d["domain"] for d in railway.state.custom_domains.values()] == [API_HOST]
    assert updated.outs is not None and updated.outs["domain"] is None and updated.outs["domain_id"] is None


def test_deleting_the_service_deletes_its_custom_domain(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(ENGINE))
    assert created.outs is not None

    provider.delete(created.id, created.outs)

    assert railway.state.custom_domains == {} and railway.state.services == {}
    # Itself: the hostname would otherwise stay held if Railway kept a deleted service's domains.
    assert railway.state.operations[-2:] == ["customDomainDelete", "serviceDelete"]


def test_a_failed_deployment_leaves_no_custom_domain_behind(railway: FakeRailway) -> None:
    railway.config.registries["ghcr.io"] = REGISTRY  # the engine's image is private, and no credentials

    with pytest.raises(RailwayError, match="FAILED"):
        _provider(railway).create(dict(ENGINE))

    assert railway.state.custom_domains == {} and railway.state.services == {}, "create is transactional"
    assert "customDomainDelete" in railway.state.operations


def test_a_refused_custom_domain_fails_the_create_and_leaves_nothing_behind(railway: FakeRailway) -> None:
    railway.fail_operations["customDomainCreate"] = f"Domain {API_HOST} is not available"

    with pytest.raises(RailwayError, match=f"Railway customDomainCreate failed: Domain {API_HOST} is not available"):
        _provider(railway).create(dict(ENGINE))

    assert railway.state.services == {} and railway.state.custom_domains == {}
    assert railway.state.deployments == {}, "nothing was deployed"


def test_a_hostname_change_that_failed_halfway_completes_on_the_next_update(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(ENGINE))
    assert created.outs is not None
    news = {**ENGINE, "custom_domain": "api.acme-commerce.com"}
    railway.fail_operations["serviceInstanceDeployV2"] = "Deployment rate limit reached"
    with pytest.raises(RailwayError):
        provider.update(created.id, created.outs, news)  # Pulumi keeps the outputs it had

    updated = provider.update(created.id, created.outs, news)

    assert [d["domain"] for d in railway.state.custom_domains.values()] == ["api.acme-commerce.com"]
    assert updated.outs is not None
    assert updated.outs["custom_domain_id"] == next(iter(railway.state.custom_domains))


def test_a_verification_host_other_than_the_one_the_edge_declares_fails_the_create(railway: FakeRailway) -> None:
    railway.config.verification_prefix = "_railway-verify-v2"

    with pytest.raises(RailwayError, match=f"_railway-verify-v2.{API_HOST}") as caught:
        _provider(railway).create(dict(ENGINE))

    assert f"_railway-verify.{API_HOST}" in str(caught.value)
    assert railway.state.services == {} and railway.state.custom_domains == {}


def test_check_refuses_a_custom_domain_on_a_service_that_is_not_public(railway: FakeRailway) -> None:
    result = _provider(railway).check({}, {**ENGINE, "public_port": None})

    assert [f.property for f in result.failures] == ["custom_domain"]


@pytest.mark.parametrize("token", ["0f3c9a", "railway-verify=0f3c9a", "railway-verify=railway-verify=0f3c9a"])
def test_the_verification_txt_carries_the_prefix_once(token: str) -> None:
    # As the Railway CLI prints it (railwayapp/cli src/commands/domain.rs, verification_txt_value).
    assert verification_value(token) == "railway-verify=0f3c9a"


# ---- refresh: what the provider reads back (issue #24 item 2) ----
# `pulumi refresh` calls Read, then Diff(olds = what Read returned, news = the state's inputs) and inverts it
# (pulumi/pulumi pkg/resource/deploy/step.go RefreshStep.Apply); a Diff answering DIFF_UNKNOWN makes the engine
# compute which input properties differ itself, by name (pkg/resource/deploy/step_generator.go diffResource:
# `if diff.Changes == plugin.DiffUnknown { ... diff.DetailedDiff = plugin.NewDetailedDiffFromObjectDiff(...) }`),
# which is what names them in `refresh --preview-only --json` (the Python dynamic provider sends no detailed diff).


def _engine_changed_keys(provider: RailwayServiceProvider, read: Any, inputs: dict[str, Any]) -> list[str] | None:
    """The input keys the engine reports as drifted after this Read, or None when it could not name them."""
    diff = provider.diff("svc", read.outs, inputs)
    if diff.changes is False:
        return []
    if diff.changes is None:  # DIFF_UNKNOWN: the engine diffs the inputs Read returned against the state's
        return sorted(k for k in set(read.inputs or {}) | set(inputs)
                      if (read.inputs or {}).get(k) != inputs.get(k))
    return None


def test_refresh_reads_back_what_was_changed_in_railway_and_names_it(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(PROPS))
    assert created.outs is not None
    service = railway.state.services[created.id]
    # Edited in Railway's dashboard: a variable, the image and the health check path.
    service["variables"]["PB_SUPERUSER_PASSWORD"] = "changed-by-hand"
    service["variables"]["DEBUG"] = "1"
    service["source"] = {"image": "ghcr.io/acme-commerce/pocketbase:ffffffffffff"}
    service["instance"]["healthcheckPath"] = "/"

    read = provider.read(created.id, created.outs)

    assert read.id == created.id
    assert read.inputs is not None and read.outs is not None
    assert read.inputs["variables"] == {"PB_SUPERUSER_PASSWORD": "changed-by-hand", "DEBUG": "1"}
    assert read.outs["image"] == "ghcr.io/acme-commerce/pocketbase:ffffffffffff"
    assert _engine_changed_keys(provider, read, dict(PROPS)) == ["healthcheck_path", "image", "variables"]


def test_refresh_of_an_untouched_service_reports_no_drift(railway: FakeRailway) -> None:
    provider = _provider(railway)
    created = provider.create(dict(PROPS))
    assert created.outs is not None

    read = provider.read(created.id, created.outs)

    assert _engine_changed_keys(provider, read, dict(PROPS)) == []
    assert read.outs == created.outs  # outputs such as the deployment and volume ids are kept


def test_railways_own_variables_are_not_drift(railway: FakeRailway) -> None:
    """Railway adds RAILWAY_* variables to every service (docs.railway.com/reference/variables#railway-provided-
    variables); they are not the program's and never drift."""
    provider = _provider(railway)
    created = provider.create(dict(PROPS))
    assert created.outs is not None
    railway.state.services[created.id]["variables"]["RAILWAY_PRIVATE_DOMAIN"] = "pocketbase.railway.internal"

    read = provider.read(created.id, created.outs)

    assert _engine_changed_keys(provider, read, dict(PROPS)) == []
