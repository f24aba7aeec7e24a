"""Every broken stack file of tests/broken_stacks (one class of evasion a file) through
`python -m infra plan`: each is refused, by config validation (exit 2, naming the key path) or by
the policy pack (exit 1, naming the mandatory rule). Each passed with exit 0 before issue #11."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CliResult, stack_document, write_stack
from tests.stack_patch import apply_patch

BROKEN_DIR = Path(__file__).resolve().parent / "broken_stacks"
BROKEN = {path.stem: yaml.safe_load(path.read_text()) for path in sorted(BROKEN_DIR.glob("*.yaml"))}


def test_there_are_at_least_thirty_broken_stack_files_each_of_its_own_class() -> None:
    assert len(BROKEN) >= 30
    assert len({b["class"] for b in BROKEN.values()}) == len(BROKEN)
    assert all(b["before"]["exit"] == 0 for b in BROKEN.values())


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_stack_file_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult], name: str) -> None:
    case: dict[str, Any] = BROKEN[name]
    expect = case["expect"]
    document = apply_patch(stack_document(case["stack"]), case["patch"])
    path = write_stack(tmp_path, document, name=f"Pulumi.{case['stack']}-broken.yaml")
    if "text" in case["patch"]:  # what a mapping cannot hold (a key given twice): appended to the file as written
        path.write_text(path.read_text() + case["patch"]["text"])

    result = run_cli("plan", "--stack", case["stack"], "--config-file", str(path))

    assert result.code == expect["exit"], result.err or result.out[-2000:]
    assert "Traceback" not in result.err
    if expect["exit"] == 2:
        line = next((ln for ln in result.err.splitlines() if f": {expect['key']}: " in ln), None)
        assert line is not None, f"no line names {expect['key']!r}:\n{result.err}"
        assert expect["says"] in line, line
    else:
        violations = [ln for ln in result.out.splitlines() if ln.startswith("  ✗ ")]
        ours = [v for v in violations if v.split()[1] == expect["rule"]]
        assert ours, violations
        assert any(expect["resource"] in v for v in ours), ours
