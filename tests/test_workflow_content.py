"""What the workflows run, not only their shape (issue #21, item 4).

tests/test_workflows.py checks the jobs' order, environments and credentials. This module checks the
content a hurried edit changes without touching the shape: the test jobs run the README's own test
command (not `echo`), the pull-request test job exists, a deploy is never cancelled half-way, and every
gate is a step whose failure fails its job.

GitHub's rules relied on (docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions):
- `concurrency`: "Use `cancel-in-progress: true` to cancel any currently running job or workflow in the
  same concurrency group"; without it "any previously pending job or workflow in the concurrency group
  will be canceled", the running one is left to finish.
- `jobs.<job_id>.steps[*].continue-on-error`: "Prevents a job from failing when a step fails";
  `jobs.<job_id>.continue-on-error` likewise lets the workflow pass when the job fails.
- `jobs.<job_id>.if` / `steps[*].if`: "A job that is skipped will report its status as 'Success'", and the
  status check functions `always()`, `failure()`, `cancelled()` make a job or step run after a failure.
- `defaults.run.shell` / `steps[*].shell`: the default bash is `bash --noprofile --norc -eo pipefail {0}`
  ("fail-fast behavior"); a custom `shell: bash {0}` drops `-e`, so a failing line in the middle of a
  multi-line run no longer fails the step.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY_ENVIRONMENTS = ("integration", "staging", "production")
"""The environments a deploy reaches (README: integration, then staging, then prod behind `production`)."""
STATUS_FUNCTIONS = re.compile(r"\b(always|failure|cancelled)\s*\(")
GATES = {
    "quota budget against what is deployed": "--diff-against deployed-plan.json",
    "tests": "tools/dev.py test",
    "offline plan with the policy pack and the quota budget": "-m infra plan",
    "the base branch's pack over the pull request's plan": "-m infra judge",
    "policy config": "-m infra policy-config",
    "certificate wait": "-m infra wait-certificate",
    "smoke": "-m engine smoke",
    "rollout": "-m infra rollout",
}
"""A run step holding one of these commands is a gate (the quota budget is the plan's `--diff-against`
check, infra/cli.py `over_budget`). `pulumi/actions` steps (up with the policy pack) are gates too."""


def _load_text(text: str) -> dict[str, Any]:
    document: Any = yaml.safe_load(text)
    # YAML 1.1 reads the key `on` as True.
    return {str(k) if k is not True else "on": v for k, v in document.items()}


def _readme_test_command() -> list[str]:
    """The test command as README.md's opening lines give it (`python3 tools/dev.py test   # ...`)."""
    for line in (ROOT / "README.md").read_text().splitlines()[:10]:
        command = line.split("#", 1)[0].strip()
        if command.endswith(" test"):
            return shlex.split(command)
    raise AssertionError("README.md's first lines give no test command")


def _without_sudo(words: list[str]) -> list[str]:
    """The command `sudo [options]` runs: the README runs `test` as root to install its Debian packages."""
    if words[:1] != ["sudo"]:
        return words
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        rest = rest[1:]
    return rest


def _runs_exactly(job: dict[str, Any], command: list[str]) -> bool:
    """A run step of the job is the command itself: one line, nothing added before or after it."""
    for step in job.get("steps", []):
        run = str(step.get("run", "")).strip()
        if run and "\n" not in run and _without_sudo(shlex.split(run)) == command:
            return True
    return False


def _gate(step: dict[str, Any]) -> str | None:
    run = str(step.get("run", ""))
    for gate, command in GATES.items():
        if command in run:
            return gate
    if str(step.get("uses", "")).startswith("pulumi/actions@"):
        return f"pulumi {step.get('with', {}).get('command')}"
    return None


def _gate_problems(workflow: dict[str, Any], job_name: str, job: dict[str, Any], step: dict[str, Any]) -> list[str]:
    """Why a gate step's failure would not fail its job, or would not stop what it gates."""
    where = f"{job_name}: {step.get('name') or step.get('run') or step.get('uses')}"
    problems: list[str] = []
    if step.get("continue-on-error") not in (None, False):
        problems.append(f"{where}: continue-on-error")
    if job.get("continue-on-error") not in (None, False):
        problems.append(f"{job_name}: the job has continue-on-error")
    run = str(step.get("run", ""))
    if re.search(r"\|\|\s*(true|:|exit 0)\b", run):
        problems.append(f"{where}: `|| true` swallows the failure")
    if re.search(r"\bset\s+\+e\b", run):
        problems.append(f"{where}: `set +e` ignores failures")
    shell = str(step.get("shell") or job.get("defaults", {}).get("run", {}).get("shell")
                or workflow.get("defaults", {}).get("run", {}).get("shell") or "")
    if shell and "-e" not in shell.split():
        problems.append(f"{where}: shell `{shell}` runs without -e")
    if STATUS_FUNCTIONS.search(str(step.get("if", ""))):
        problems.append(f"{where}: `if: {step['if']}` runs it after a failure")
    return problems


REPORTERS = {"comment": "posts the plan's comment, after a failed plan too (that is when it matters); it gates nothing"}
"""Jobs that run after a failure on purpose: they report and must hold no gate (no `run` step at all)."""


def _jobs_running_after_failure(workflow: dict[str, Any]) -> list[str]:
    return [f"{name}: if: {job['if']}" for name, job in workflow["jobs"].items()
            if STATUS_FUNCTIONS.search(str(job.get("if", "")))
            and not (name in REPORTERS and not any("run" in step for step in job.get("steps", [])))]


PR_TEXT = (WORKFLOWS / "pull-request.yml").read_text()
DEPLOY_TEXT = (WORKFLOWS / "deploy.yml").read_text()


# ---- the checks, on the workflows' text (so the mutation tests below feed them edited text) ----

def check_pr_test_job(text: str) -> None:
    workflow = _load_text(text)
    assert "pull_request" in workflow["on"], "the pull-request workflow no longer runs on pull_request"
    test = workflow["jobs"].get("test")
    assert test is not None, "the pull-request workflow has no `test` job"
    assert "if" not in test, \
        f"the pull-request test job runs only `if: {test.get('if')}`"
    command = _readme_test_command()
    assert _runs_exactly(test, command), f"the pull-request test job does not run the README's `{shlex.join(command)}`"


def check_deploy_test_job(text: str) -> None:
    workflow = _load_text(text)
    test = workflow["jobs"].get("test")
    assert test is not None, "the deploy workflow has no `test` job"
    command = _readme_test_command()
    assert _runs_exactly(test, command), f"the deploy's test job does not run the README's `{shlex.join(command)}`"
    first = workflow["jobs"]["integration"]
    assert "test" in ([first["needs"]] if isinstance(first.get("needs"), str) else first.get("needs") or []), \
        "integration's deploy does not wait for the test job"


def check_deploys_never_cancelled(text: str) -> None:
    """Every job that deploys to an environment is in a concurrency group that queues instead of cancelling,
    and the group is the same for every run (a group keyed by the run, sha or ref lets two deploys overlap)."""
    workflow = _load_text(text)
    deploying = {name: job for name, job in workflow["jobs"].items() if job.get("environment") in DEPLOY_ENVIRONMENTS}
    assert set(DEPLOY_ENVIRONMENTS) <= {job["environment"] for job in deploying.values()}, \
        "a deploy environment is not deployed by this workflow"
    for name, job in deploying.items():
        concurrency = job.get("concurrency") or workflow.get("concurrency")
        assert concurrency is not None, f"{name}: no concurrency group: two deploys of {job['environment']} may overlap"
        group = concurrency if isinstance(concurrency, str) else concurrency.get("group", "")
        cancel = False if isinstance(concurrency, str) else concurrency.get("cancel-in-progress", False)
        assert cancel in (False, "false"), f"{name}: cancel-in-progress {cancel!r}: a push cancels a deploy half-way"
        assert group and not re.search(r"run_id|run_number|run_attempt|sha|github\.ref\b|head_ref", str(group)), \
            f"{name}: concurrency group {group!r} differs per run: deploys of {job['environment']} may overlap"
        assert workflow.get("concurrency", {}).get("cancel-in-progress", False) in (False, "false"), \
            "the workflow's own concurrency cancels a deploy in progress"


def check_gates_can_fail(text: str, *, expected: set[str]) -> None:
    workflow = _load_text(text)
    problems: list[str] = _jobs_running_after_failure(workflow)
    seen: set[str] = set()
    for job_name, job in workflow["jobs"].items():
        if job_name == "preview":
            # Runs only where credentials exist (`steps.creds`), by design: the plan job is the gate of forks.
            continue
        for step in job.get("steps", []):
            gate = _gate(step)
            if gate is not None:
                seen.add(gate)
                problems += _gate_problems(workflow, job_name, job, step)
    assert not problems, "gates whose failure does not fail the job:\n" + "\n".join(problems)
    assert expected <= seen, f"gates missing from the workflow: {sorted(expected - seen)}"


DEPLOY_GATES = {"tests", "policy config", "certificate wait", "smoke", "rollout", "pulumi up", "pulumi preview",
                "quota budget against what is deployed"}
PR_GATES = {"tests", "offline plan with the policy pack and the quota budget",
            "the base branch's pack over the pull request's plan"}


def test_the_pull_request_test_job_runs_the_readmes_test_command_on_every_pull_request() -> None:
    check_pr_test_job(PR_TEXT)


def test_the_deploy_test_job_runs_the_readmes_test_command_before_any_deploy() -> None:
    check_deploy_test_job(DEPLOY_TEXT)


def test_a_deploy_is_never_cancelled_in_progress_nor_overlapped_by_another() -> None:
    check_deploys_never_cancelled(DEPLOY_TEXT)


def test_every_deploy_gate_fails_its_job() -> None:
    check_gates_can_fail(DEPLOY_TEXT, expected=DEPLOY_GATES)


def test_every_pull_request_gate_fails_its_job() -> None:
    check_gates_can_fail(PR_TEXT, expected=PR_GATES)


def test_the_readme_command_is_the_one_tools_dev_runs() -> None:
    """The command read from the README is a real one: tools/dev.py has a `test` subcommand."""
    command = _readme_test_command()
    assert command[-2:] == ["tools/dev.py", "test"], command
    assert re.search(r"""["']test["']""", (ROOT / "tools" / "dev.py").read_text())


# ---- careless edits, each of which one check above must refuse ----

DEPLOY_TEST = "      - run: sudo --preserve-env=PATH python3 tools/dev.py test\n"
PR_TEST = "        run: sudo --preserve-env=PATH python3 tools/dev.py test\n"
CARELESS: dict[str, tuple[str, str, str]] = {
    # name: (workflow, text replaced, replacement)
    "deploy test job runs echo": ("deploy", DEPLOY_TEST, "      - run: echo python3 tools/dev.py test\n"),
    "deploy test job runs only pytest": ("deploy", DEPLOY_TEST, "      - run: python3 -m pytest -q\n"),
    "deploy test job runs the command then || true": (
        "deploy", DEPLOY_TEST, "      - run: sudo --preserve-env=PATH python3 tools/dev.py test || true\n"),
    "deploy test job allowed to fail": ("deploy", DEPLOY_TEST, DEPLOY_TEST + "        continue-on-error: true\n"),
    "deploy cancelled in progress": ("deploy", "  cancel-in-progress: false\n", "  cancel-in-progress: true\n"),
    "deploy concurrency per run": ("deploy", "  group: deploy\n", "  group: deploy-${{ github.run_id }}\n"),
    "deploy concurrency removed": ("deploy", "concurrency:\n  group: deploy\n  cancel-in-progress: false\n", ""),
    "smoke swallowed": ("deploy", "--admin-key -\n\n  staging-plan:", "--admin-key - || true\n\n  staging-plan:"),
    "quota budget swallowed": (
        "deploy", "--stack prod --diff-against deployed-plan.json\n",
        "--stack prod --diff-against deployed-plan.json || true\n"),
    "rollout with set +e": ("deploy", "        run: .venv/bin/python -m infra rollout --stack prod\n",
                            "        run: |\n          set +e\n          .venv/bin/python -m infra rollout --stack prod\n"),
    "certificate wait allowed to fail": (
        "deploy", "      - name: Wait for the API's certificate to be ACTIVE\n",
        "      - name: Wait for the API's certificate to be ACTIVE\n        continue-on-error: true\n"),
    "staging deploys after integration failed": (
        "deploy", "    needs: integration\n", "    needs: integration\n    if: always()\n"),
    "staging job allowed to fail": ("deploy", "    environment: staging\n",
                                    "    environment: staging\n    continue-on-error: true\n"),
    "smoke run by a shell without -e": (
        "deploy", "      - name: Smoke test through the edge\n",
        "      - name: Smoke test through the edge\n        shell: bash {0}\n"),
    "pull-request test job deleted": ("pr", "  test:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 60\n",
                                      "  lint:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 60\n"),
    "pull-request test job runs echo": ("pr", PR_TEST, "        run: echo tools/dev.py test\n"),
    "pull-request workflow no longer on pull_request": ("pr", "on:\n  pull_request:\n", "on:\n  push:\n"),
    "pull-request plan swallowed": ("pr", "--analyzer-inputs analyzer-inputs.json > plan.json 2> plan.stderr\n",
                                    "--analyzer-inputs analyzer-inputs.json > plan.json 2> plan.stderr || true\n"),
    "base pack's verdict swallowed": ("pr", '| tee -a "$GITHUB_STEP_SUMMARY"\n',
                                      '| tee -a "$GITHUB_STEP_SUMMARY" || true\n'),
    "base pack's verdict dropped": ("pr", "          .venv/bin/python -m infra judge", "          echo infra judge"),
    "base pack's verdict run by a shell without -e": (
        "pr", "      - name: Judge the pull request's plan with the base branch's policy pack\n",
        "      - name: Judge the pull request's plan with the base branch's policy pack\n        shell: bash {0}\n"),
}


def _all_checks(deploy: str, pr: str) -> list[str]:
    failures: list[str] = []
    checks: tuple[tuple[Callable[[str], None], str], ...] = (
        (check_pr_test_job, pr), (check_deploy_test_job, deploy), (check_deploys_never_cancelled, deploy),
        (lambda text: check_gates_can_fail(text, expected=DEPLOY_GATES), deploy),
        (lambda text: check_gates_can_fail(text, expected=PR_GATES), pr))
    for check, text in checks:
        try:
            check(text)
        except (AssertionError, KeyError, TypeError) as err:
            failures.append(str(err))
    return failures


@pytest.mark.parametrize("edit", sorted(CARELESS))
def test_a_careless_edit_fails_a_check(edit: str) -> None:
    which, old, new = CARELESS[edit]
    deploy, pr = DEPLOY_TEXT, PR_TEXT
    if which == "deploy":
        assert old in deploy, f"the edit's anchor is gone from deploy.yml: {old!r}"
        deploy = deploy.replace(old, new, 1)
    else:
        assert old in pr, f"the edit's anchor is gone from pull-request.yml: {old!r}"
        pr = pr.replace(old, new, 1)
    assert _all_checks(deploy, pr), f"no check refuses: {edit}"


def test_the_workflows_as_they_are_pass_every_check() -> None:
    assert _all_checks(DEPLOY_TEXT, PR_TEXT) == []
