"""tools/ci/deployed-plan.sh: the quota budget on main is measured against the commit last deployed *successfully*,
read from `pulumi stack history --json` (newest first; each update's `environment` holds the `git.head` the CLI
recorded; pulumi.com/docs/iac/cli/commands/pulumi_stack_history/). A failed update's commit never counts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "ci" / "deployed-plan.sh"


def _run(tmp_path: Path, history: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    (tmp_path / "history.json").write_text(json.dumps(history))
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'history.json'}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), "org/platform/prod", "prod", str(tmp_path / "out.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)


def test_no_successful_update_measures_against_an_empty_plan(tmp_path: Path) -> None:
    result = _run(tmp_path, [{"kind": "update", "result": "failed", "environment": {"git.head": "a" * 40}},
                             {"kind": "refresh", "result": "succeeded", "environment": {"git.head": "b" * 40}}])

    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == {"resources": []}
    assert "no successful update" in result.stdout


def test_the_newest_successful_update_is_the_one_checked_out(tmp_path: Path) -> None:
    head = "c" * 40
    result = _run(tmp_path, [{"kind": "update", "result": "failed", "environment": {"git.head": "a" * 40}},
                             {"kind": "update", "result": "succeeded", "environment": {"git.head": head}},
                             {"kind": "update", "result": "succeeded", "environment": {"git.head": "d" * 40}}])

    # Not a git repository here, so the checkout fails, after naming the commit it would plan.
    assert f"was last deployed from {head}" in result.stdout
    assert result.returncode != 0
