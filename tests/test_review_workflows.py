"""The review workflows' steps (issue #24): the pull-request plan job's comment steps and the drift job, read from
the YAML and run here as far as they can be: the plan step's exit-code capture and the comment step in bash, the
github-script steps in node against a GitHub client that pages as the REST API does (30 items a page unless
`per_page` says otherwise, up to 100: docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api).
Removing or reordering a step fails a check here (the mutation tests at the end)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    document: Any = yaml.safe_load((WORKFLOWS / name).read_text())
    return {str(k) if k is not True else "on": v for k, v in document.items()}


PR, DRIFT = _load("pull-request.yml"), _load("drift.yml")


def _index(steps: list[dict[str, Any]], found: Callable[[dict[str, Any]], bool], what: str) -> int:
    hits = [i for i, s in enumerate(steps) if found(s)]
    assert len(hits) == 1, f"expected one step that {what}, found {len(hits)}"
    return hits[0]


def _run(step: dict[str, Any]) -> str:
    return str(step.get("run", ""))


def _uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).startswith(action)


def _script(step: dict[str, Any]) -> str:
    return str((step.get("with") or {}).get("script", ""))


# ---- the pull-request plan job ----

def pr_steps(workflow: dict[str, Any]) -> dict[str, int]:
    """The comment steps' indexes, checked for order and for running after a failed plan."""
    steps: list[dict[str, Any]] = workflow["jobs"]["plan"]["steps"]
    at = {
        "plan": _index(steps, lambda s: "-m infra plan --stack ${{ matrix.stack }} --json --diff-against" in _run(s),
                       "plans the pull request"),
        "full": _index(steps, lambda s: "-m infra comment" in _run(s) and "--full" in _run(s), "writes the summary"),
        "artifact": _index(steps, lambda s: _uses(s, "actions/upload-artifact@") and s.get("id") == "artifact",
                           "uploads the artifact"),
        "comment": _index(steps, lambda s: "-m infra comment" in _run(s) and "--full" not in _run(s),
                          "builds the comment"),
        "handoff": _index(steps, lambda s: _uses(s, "actions/upload-artifact@")
                          and str((s.get("with") or {}).get("name", "")).startswith("pr-comment-"),
                          "hands the comment to the comment job"),
    }
    assert at["plan"] < at["full"] < at["artifact"] < at["comment"] < at["handoff"], at
    assert (steps[at["handoff"]].get("with") or {}).get("path") == "plan-comment.md"
    # The token that writes comments is never in the job that runs the pull request's code (a step of it can write
    # $GITHUB_ENV and run inside any later step): `comment` posts, with no checkout and no setup (outside audit).
    assert workflow["jobs"]["plan"].get("permissions") == {"contents": "read"}
    post_job = workflow["jobs"]["comment"]
    assert post_job.get("needs") == "plan" and "always()" in str(post_job.get("if", ""))
    assert post_job.get("permissions") == {"pull-requests": "write"}
    post_steps: list[dict[str, Any]] = post_job["steps"]
    assert not any(_uses(s, "actions/checkout@") or "run" in s for s in post_steps), post_steps
    at["post"] = _index(post_steps, lambda s: _uses(s, "actions/github-script@"), "posts the comment")
    plan = steps[at["plan"]]
    assert plan.get("id") == "plan" and "continue-on-error" not in plan and "if" not in plan
    # The verdict is the `policy` job's (the base branch's pack over `--analyzer-inputs`), not this job's.
    assert "--analyzer-inputs analyzer-inputs.json" in _run(plan) and "--policy-pack" not in _run(plan)
    assert "> plan.json" in _run(plan) and "2> plan.stderr" in _run(plan)
    assert "trap 'code=$?; echo \"$code\" > plan-exit-code" in _run(plan) and 'exit "$code"' in _run(plan)
    for name in ("full", "artifact", "comment", "handoff"):
        condition = str(steps[at[name]].get("if", ""))
        assert "always()" in condition and "steps.plan.outcome != 'skipped'" in condition, (name, condition)
    assert '>> "$GITHUB_STEP_SUMMARY"' in _run(steps[at["full"]])
    artifact = steps[at["artifact"]]
    assert {"plan.json", "plan-full.md"} <= set(str(artifact["with"]["path"]).split())
    comment = _run(steps[at["comment"]])
    assert f'--artifact-url "${{{{ steps.{artifact["id"]}.outputs.artifact-url }}}}"' in comment
    assert '--exit-code "$(cat plan-exit-code)"' in comment and "> plan-comment.md" in comment
    script = _script(post_steps[at["post"]])
    assert "github.paginate(github.rest.issues.listComments" in script
    assert "const marker = `<!-- plan:${process.env.STACK} -->`" in script
    return at


def test_the_plan_job_plans_then_summarises_uploads_comments_and_posts_in_that_order() -> None:
    pr_steps(PR)


def _bash(script: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # GitHub's default for `run` on Linux: bash --noprofile --norc -eo pipefail {0}.
    path = cwd / "step.sh"
    path.write_text(script)
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, check=False)


def _substituted(text: str, stack: str = "prod") -> str:
    return (text.replace("${{ matrix.stack }}", stack)
            .replace("${{ steps.artifact.outputs.artifact-url }}", "https://github.com/o/r/actions/runs/1/artifacts/9"))


@pytest.mark.parametrize("code", [0, 1, 2])
def test_the_plan_step_keeps_plans_exit_code_for_the_comment_and_still_fails_with_it(tmp_path: Path, code: int) -> None:
    steps = PR["jobs"]["plan"]["steps"]
    plan = steps[pr_steps(PR)["plan"]]
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\necho '{{\"resources\": []}}'\necho 'error: finding {code}' >&2\nexit {code}\n")
    fake.chmod(0o755)

    result = _bash(_substituted(_run(plan)), tmp_path)

    assert result.returncode == code
    assert (tmp_path / "plan-exit-code").read_text().strip() == str(code)
    assert f"error: finding {code}" in result.stderr  # the log still shows what plan said
    assert (tmp_path / "plan.json").read_text().strip() == '{"resources": []}'


def _venv(tmp_path: Path) -> None:
    """The step's `.venv/bin/python`: this virtual environment's (a symlink would lose the venv's packages)."""
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    python = tmp_path / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)


def test_the_comment_step_shows_a_config_error_when_plan_wrote_no_plan(tmp_path: Path) -> None:
    steps = PR["jobs"]["plan"]["steps"]
    at = pr_steps(PR)
    _venv(tmp_path)
    (tmp_path / "plan.json").write_text("")
    (tmp_path / "base-plan.json").write_text('{"resources": []}')
    (tmp_path / "plan.stderr").write_text('error: invalid stack config, nothing was declared:\nPulumi.prod.yaml: '
                                          'platform:zone.plan: "platinum" is not allowed\n')
    (tmp_path / "plan-exit-code").write_text("2\n")
    summary = tmp_path / "summary.md"

    full = _bash(_substituted(_run(steps[at["full"]])), tmp_path,
                 {"GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(ROOT)})
    comment = _bash(_substituted(_run(steps[at["comment"]])), tmp_path, {"PYTHONPATH": str(ROOT)})

    assert full.returncode == 0 and comment.returncode == 0, full.stderr + comment.stderr
    body = (tmp_path / "plan-comment.md").read_text()
    assert body.startswith("<!-- plan:prod -->\n")
    assert 'platform:zone.plan: "platinum" is not allowed' in body and 'is not allowed' in summary.read_text()


NODE = shutil.which("node")
HARNESS = """
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const calls = [];
const page = (items, p) => { const per = Math.min(p.per_page || 30, 100); const n = p.page || 1;
                             return { data: items.slice((n - 1) * per, n * per) }; };
const github = {
  rest: { issues: {
    listComments: async (p) => { calls.push(['listComments', p.page || 1]); return page(input.comments || [], p); },
    listForRepo: async (p) => { calls.push(['listForRepo', p.page || 1, p.labels, p.state]);
                                return page(input.issues || [], p); },
    updateComment: async (p) => { calls.push(['updateComment', p.comment_id, p.body]); },
    createComment: async (p) => { calls.push(['createComment', p.issue_number, p.body]); },
    update: async (p) => { calls.push(['update', p.issue_number, p.state || null, p.body || null]); },
    create: async (p) => { calls.push(['create', p.title, p.labels, p.body]); },
  } },
  paginate: async (method, params) => { let all = [];
    for (let n = 1; ; n++) { const r = await method({ ...params, page: n }); all = all.concat(r.data);
      if (r.data.length < Math.min(params.per_page || 30, 100)) return all; } },
};
const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 7 } } };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', input.script)(require, github, context)
  .then(() => console.log(JSON.stringify(calls)))
  .catch((e) => { console.error(e.message); process.exit(3); });
"""


def _github_script(tmp_path: Path, script: str, env: dict[str, str], **data: Any) -> list[list[Any]]:
    assert NODE is not None, "node runs the github-script steps"
    (tmp_path / "harness.js").write_text(HARNESS)
    (tmp_path / "input.json").write_text(json.dumps({"script": script, **data}))
    result = subprocess.run([NODE, str(tmp_path / "harness.js"), str(tmp_path / "input.json")], cwd=tmp_path,
                            text=True, capture_output=True, env={**os.environ, **env}, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _post_script() -> str:
    return _script(PR["jobs"]["comment"]["steps"][pr_steps(PR)["post"]])


def _comments(count: int, marked_at: int | None, stack: str = "prod") -> list[dict[str, Any]]:
    return [{"id": 1000 + i, "body": f"<!-- plan:{stack} -->\nold" if i == marked_at else f"comment {i}"}
            for i in range(count)]


def test_the_comment_found_on_the_third_page_is_updated_in_place(tmp_path: Path) -> None:
    (tmp_path / "plan-comment.md").write_text("<!-- plan:prod -->\nnew\n")

    calls = _github_script(tmp_path, _post_script(), {"STACK": "prod"}, comments=_comments(250, 240))

    assert ["updateComment", 1240, "<!-- plan:prod -->\nnew\n"] in calls
    assert not [c for c in calls if c[0] == "createComment"]


def test_a_stack_without_a_comment_gets_one_and_another_stacks_comment_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "plan-comment.md").write_text("<!-- plan:prod -->\nnew\n")

    calls = _github_script(tmp_path, _post_script(), {"STACK": "prod"}, comments=_comments(40, 3, "staging"))

    assert ["createComment", 7, "<!-- plan:prod -->\nnew\n"] in calls
    assert not [c for c in calls if c[0] == "updateComment"]


# ---- the drift workflow ----

def drift_steps(workflow: dict[str, Any]) -> dict[str, int]:
    job = workflow["jobs"]["refresh"]
    steps: list[dict[str, Any]] = job["steps"]
    assert "schedule" in workflow["on"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    assert job["environment"] == "preview-${{ matrix.stack }}"
    assert job["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_PREVIEW_ACCESS_TOKEN }}"
    text = yaml.safe_dump(workflow, width=1_000_000)
    assert "secrets.PULUMI_ACCESS_TOKEN" not in text and "GCP_DEPLOY_SERVICE_ACCOUNT" not in text
    assert "DOCKER_SSH_KEY" not in text  # a key to a Docker host is root on it, never read-only
    at = {
        "auth": _index(steps, lambda s: _uses(s, "google-github-actions/auth@"), "authenticates to GCP"),
        "cli": _index(steps, lambda s: _uses(s, "pulumi/actions@"), "installs the Pulumi CLI"),
        "read_token": _index(steps, lambda s: 'test -n "$CLOUDFLARE_API_TOKEN"' in _run(s),
                             "checks the read-only Cloudflare token is there"),
        "refresh": _index(steps, lambda s: "pulumi refresh" in _run(s), "refreshes"),
        "parse": _index(steps, lambda s: "-m infra drift" in _run(s), "parses the drift"),
        "issue": _index(steps, lambda s: _uses(s, "actions/github-script@"), "opens or updates the issue"),
        "page": _index(steps, lambda s: "ONCALL_SLACK_WEBHOOK_URL" in str(s.get("env", "")), "pages on-call"),
        "fail": _index(steps, lambda s: "exit 1" in _run(s) and "drifted" in str(s.get("if", ""))
                       and "ONCALL" not in str(s.get("env", "")), "fails the prod run on drift"),
    }
    order = ["auth", "cli", "read_token", "refresh", "parse", "issue", "page", "fail"]
    assert [at[k] for k in order] == sorted(at.values()), at
    assert "GCP_PREVIEW_" in yaml.safe_dump(steps[at["auth"]]["with"])
    # The providers read their credentials from their own variables (the stack files hold none): the read-only ones.
    job_env = next(iter(DRIFT["jobs"].values())).get("env", {})
    assert job_env.get("CLOUDFLARE_API_TOKEN") == "${{ secrets.CLOUDFLARE_READ_API_TOKEN }}"
    assert job_env.get("VERCEL_API_TOKEN") == "${{ secrets.VERCEL_READ_API_TOKEN }}"
    assert job_env.get("GRAFANA_AUTH") == "${{ secrets.GRAFANA_READ_AUTH }}"
    refresh = _run(steps[at["refresh"]])
    assert "--preview-only" in refresh and "--json" in refresh and "> refresh.json" in refresh
    assert "--yes" not in refresh and "--skip-preview" not in refresh
    assert (steps[at["cli"]].get("with") or {}).get("command") is None  # installs only, runs nothing
    assert steps[at["parse"]].get("id") == "drift"
    script = _script(steps[at["issue"]])
    assert "github.paginate(github.rest.issues.listForRepo" in script and "<!-- drift:${process.env.STACK} -->" in script
    page = steps[at["page"]]
    assert "matrix.stack == 'prod'" in str(page["if"]) and "steps.drift.outputs.drifted == 'true'" in str(page["if"])
    assert "failure()" in str(page["if"])  # a refresh that could not run pages too
    assert "matrix.stack == 'prod'" in str(steps[at["fail"]]["if"])
    permissions = job["permissions"]
    assert permissions == {"contents": "read", "issues": "write", "id-token": "write"}
    return at


def test_the_drift_job_refreshes_read_only_parses_opens_the_issue_and_pages_in_prod() -> None:
    drift_steps(DRIFT)


def _issue_script() -> str:
    return _script(DRIFT["jobs"]["refresh"]["steps"][drift_steps(DRIFT)["issue"]])


def _issues(count: int, marked_at: int | None) -> list[dict[str, Any]]:
    return [{"number": i + 1, "body": "<!-- drift:prod -->\nold" if i == marked_at else f"issue {i}"}
            for i in range(count)]


def test_a_drift_updates_the_stacks_open_issue_found_on_any_page(tmp_path: Path) -> None:
    (tmp_path / "drift.md").write_text("<!-- drift:prod -->\nnow\n")

    calls = _github_script(tmp_path, _issue_script(), {"STACK": "prod", "DRIFTED": "true"}, issues=_issues(130, 120))

    assert ["listForRepo", 2, "drift", "open"] in calls
    assert ["update", 121, None, "<!-- drift:prod -->\nnow\n"] in calls
    assert not [c for c in calls if c[0] == "create"]


def test_a_first_drift_opens_an_issue_and_its_end_closes_it(tmp_path: Path) -> None:
    (tmp_path / "drift.md").write_text("<!-- drift:prod -->\nnow\n")

    opened = _github_script(tmp_path, _issue_script(), {"STACK": "prod", "DRIFTED": "true"}, issues=_issues(5, None))
    closed = _github_script(tmp_path, _issue_script(), {"STACK": "prod", "DRIFTED": "false"}, issues=_issues(5, 2))

    assert ["create", "Drift in prod", ["drift"], "<!-- drift:prod -->\nnow\n"] in opened
    assert ["update", 3, "closed", None] in closed


# ---- removing or reordering a step fails a check above ----

def _drop(job: str, found: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], None]:
    def mutate(workflow: dict[str, Any]) -> None:
        workflow["jobs"][job]["steps"] = [s for s in workflow["jobs"][job]["steps"] if not found(s)]
    return mutate


def _swap(job: str, first: Callable[[dict[str, Any]], bool], second: Callable[[dict[str, Any]], bool]
          ) -> Callable[[dict[str, Any]], None]:
    def mutate(workflow: dict[str, Any]) -> None:
        steps = workflow["jobs"][job]["steps"]
        i = next(n for n, s in enumerate(steps) if first(s))
        j = next(n for n, s in enumerate(steps) if second(s))
        steps[i], steps[j] = steps[j], steps[i]
    return mutate


def _edit(job: str, found: Callable[[dict[str, Any]], bool], key: str, old: str, new: str
          ) -> Callable[[dict[str, Any]], None]:
    def mutate(workflow: dict[str, Any]) -> None:
        step = next(s for s in workflow["jobs"][job]["steps"] if found(s))
        if key == "script":
            step["with"]["script"] = step["with"]["script"].replace(old, new)
        else:
            step[key] = str(step.get(key, "")).replace(old, new)
    return mutate


def _is_comment(s: dict[str, Any]) -> bool:
    return "-m infra comment" in _run(s) and "--full" not in _run(s)


def _is_plan(s: dict[str, Any]) -> bool:
    return "-m infra plan --stack ${{ matrix.stack }} --json --diff-against" in _run(s)


PR_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "summary step removed": _drop("plan", lambda s: "--full" in _run(s)),
    "artifact step removed": _drop("plan", lambda s: _uses(s, "actions/upload-artifact@") and s.get("id") == "artifact"),
    "comment step removed": _drop("plan", _is_comment),
    "post step removed": _drop("comment", lambda s: _uses(s, "actions/github-script@")),
    "comment handoff removed": _drop("plan", lambda s: _uses(s, "actions/upload-artifact@")
                                     and str((s.get("with") or {}).get("name", "")).startswith("pr-comment-")),
    "comment built before the artifact exists": _swap("plan", _is_comment,
                                                      lambda s: _uses(s, "actions/upload-artifact@")
                                                      and s.get("id") == "artifact"),
    "post runs only when the plan passed": _edit("plan", lambda s: _uses(s, "actions/upload-artifact@")
                                                 and str((s.get("with") or {}).get("name", "")).startswith(
                                                     "pr-comment-"), "if", "always() && ", ""),
    "the exit code is no longer kept": _edit("plan", _is_plan, "run", 'echo "$code" > plan-exit-code; ', ""),
    "the plan step no longer fails": _edit("plan", _is_plan, "run", 'exit "$code"', "exit 0"),
    "only the first page of comments is read": _edit(
        "comment", lambda s: _uses(s, "actions/github-script@"), "script",
        "await github.paginate(github.rest.issues.listComments, ", "(await github.rest.issues.listComments("),
}
DRIFT_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "read-only token step removed": _drop("refresh", lambda s: "CLOUDFLARE_API_TOKEN" in _run(s)),
    "refresh applies": _edit("refresh", lambda s: "pulumi refresh" in _run(s), "run", "--preview-only", "--yes"),
    "parse before refresh": _swap("refresh", lambda s: "pulumi refresh" in _run(s), lambda s: "-m infra drift" in _run(s)),
    "issue step removed": _drop("refresh", lambda s: _uses(s, "actions/github-script@")),
    "page step removed": _drop("refresh", lambda s: "ONCALL_SLACK_WEBHOOK_URL" in str(s.get("env", ""))),
    "prod drift no longer fails the run": _drop("refresh", lambda s: "drifted" in str(s.get("if", ""))
                                                and "exit 1" in _run(s) and "ONCALL" not in str(s.get("env", ""))),
    "page not sent when the refresh fails": _edit("refresh", lambda s: "ONCALL" in str(s.get("env", "")), "if",
                                                  "failure() || ", ""),
}


@pytest.mark.parametrize("edit", sorted(PR_EDITS))
def test_a_pull_request_comment_step_removed_or_reordered_fails_the_check(edit: str) -> None:
    workflow = copy.deepcopy(PR)
    PR_EDITS[edit](workflow)
    with pytest.raises((AssertionError, KeyError, StopIteration)):
        pr_steps(workflow)


@pytest.mark.parametrize("edit", sorted(DRIFT_EDITS))
def test_a_drift_step_removed_or_reordered_fails_the_check(edit: str) -> None:
    workflow = copy.deepcopy(DRIFT)
    DRIFT_EDITS[edit](workflow)
    with pytest.raises((AssertionError, KeyError, StopIteration)):
        drift_steps(workflow)
