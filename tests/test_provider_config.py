"""Provider configuration is part of the stack (issue #22 items 13, 14): every namespace the program reads is
checked against an allowlist, credentials never sit in a stack file, a key given twice is refused with both
lines, and environments share no identity. The broken stack files of each class are in tests/broken_stacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, RawConfig, load_model
from infra.stackfile import read_stack_file
from stacks.providerconfig import NAMESPACES, project_config_problems, provider_keys
from tests.conftest import PROJECT_DIR, CliResult, stack_document, write_stack


def _plan(run_cli: Callable[..., CliResult], tmp_path: Path, stack: str, document: dict[str, Any],
          text: str = "") -> CliResult:
    path = write_stack(tmp_path, document, name=f"Pulumi.{stack}-test.yaml")
    if text:
        path.write_text(path.read_text() + text)
    return run_cli("plan", "--stack", stack, "--config-file", str(path))


def _line(result: CliResult, key: str) -> str:
    line = next((ln for ln in result.err.splitlines() if f": {key}: " in ln), None)
    assert line is not None, f"no line names {key!r}:\n{result.err}"
    return line


def test_the_committed_stack_files_hold_no_provider_credential() -> None:
    for path in sorted(PROJECT_DIR.glob("Pulumi.*.yaml")):
        raw = read_stack_file(path)
        for namespace in NAMESPACES.values():
            for key in namespace.credentials:
                assert f"{namespace.name}:{key}" not in raw.values, f"{path.name} holds {namespace.name}:{key}"


def test_the_refused_keys_are_keys_of_the_installed_providers() -> None:
    # The table names real keys: each credential, endpoint and TLS key is one the provider's SDK reads
    # (config/vars.py), but for Cloudflare's v4 endpoint keys, refused for a stack written for that provider.
    legacy = {"cloudflare:apiBasePath", "cloudflare:apiHostname"}
    for namespace in NAMESPACES.values():
        if namespace.sdk is None:
            continue
        known = provider_keys(namespace.sdk)
        assert known or not namespace.allowed, namespace.sdk
        for key in (*namespace.credentials, *namespace.endpoints, *namespace.tls, *namespace.allowed):
            assert key in known or f"{namespace.name}:{key}" in legacy, f"{namespace.sdk} has no config key {key}"
    gcp_endpoints = [k for k in provider_keys("pulumi_gcp") if k.endswith("CustomEndpoint")]
    assert len(gcp_endpoints) > 100  # each one moves one Google API: refused by their common suffix


def test_a_plain_text_token_is_refused_and_never_echoed(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    document["config"]["vercel:apiToken"] = "vercel-token-that-must-never-be-printed"

    result = _plan(run_cli, tmp_path, "prod", document)

    assert result.code == 2
    assert "VERCEL_API_TOKEN" in _line(result, "vercel:apiToken")
    assert "vercel-token-that-must-never-be-printed" not in result.err + result.out


def test_a_typo_of_a_provider_key_is_named_as_such(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    document["config"]["gcp:projet"] = document["config"]["gcp:project"]

    result = _plan(run_cli, tmp_path, "prod", document)

    assert result.code == 2
    line = _line(result, "gcp:projet")
    assert "is not a config key of the gcp provider" in line and "did you mean gcp:project?" in line


@pytest.mark.parametrize(("key", "value", "says"), [
    ("gcp:project", "acme-commerce-staging", "is not platform:gcp.project \"acme-commerce-prod\""),
    ("gcp:region", "us-east1", "is not platform:gcp.region \"southamerica-east1\""),
    ("vercel:team", "team_someoneelse01", "is not platform:frontend.teamId"),
    ("grafana:url", "https://admin:hunter2@acme-commerce.grafana.net", "carries credentials in the URL"),
    ("grafana:orgId", "two", "is not an organization id"),
    ("pulumi:disable-default-providers", ["*"], "is not a key this program expects in the pulumi namespace"),
])
def test_a_provider_key_says_what_the_platform_keys_say(tmp_path: Path, run_cli: Callable[..., CliResult],
                                                         key: str, value: Any, says: str) -> None:
    document = stack_document("prod")
    document["config"][key] = value

    result = _plan(run_cli, tmp_path, "prod", document)

    assert result.code == 2
    line = _line(result, key)
    assert line.startswith(f"Pulumi.prod-test.yaml: {key}: ") and says in line, line
    assert "hunter2" not in result.err or key == "grafana:url"


def test_a_key_the_stack_does_not_use_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    staging = stack_document("staging")  # no Google Cloud resource, no docker service
    staging["config"]["gcp:project"] = "acme-commerce-staging"
    staging["config"]["docker:host"] = "ssh://deploy@docker.acme-commerce-staging.dev"

    result = _plan(run_cli, tmp_path, "staging", staging)

    assert result.code == 2
    assert "declares no Google Cloud resources" in _line(result, "gcp:project")
    assert "no service of this stack runs on the docker backend" in _line(result, "docker:host")


def test_grafana_url_is_required_where_the_alerting_goes_to_it(tmp_path: Path,
                                                               run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    del document["config"]["grafana:url"]

    result = _plan(run_cli, tmp_path, "prod", document)

    assert result.code == 2
    assert "is required because the alerting" in _line(result, "grafana:url")


def test_a_key_given_twice_names_both_lines(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("staging")
    path = write_stack(tmp_path, document, name="Pulumi.staging-test.yaml")
    text = path.read_text()
    # The second `name:` of the zone, inserted under the first, and `zone` again without its namespace.
    first = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("    name: acme-commerce-staging"))
    lines = text.splitlines()
    lines.insert(first, "    name: acme-commerce.com")
    zone_line = next(i for i, ln in enumerate(lines, 1) if ln.startswith("  platform:zone:"))
    path.write_text("\n".join(lines) + "\n  zone:\n    name: acme-commerce.com\n")
    appended = len(lines) + 1

    result = run_cli("plan", "--stack", "staging", "--config-file", str(path))

    assert result.code == 2
    assert result.out == ""
    twice = _line(result, "platform:zone.name")
    assert f"at line {first} and at line {first + 1}" in twice and "is given twice" in twice
    again = _line(result, "platform:zone")
    assert f"at line {zone_line} and at line {appended}" in again and "'zone'" in again


def test_the_program_under_pulumi_refuses_a_credential_too() -> None:
    # The engine hands the program every config key (PULUMI_CONFIG); the same validation runs there.
    raw = read_stack_file(PROJECT_DIR / "Pulumi.prod.yaml", "prod")
    values = {**raw.values, "cloudflare:apiToken": "decrypted-by-the-engine"}
    with pytest.raises(ConfigError) as refused:
        load_model(RawConfig(raw.file, values, raw.secret_keys | {"cloudflare:apiToken"}, "prod"))

    [line] = [ln for ln in str(refused.value).splitlines() if "cloudflare:apiToken" in ln]
    assert line.startswith("Pulumi.prod.yaml: cloudflare:apiToken: is a credential, a secret in the stack file")
    assert "decrypted-by-the-engine" not in str(refused.value)


def test_an_identity_is_compared_with_every_other_committed_stack(tmp_path: Path,
                                                                  run_cli: Callable[..., CliResult]) -> None:
    # integration claiming staging's zone id and Vercel project: both named, with staging's file and key path. A Vercel
    # project is its team's: claiming staging's takes staging's team too, itself refused (one team per environment).
    integration, staging = stack_document("integration"), stack_document("staging")
    integration["config"]["platform:zone"]["zoneId"] = staging["config"]["platform:zone"]["zoneId"]
    integration["config"]["platform:frontend"]["projectName"] = staging["config"]["platform:frontend"]["projectName"]
    integration["config"]["platform:frontend"]["teamId"] = staging["config"]["platform:frontend"]["teamId"]
    integration["config"]["vercel:team"] = staging["config"]["vercel:team"]

    result = _plan(run_cli, tmp_path, "integration", integration)

    assert result.code == 2
    assert "(Pulumi.staging.yaml: platform:zone.zoneId)" in _line(result, "platform:zone.zoneId")
    project = [ln for ln in result.err.splitlines() if ": platform:frontend.projectName: " in ln]
    assert any("(Pulumi.staging.yaml: platform:frontend.projectName)" in ln for ln in project), project
    assert any("carries another environment's name" in ln for ln in project), project  # storefront-staging
    assert "(Pulumi.staging.yaml: platform:frontend.teamId)" in _line(result, "platform:frontend.teamId")


def test_config_in_the_project_file_is_refused(tmp_path: Path) -> None:
    # Pulumi merges Pulumi.yaml's `config:` into every stack: an endpoint set there would reach each deploy unchecked.
    project = tmp_path / "Pulumi.yaml"
    project.write_text((PROJECT_DIR / "Pulumi.yaml").read_text() + "config:\n  cloudflare:baseUrl: https://x.example\n")
    [problem] = project_config_problems(project)
    assert problem.startswith("Pulumi.yaml config: project-level config applies to every stack")
    assert project_config_problems(PROJECT_DIR / "Pulumi.yaml") == []
