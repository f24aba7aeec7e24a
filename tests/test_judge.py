"""The base branch's pack judges a pull request's plan from a file, running none of the pull request's code (#22 item 1).

The pull-request workflow plans the pull request in one job (`plan --analyzer-inputs`) and judges the file in another
job that checks out only the base branch (`python -m infra judge`): the verdict must be the one the pack gives the
same resources in-process, and a weakening in the file must be caught."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.judge import inputs_json
from infra.plan import Plan
from tests.conftest import PROJECT_DIR, CliResult, stack_document, write_stack

STACK = "prod"


def _write(tmp_path: Path, plan: Plan, edit: Callable[[list[dict[str, Any]]], None] | None = None) -> Path:
    document = json.loads(inputs_json(STACK, plan.analyzer_inputs()))
    if edit is not None:
        edit(document["resources"])
    path = tmp_path / "analyzer-inputs.json"
    path.write_text(json.dumps(document))
    return path


def _judge(run_cli: Callable[..., CliResult], inputs: Path, stack: str = STACK) -> CliResult:
    return run_cli("judge", "--stack", stack, "--analyzer-inputs", str(inputs),
                   "--config-file", str(PROJECT_DIR / f"Pulumi.{STACK}.yaml"))


def test_the_committed_plan_judged_from_its_file_passes_as_in_process(
        tmp_path: Path, committed_plans: dict[str, Plan], run_cli: Callable[..., CliResult]) -> None:
    result = _judge(run_cli, _write(tmp_path, committed_plans[STACK]))

    assert result.code == 0, result.out + result.err
    assert "0 violations" in result.out
    assert f"{len(committed_plans[STACK].analyzer_inputs())} resources of stack prod judged" in result.out


def test_a_weakened_resource_in_the_file_is_a_mandatory_violation(
        tmp_path: Path, committed_plans: dict[str, Plan], run_cli: Callable[..., CliResult]) -> None:
    def expose_a_bucket(resources: list[dict[str, Any]]) -> None:
        bucket = next(r for r in resources if r["type"] == "gcp:storage/bucket:Bucket")
        bucket["properties"]["publicAccessPrevention"] = "inherited"

    result = _judge(run_cli, _write(tmp_path, committed_plans[STACK], expose_a_bucket))

    assert result.code == 1, result.out + result.err
    # The bucket judged by the rule the base pack has for it (PLAT-DATA-008 names the property and its value).
    assert "✗ PLAT-" in result.out and "inherited" in result.out, result.out


def test_a_file_that_is_not_a_plan_of_this_stack_is_refused_with_its_name(
        tmp_path: Path, committed_plans: dict[str, Plan], run_cli: Callable[..., CliResult]) -> None:
    inputs = _write(tmp_path, committed_plans[STACK])
    wrong_stack = _judge(run_cli, inputs, stack="staging")
    emptied = _write(tmp_path, committed_plans[STACK], lambda resources: resources.clear())
    empty = _judge(run_cli, emptied)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": "platform-analyzer-inputs/1", "stack": STACK,
                                  "resources": [copy.deepcopy({"urn": "u", "type": "t"})]}))

    assert wrong_stack.code == 2 and "planned for stack 'prod', judged as 'staging'" in wrong_stack.err
    assert empty.code == 2 and "no resources: nothing to judge" in empty.err
    assert _judge(run_cli, broken).code == 2


def test_a_stack_file_the_base_loader_cannot_read_is_judged_without_its_waivers(
        tmp_path: Path, committed_plans: dict[str, Plan], run_cli: Callable[..., CliResult]) -> None:
    """A pull request may add a config key the base branch does not know yet: judged, never waved through, and
    without the file's waivers (prod waives PLAT-WAF-002 for cafedoce), so stricter, never weaker."""
    document = stack_document(STACK)
    document["config"]["platform:aKeyFromTheFuture"] = True
    config = write_stack(tmp_path, document, f"Pulumi.{STACK}.yaml")
    result = run_cli("judge", "--stack", STACK, "--analyzer-inputs", str(_write(tmp_path, committed_plans[STACK])),
                     "--config-file", str(config))

    assert "judging without its waivers" in result.err
    assert result.code == 1 and "PLAT-WAF-002" in result.out, result.out + result.err
