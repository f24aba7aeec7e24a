"""The hand-written promtool tests (tests/promtool/*.test.yml, from the document's numbers) against the
rules prod deploys: generated now from the spec and prod's stack file, and as committed. The generated
promtool tests come from the same spec as the rules, so they follow a wrong number; these do not."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from components.observability.__main__ import stack_plan
from components.observability.rules import dump, rule_groups
from tests.conftest import PROJECT_DIR

HAND_WRITTEN = sorted((Path(__file__).resolve().parent / "promtool").glob("*.test.yml"))
COMMITTED = PROJECT_DIR / "components" / "observability" / "generated" / "prometheus-rules.prod.yml"

RULES: dict[str, Callable[[], str]] = {
    "generated now": lambda: dump(rule_groups(stack_plan("prod").spec)),
    "committed": COMMITTED.read_text,
}


def test_there_are_hand_written_promtool_tests() -> None:
    assert [p.name for p in HAND_WRITTEN] == ["document_burn_windows.test.yml", "document_thresholds.test.yml",
                                             "slo_objectives.test.yml"]


@pytest.mark.parametrize("rules", sorted(RULES))
@pytest.mark.parametrize("test_file", HAND_WRITTEN, ids=lambda p: p.name)
def test_the_prod_rules_pass_the_documents_promtool_tests(rules: str, test_file: Path, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (python3 tools/dev.py test does it as root)"
    (tmp_path / "prometheus-rules.yml").write_text(RULES[rules]())
    shutil.copy(test_file, tmp_path / test_file.name)

    result = subprocess.run([promtool, "test", "rules", test_file.name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
