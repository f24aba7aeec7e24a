"""A contract the program itself finds broken (a derived Cloud Run size, a dashboard given two writers) reaches
`plan` as one `ContractError` (stacks/contracts/rule.py): exit 2, one line per breach in the contract table's
format (`<file>: <type> <name>: <RULE-ID>: <statement> (found: ...); source: ...`), no traceback. Before, the
program raised its own exceptions before `contract_violations` ran, and `plan` died with a traceback, exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult, stack_document, write_stack

GRAFANA_SOURCE = "pkg/services/dashboards/service/dashboard_service.go"


def test_a_dashboard_both_file_provisioned_and_declared_exits_2_naming_gf_prov_001(
        tmp_path: Path, run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch) -> None:
    from components.observability import selfhosted
    from components.observability.dashboards import render

    original = selfhosted.grafana_files
    provider = {"apiVersion": 1, "providers": [
        {"name": "platform", "type": "file", "options": {"path": "/var/lib/grafana/dashboards"}}]}

    def with_a_file_dashboard(environment: str) -> dict[str, str]:
        return {**original(environment), "/etc/grafana/provisioning/dashboards/platform.yml": json.dumps(provider),
                "/var/lib/grafana/dashboards/overview.json": render("overview", environment)}

    monkeypatch.setattr(selfhosted, "grafana_files", with_a_file_dashboard)
    path = write_stack(tmp_path, stack_document("integration"), name="Pulumi.integration-copy.yaml")

    result = run_cli("plan", "--stack", "integration", "--config-file", str(path))

    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = [ln for ln in result.err.splitlines() if ": GF-PROV-001: " in ln]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("Pulumi.integration-copy.yaml: grafana:oss/dashboard:Dashboard "), lines[0]
    assert "platform-integration-overview" in lines[0] and "(found: " in lines[0]
    assert "source: " in lines[0] and GRAFANA_SOURCE in lines[0]
    assert result.out == ""


def test_a_contract_error_is_a_pulumi_run_error_so_pulumi_up_prints_its_message_without_a_stack_trace() -> None:
    """pulumi/pulumi sdk/python/lib/pulumi/errors.py: RunError "Can be used for terminating a program abruptly,
    but resulting in a clean exit rather than the usual verbose unhandled error logic which emits the source
    program text and complete stack trace"."""
    import pulumi

    from stacks.contracts import ContractError

    assert issubclass(ContractError, pulumi.RunError)
