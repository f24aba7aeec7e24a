"""The offline plan: every committed stack plans cleanly, secrets stay masked, the JSON is stable,
and the program reads the config the Pulumi engine hands it exactly as `plan` reads the file."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.config import RawConfig, load_model
from infra.plan import Plan, diff_plans
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, STACKS, CliResult

LAYERS = ("platform:edge:Edge", "platform:frontend:Storefront", "platform:tenant:TenantSite",
          "platform:api:Engine", "platform:database:PocketBase", "platform:cache:Redis",
          "platform:observability:Alerting")


@pytest.mark.parametrize("stack", STACKS)
def test_plan_exits_0_for_each_committed_stack_and_lists_every_layer(
    stack: str, run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli("plan", "--stack", stack)

    assert result.code == 0, result.err
    for layer in LAYERS:
        assert layer in result.out
    lines = result.out.splitlines()
    assert any(line.startswith("Resources: ") for line in lines)
    assert any(line.startswith("Policies: platform-policies") and "(0 mandatory)" in line for line in lines)


@pytest.mark.parametrize("stack", STACKS)
def test_every_tenant_of_a_stack_gets_its_own_site(stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    slugs = {t.slug for t in load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml")).tenants}

    sites = {r.name for r in plan.resources if r.type == "platform:tenant:TenantSite"}

    assert sites == {f"tenant-{slug}" for slug in slugs}


def test_json_plan_is_byte_for_byte_stable_and_sorted_by_urn(run_cli: Callable[..., CliResult]) -> None:
    first = run_cli("plan", "--stack", "prod", "--json")
    second = run_cli("plan", "--stack", "prod", "--json")

    assert first.code == second.code == 0
    assert first.out == second.out
    urns = [r["urn"] for r in json.loads(first.out)["resources"]]
    assert urns == sorted(urns)


def test_secret_values_never_reach_the_plan_output(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    document = plan.dumps()

    # A tenant's keys reach the plan only inside its Secret Manager version (#22 item 6), masked.
    versions = [r for r in plan.resources if r.type == "gcp:secretmanager/secretVersion:SecretVersion"
                and r.name.startswith("tenant-")]
    assert versions and all(r.inputs["secretData"].startswith("[secret:") for r in versions)
    revalidate = next(r for r in plan.resources if r.name == "storefront-env-revalidate-token")
    assert revalidate.inputs["value"].startswith("[secret:")
    # The mock's stand-ins for generated secrets exist only inside the engine: never in the document.
    from infra.plan import _fake  # pyright: ignore[reportPrivateUsage]

    assert _fake("storefront-revalidate-token", length=48) not in document
    assert _fake("catalog-purge-token", length=40) not in document


def test_a_plan_diffed_against_itself_is_empty(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    earlier = tmp_path / "plan.json"
    earlier.write_text(run_cli("plan", "--stack", "staging", "--json").out)

    result = run_cli("plan", "--stack", "staging", "--diff-against", str(earlier))

    assert result.code == 0
    assert "Diff: 0 to add, 0 to change, 0 to remove" in result.out


def test_diff_against_a_file_that_is_not_a_plan_is_a_usage_error(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    earlier = tmp_path / "plan.json"
    earlier.write_text('{"not": "a plan"}')

    result = run_cli("plan", "--stack", "staging", "--diff-against", str(earlier))

    assert result.code == 2
    assert "not a plan written by `plan --json`" in result.err


def test_a_changed_input_shows_as_a_change_naming_the_input() -> None:
    before = {"resources": [{"urn": "u1", "type": "t", "name": "a", "inputs": {"x": 1, "y": 2}}]}
    after = {"resources": [{"urn": "u1", "type": "t", "name": "a", "inputs": {"x": 1, "y": 3}},
                           {"urn": "u2", "type": "t", "name": "b", "inputs": {}}]}

    diff = diff_plans(before, after)

    assert [r["name"] for r in diff.added] == ["b"]
    assert [(r["name"], keys) for r, keys in diff.changed] == [("a", ["y"])]
    assert diff.removed == []


def test_the_program_under_pulumi_reads_the_engine_config_like_plan_reads_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from_file = read_stack_file(PROJECT_DIR / "Pulumi.prod.yaml")
    # What the Pulumi language host hands a program: every value a string, secret keys apart.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(dict(from_file.values)))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(sorted(from_file.secret_keys)))

    def read() -> RawConfig:
        import pulumi.runtime.settings as settings

        settings.configure(settings.Settings(project="platform", stack="prod"))
        return RawConfig.from_pulumi_runtime()

    from_engine = contextvars.Context().run(read)

    assert from_engine.file == "Pulumi.prod.yaml"
    assert dict(from_engine.values) == dict(from_file.values)
    assert from_engine.secret_keys == from_file.secret_keys
    assert load_model(from_engine) == load_model(from_file)
