"""tools/ci/deployed-plan.sh: the quota budget on main is measured against the commit last deployed *successfully*,
read from `pulumi stack history --json` (newest first; each update's `environment` holds the `git.head` the CLI
recorded; pulumi.com/docs/iac/cli/commands/pulumi_stack_history/). A failed update's commit never counts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

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


def _deployed_repo(tmp_path: Path, plan_exit: int, date: str) -> str:
    """A repository whose one commit stands for the deployed one: its `tools/dev.py setup` does nothing, and its
    `.venv/bin/python -m infra plan` records the waiver date it was given, writes a plan and exits `plan_exit`."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "dev.py").write_text("")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$PLATFORM_WAIVERS_AS_OF" > {tmp_path / "as-of"}\n'
                      f"echo '{{\"resources\": [{{\"urn\": \"u\"}}]}}'\nexit {plan_exit}\n")
    python.chmod(0o755)
    env = {**os.environ, "GIT_AUTHOR_DATE": f"{date}T12:00:00Z", "GIT_COMMITTER_DATE": f"{date}T12:00:00Z"}
    for command in (["init", "-q"], ["add", "-f", "tools", ".venv"],
                    ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "deployed"]):
        subprocess.run(["git", *command], cwd=tmp_path, env=env, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_deployed_commit_is_planned_with_its_waivers_as_of_its_own_date(tmp_path: Path) -> None:
    # A waiver valid when that commit deployed and expired since must not stop every later deploy's budget step
    # (including the one that fixes the waiver): the plan runs with waivers judged as of the commit's date.
    head = _deployed_repo(tmp_path, 0, "2026-01-15")
    result = _run(tmp_path, [{"kind": "update", "result": "succeeded", "environment": {"git.head": head}}])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "as-of").read_text().strip() == "2026-01-15"


def test_a_deployed_plan_written_with_policy_findings_is_still_the_budget_base(tmp_path: Path) -> None:
    head = _deployed_repo(tmp_path, 1, "2026-01-15")
    result = _run(tmp_path, [{"kind": "update", "result": "succeeded", "environment": {"git.head": head}}])
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == {"resources": [{"urn": "u"}]}


def test_a_deployed_plan_that_wrote_nothing_fails_the_step(tmp_path: Path) -> None:
    head = _deployed_repo(tmp_path, 2, "2026-01-15")
    (tmp_path / ".venv" / "bin" / "python").write_text("#!/bin/sh\necho 'error: invalid' >&2\nexit 2\n")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "x"], cwd=tmp_path,
                   check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()
    result = _run(tmp_path, [{"kind": "update", "result": "succeeded", "environment": {"git.head": head}}])
    assert result.returncode != 0


def test_the_history_is_read_past_ten_failed_updates(tmp_path: Path) -> None:
    # `pulumi stack history` returns 10 updates unless told (--page-size, default 10:
    # pulumi.com/docs/iac/cli/commands/pulumi_stack_history/): ten failed deploys would hide the last success.
    _run(tmp_path, [])
    fake = tmp_path / "bin" / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\necho "[]"\n')
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(SCRIPT), "org/platform/prod", "prod", str(tmp_path / "out.json")], cwd=tmp_path,
                   env=env, capture_output=True, text=True, check=False)
    args = (tmp_path / "args").read_text().split()
    assert "--page-size" in args and int(args[args.index("--page-size") + 1]) >= 100


def test_the_waiver_date_is_the_given_one_never_later_than_today(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.config import WAIVERS_AS_OF_ENV, waiver_rules_today

    today = waiver_rules_today()
    monkeypatch.setenv(WAIVERS_AS_OF_ENV, "2026-01-15")
    assert waiver_rules_today().isoformat() == "2026-01-15"
    monkeypatch.setenv(WAIVERS_AS_OF_ENV, "2999-01-01")
    assert waiver_rules_today() == today
    monkeypatch.setenv(WAIVERS_AS_OF_ENV, "not a date")
    assert waiver_rules_today() == today
