"""pull-request.yml's base plan: a base whose plan was written but exited 1 (policy violations on the base) is
still the base the budget and the diff compare with; only when no plan JSON was written (no such stack on the
base, no `plan`, a config error) is the base an empty plan."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _step() -> str:
    workflow: Any = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    steps = [s for s in workflow["jobs"]["plan"]["steps"] if "../base-plan.json" in str(s.get("run", ""))]
    assert len(steps) == 1
    lines = str(steps[0]["run"]).replace("${{ matrix.stack }}", "prod").splitlines()
    # The base's setup (`tools/dev.py setup`) is not this test's: the fake venv stands for it.
    return "\n".join(ln for ln in lines if "tools/dev.py setup" not in ln) + "\n"


def _run(tmp_path: Path, writes: str, code: int) -> dict[str, Any]:
    fake = tmp_path / "base" / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\nprintf '%s' '{writes}'\nexit {code}\n")
    fake.chmod(0o755)
    (tmp_path / "step.sh").write_text(_step())
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "step.sh"], cwd=tmp_path, text=True,
                          capture_output=True, env=dict(os.environ), check=False)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "base-plan.json").read_text())


@pytest.mark.parametrize("code", [0, 1])
def test_a_written_base_plan_is_kept_even_when_the_base_has_violations(tmp_path: Path, code: int) -> None:
    plan = {"resources": [{"urn": "urn:pulumi:prod::platform::gcp:storage/bucket:Bucket::backups"}]}
    assert _run(tmp_path, json.dumps(plan), code) == plan


@pytest.mark.parametrize(("writes", "code"), [("", 2), ("not json", 1), ('{"partial": ', 1)])
def test_no_written_plan_is_an_empty_base(tmp_path: Path, writes: str, code: int) -> None:
    assert _run(tmp_path, writes, code) == {"resources": []}
