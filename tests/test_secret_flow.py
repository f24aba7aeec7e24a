"""Each secret goes only where it is used (#11.4): a container gets no secret it never reads, a Vercel
preview no production secret, the stack no output secret nobody consumes, and prod's registry login
is the deployer's short-lived token, never a stored key."""

from __future__ import annotations

import re

import pytest

from infra.plan import Plan
from tests.conftest import PROJECT_DIR, STACKS
from tests.environment import service_environment

ENGINE_SOURCE = PROJECT_DIR / "components" / "engine" / "src" / "engine"


def _engine_reads() -> set[str]:
    """The variables the engine reads: its settings' fields, the names its code reads from
    `os.environ`, and the OpenTelemetry SDK's `OTEL_*` variables, which the exporter it configures
    reads itself (https://opentelemetry.io/docs/specs/otel/protocol/exporter/)."""
    from engine.settings import Settings

    literal = {name for path in ENGINE_SOURCE.rglob("*.py")
               for name in re.findall(r'environ(?:\.get)?\(?\[?"([A-Z][A-Z0-9_]+)"', path.read_text())}
    return {name.upper() for name in Settings.model_fields} | literal


def _otel(name: str) -> bool:
    return name.startswith("OTEL_")


@pytest.mark.parametrize("stack", STACKS)
def test_the_engine_receives_no_secret_it_never_reads(stack: str, committed_plans: dict[str, Plan]) -> None:
    env = service_environment(committed_plans[stack], "commission-engine")
    reads = _engine_reads()

    unread = [name for name, (_, secret) in env.items()
              if secret and name not in reads and not _otel(name) and not name.startswith("TENANTS_JSON_")]
    assert unread == []


@pytest.mark.parametrize("stack", STACKS)
def test_sensitive_storefront_variables_reach_production_only(stack: str, committed_plans: dict[str, Plan]) -> None:
    variables = [r.inputs for r in committed_plans[stack].resources
                 if r.type == "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable"]

    assert variables
    for variable in variables:
        if variable["sensitive"]:
            assert variable["targets"] == ["production"], variable["key"]


def test_prod_pushes_with_the_deployers_short_lived_token(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    images = [r for r in plan.resources if r.type == "docker:index/image:Image"]

    assert images
    for image in images:
        registry = image.wire_inputs["registry"]
        assert isinstance(registry, dict) and "value" in registry, "the whole login travels as a secret"
        login = registry["value"]
        assert login["username"] == "oauth2accesstoken"
        assert str(login["password"]).startswith("ya29."), "the deployer's access token (getClientConfig)"


def _random_password(plan: Plan, suffix: str) -> str:
    """A RandomPassword's result in the plan (infra/plan.py's mocks derive it from the resource's name)."""
    import hashlib

    [resource] = [r for r in plan.resources
                  if r.type == "random:index/randomPassword:RandomPassword" and r.name.endswith(suffix)]
    return hashlib.sha256(resource.name.encode()).hexdigest()[:int(resource.inputs["length"])]


@pytest.mark.parametrize("stack", STACKS)
def test_the_engine_holds_its_own_pocketbase_account_never_the_superuser(stack: str,
                                                                       committed_plans: dict[str, Plan]) -> None:
    """#11.2: PocketBase's superuser password goes to PocketBase only; the engine signs in with an account
    of its own, whose password PocketBase receives too (it upserts the account at every start)."""
    plan = committed_plans[stack]
    engine = service_environment(plan, "commission-engine")
    superuser = _random_password(plan, "-superuser-password")

    assert [name for name in engine if "SUPERUSER" in name] == []
    assert [name for name, (value, _) in engine.items() if superuser in str(value)] == []
    account = _random_password(plan, "-engine-account-password")
    assert engine["POCKETBASE_PASSWORD"] == (account, True)
    assert superuser != account
