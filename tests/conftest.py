"""Shared helpers: stack files as data, the CLI in-process, and a spy on the mock engine."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import cli
from infra.plan import Plan, PlanMonitor, run_plan
from infra.stackfile import read_stack_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACKS = ("integration", "staging", "prod")


def stack_document(stack: str) -> dict[str, Any]:
    """A fresh copy of a committed stack file, to mutate."""
    return copy.deepcopy(yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()))


def write_stack(directory: Path, document: dict[str, Any], name: str = "Pulumi.test.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path


def plan_of(path: Path, stack: str) -> Plan:
    return run_plan(read_stack_file(path), stack)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    def run(*args: str) -> CliResult:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def registrations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every resource the mock engine registers during the test, by name."""
    seen: list[str] = []
    original = PlanMonitor.RegisterResource

    def spy(self: PlanMonitor, request: Any) -> Any:
        seen.append(request.name)
        return original(self, request)

    monkeypatch.setattr(PlanMonitor, "RegisterResource", spy)
    yield seen


@pytest.fixture(scope="session")
def committed_plans() -> dict[str, Plan]:
    return {stack: plan_of(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack) for stack in STACKS}
