"""`docker-compose.yml` is generated from the integration stack's docker backend and cannot drift."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.conftest import PROJECT_DIR, CliResult


def test_the_committed_compose_file_is_what_the_docker_backend_declares(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("compose", "--stack", "integration")

    assert result.code == 0, result.err
    committed = (PROJECT_DIR / "docker-compose.yml").read_text()
    assert result.out == committed, "regenerate with: python3 tools/dev.py generate"


def test_the_compose_file_is_valid_against_the_compose_spec() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                           "vendor.compose-spec", str(PROJECT_DIR / "docker-compose.yml")],
                          capture_output=True, text=True, timeout=120, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_publishes_only_the_engine_and_grafana_and_references_secrets_without_values() -> None:
    text = (PROJECT_DIR / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]

    assert {name for name, s in services.items() if s.get("ports")} == {"commission-engine", "grafana"}
    assert services["redis"]["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert services["pocketbase"]["volumes"] == ["pocketbase-data:/pb/pb_data"]
    assert "$$REDIS_PASSWORD" in services["redis"]["command"][-1], "the container's shell expands it, not compose"


def test_a_stack_without_docker_services_has_no_compose_file(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("compose", "--stack", "staging")

    assert result.code == 2
    assert "runs no service on the docker backend" in result.err
