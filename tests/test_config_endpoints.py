"""Endpoints and dates a stack file names are the provider's own (outside red team, session 7): the compliant
forms each provider documents pass, and the imported ESC environment is found under the CLI too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from infra.config import _stack_file_problems  # pyright: ignore[reportPrivateUsage]
from tests.conftest import CliResult, stack_document, write_stack


@pytest.mark.parametrize("endpoint, region", [
    ("https://s3.us-east-1.amazonaws.com", "us-east-1"),   # docs.aws.amazon.com/general/latest/gr/s3.html
    ("https://s3.sa-east-1.amazonaws.com", "sa-east-1"),
    ("https://storage.googleapis.com", "us-east1"),        # cloud.google.com/storage/docs/interoperability
    ("https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com", "auto"),  # R2's S3 API docs
])
def test_each_providers_documented_s3_endpoint_passes(tmp_path: Path, run_cli: Callable[..., CliResult],
                                                       endpoint: str, region: str) -> None:
    document = stack_document("staging")
    document["config"]["platform:backups"] |= {"endpoint": endpoint, "region": region}
    path = write_stack(tmp_path, document, name="Pulumi.staging-copy.yaml")
    result = run_cli("plan", "--stack", "staging", "--config-file", str(path))
    assert result.code == 0, result.err


@pytest.mark.parametrize("endpoint", [
    "http://s3.us-east-1.amazonaws.com",
    "https://s3.us-east-1.amazonaws.com@attacker.example",
    "https://s3.us-east-1.amazonaws.com:443.attacker.example",
    "https://attacker.example/s3.us-east-1.amazonaws.com",
    "https://xs3.us-east-1.amazonaws.com",
    "https://storage.googleapis.com.attacker.example",
])
def test_a_lookalike_backups_endpoint_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult],
                                                 endpoint: str) -> None:
    document = stack_document("staging")
    document["config"]["platform:backups"]["endpoint"] = endpoint
    path = write_stack(tmp_path, document, name="Pulumi.staging-copy.yaml")
    result = run_cli("plan", "--stack", "staging", "--config-file", str(path))
    assert result.code == 2
    assert any(": platform:backups.endpoint: " in line for line in result.err.splitlines()), result.err


def test_an_esc_import_in_the_stack_file_is_found_where_the_cli_reads_it(tmp_path: Path) -> None:
    # Under `pulumi up` the engine hands the program config with the ESC environment already merged in, so the
    # program reads the stack file itself (RawConfig.from_pulumi_runtime).
    with_import, without = tmp_path / "Pulumi.a.yaml", tmp_path / "Pulumi.b.yaml"
    with_import.write_text("environment:\n  - acme/overrides\nconfig:\n  platform:version: 1\n")
    without.write_text("config:\n  platform:version: 1\n")
    assert any("Pulumi ESC" in p for p in _stack_file_problems(with_import))
    assert _stack_file_problems(without) == ()
    assert _stack_file_problems(tmp_path / "Pulumi.missing.yaml") == ()
