"""The CI workflows' structure, read from the YAML: pull-request previews are gated and read-only,
the policy pack a pull request is judged by comes from the base branch, deploys follow the needs
chain behind their environments, and only prod on main holds an identity token for GCP. Removing a
gate fails a test here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    document: Any = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML reads the key `on` as True.
    return {str(k) if k is not True else "on": v for k, v in document.items()}


PR, DEPLOY = _load("pull-request.yml"), _load("deploy.yml")


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def _text(value: Any) -> str:
    # Unwrapped: a long run line folded at 80 columns would split the very commands looked for.
    return yaml.safe_dump(value, width=1_000_000)


def _id_token(workflow: dict[str, Any], job: dict[str, Any]) -> bool:
    return (job.get("permissions") or workflow.get("permissions") or {}).get("id-token") == "write"


def test_pull_requests_never_see_the_deploy_credentials() -> None:
    text = (WORKFLOWS / "pull-request.yml").read_text()

    assert "secrets.PULUMI_ACCESS_TOKEN" not in text
    assert "GCP_DEPLOY_SERVICE_ACCOUNT" not in text and "vars.GCP_WORKLOAD_IDENTITY_PROVIDER" not in text
    assert "pull_request_target" not in text


def test_the_preview_is_gated_by_its_environment_and_never_runs_for_forks() -> None:
    preview = PR["jobs"]["preview"]

    assert preview.get("environment") == "preview-${{ matrix.stack }}"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in str(preview.get("if"))
    assert "secrets.PULUMI_PREVIEW_ACCESS_TOKEN" in _text(preview.get("env"))
    auth = [s for s in _steps(preview) if str(s.get("uses", "")).startswith("google-github-actions/auth")]
    assert auth and all("GCP_PREVIEW_" in _text(s.get("with")) for s in auth)


def test_only_the_gated_preview_may_ask_for_an_identity_token_on_a_pull_request() -> None:
    assert not _id_token(PR, {"permissions": PR.get("permissions")})
    assert [name for name, job in PR["jobs"].items() if _id_token(PR, job)] == ["preview"]


# Write credentials: what can change a provider's resources or the stack. Read-only ones are their own secrets.
WRITE_SECRETS = ("PULUMI_ACCESS_TOKEN", "CLOUDFLARE_API_TOKEN", "VERCEL_API_TOKEN", "GRAFANA_AUTH", "RAILWAY_TOKEN",
                 "INTEGRATION_DOCKER_SSH_KEY", "GRAFANA_QUERY_TOKEN", "RAILWAY_LOG_DRAIN_TOKEN", "RAILWAY_REGISTRY_PASSWORD",
                 "RAILWAY_METRICS_TOKEN", "BACKUP_SECRET_ACCESS_KEY")
READ_SECRETS = {"PULUMI_PREVIEW_ACCESS_TOKEN", "CLOUDFLARE_READ_API_TOKEN", "VERCEL_READ_API_TOKEN", "GRAFANA_READ_AUTH"}
DEPLOY_JOBS = {"integration": "integration", "staging": "staging", "prod": "production"}
"""Deploy job -> its GitHub environment (each allows main only and holds that environment's write credentials)."""
PLAN_JOBS = {"staging-plan": "preview-staging", "prod-plan": "preview-prod"}
"""Update-plan job on main -> its read-only environment (the one a pull request's preview uses)."""


def _secrets(job: dict[str, Any]) -> set[str]:
    return set(re.findall(r"secrets\.([A-Za-z0-9_]+)", _text(job)))


def test_a_preview_holds_read_only_credentials_only() -> None:
    """`pulumi preview` runs the program with the stack config decrypted: the PR's code (and, on main, the update
    plan's preview) gets the read-only tokens of `preview-<stack>` and the GCP preview account, nothing that writes."""
    previews = {"pull-request preview": PR["jobs"]["preview"], **{n: DEPLOY["jobs"][n] for n in PLAN_JOBS}}
    for name, job in previews.items():
        assert _secrets(job) <= READ_SECRETS, f"{name} holds {sorted(_secrets(job) - READ_SECRETS)}"
        assert "GCP_DEPLOY_SERVICE_ACCOUNT" not in _text(job) and "vars.GCP_WORKLOAD_IDENTITY_PROVIDER" not in _text(job)
        for step in _steps(job):
            if str(step.get("uses", "")).startswith("pulumi/actions") and step.get("with", {}).get("command"):
                env = step.get("env") or {}
                assert env.get("CLOUDFLARE_API_TOKEN") == "${{ secrets.CLOUDFLARE_READ_API_TOKEN }}", name
                assert env.get("VERCEL_API_TOKEN") == "${{ secrets.VERCEL_READ_API_TOKEN }}", name
                assert env.get("GRAFANA_AUTH") == "${{ secrets.GRAFANA_READ_AUTH }}", name
    for name, environment in PLAN_JOBS.items():
        assert DEPLOY["jobs"][name].get("environment") == environment


def test_write_credentials_reach_only_the_deploy_jobs_on_main() -> None:
    pr_text = (WORKFLOWS / "pull-request.yml").read_text()
    for secret in WRITE_SECRETS:
        assert f"secrets.{secret} " not in pr_text and f"secrets.{secret}}}" not in pr_text, secret
    for name, job in DEPLOY["jobs"].items():
        holds = _secrets(job) & set(WRITE_SECRETS)
        if holds or "GCP_DEPLOY_SERVICE_ACCOUNT" in _text(job):
            assert DEPLOY_JOBS.get(name) == job.get("environment"), f"{name} holds {sorted(holds)} outside its environment"
            assert job.get("if") == "github.ref == 'refs/heads/main'", f"{name} holds write credentials off main"
    assert all(_secrets(DEPLOY["jobs"][name]) & set(WRITE_SECRETS) for name in DEPLOY_JOBS)


# Credentials the Railway provider reads from its environment when it applies (components/backends/railway.py): once
# `platform:` stack-file secrets, which every preview decrypted (#22 item 1).
RAILWAY_DEPLOY_ENV = ("RAILWAY_TOKEN", "RAILWAY_LOG_DRAIN_TOKEN", "RAILWAY_REGISTRY_PASSWORD", "RAILWAY_METRICS_TOKEN",
                      "BACKUP_SECRET_ACCESS_KEY")
DRIFT = _load("drift.yml")


def _env_names(job: dict[str, Any]) -> set[str]:
    names = set(job.get("env") or {})
    for step in _steps(job):
        names |= set(step.get("env") or {})
    return names


def test_stagings_up_gets_the_railway_credentials_from_its_environment() -> None:
    staging = DEPLOY["jobs"]["staging"]
    [up] = [s for s in _steps(staging) if _up(s)]

    env = up.get("env") or {}
    for name in RAILWAY_DEPLOY_ENV:
        assert env.get(name) == f"${{{{ secrets.{name} }}}}", f"staging's up does not pass {name} from its environment"
    assert staging.get("environment") == "staging" and staging.get("if") == "github.ref == 'refs/heads/main'"


def test_no_preview_or_refresh_gets_a_railway_credential() -> None:
    """Railway has no read-only token: a preview and the drift refresh run without any (the provider's check, diff and
    read need none), so nothing that runs a pull request's program or a saved preview can write to Railway."""
    previews = {"pull-request preview": PR["jobs"]["preview"], **{n: DEPLOY["jobs"][n] for n in PLAN_JOBS},
                "drift refresh": DRIFT["jobs"]["refresh"]}
    for name, job in previews.items():
        assert not _env_names(job) & set(RAILWAY_DEPLOY_ENV), f"{name} gets {sorted(_env_names(job) & set(RAILWAY_DEPLOY_ENV))}"
        assert not _secrets(job) & set(RAILWAY_DEPLOY_ENV), name
    assert not _secrets(DEPLOY["jobs"]["prod"]) & set(RAILWAY_DEPLOY_ENV), "prod runs nothing on Railway"


def test_the_engine_image_is_pushed_with_the_staging_jobs_own_short_lived_login() -> None:
    """No registry password in the stack file: staging's deploy logs in to its registry with the job's GITHUB_TOKEN
    (packages: write, valid for the job only), before its up, and pulumi-docker pushes with that login."""
    staging = DEPLOY["jobs"]["staging"]
    steps = _steps(staging)
    login = _index(staging, _runs("docker login"))
    up = _index(staging, _up)
    server = yaml.safe_load((WORKFLOWS.parent.parent / "Pulumi.staging.yaml").read_text())["config"][
        "platform:registry"]["server"]

    assert login is not None and up is not None and login < up
    assert f"docker login {server}" in steps[login]["run"] and "--password-stdin" in steps[login]["run"]
    assert (steps[login].get("env") or {}).get("REGISTRY_TOKEN") == "${{ secrets.GITHUB_TOKEN }}"
    assert (staging.get("permissions") or {}).get("packages") == "write"
    holders = [name for name, job in {**DEPLOY["jobs"], **PR["jobs"], **DRIFT["jobs"]}.items()
               if (job.get("permissions") or {}).get("packages") == "write"]
    assert holders == ["staging"], f"packages: write outside staging's deploy: {holders}"
    assert (DEPLOY.get("permissions") or {}).get("packages") is None and (PR.get("permissions") or {}).get("packages") is None


def test_the_policy_verdict_comes_from_the_base_branch_in_a_job_that_runs_no_pull_request_code() -> None:
    policy, plan = PR["jobs"]["policy"], PR["jobs"]["plan"]
    steps = _steps(policy)

    checkouts = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout")]
    assert checkouts and all((s.get("with") or {}).get("ref") == "${{ github.event.pull_request.base.sha }}"
                             and (s.get("with") or {}).get("path") == "base" for s in checkouts), \
        "the policy job checks out something other than the base branch"
    runs = [str(s.get("run", "")) for s in steps if s.get("run")]
    assert runs and all(run.lstrip().startswith(("cd base", "(cd base")) for run in runs), \
        "a step of the policy job runs outside the base branch's checkout"
    judge = [run for run in runs if "-m infra judge" in run]
    assert judge and "--policy-pack policies" in judge[0] and "../pr-plan/analyzer-inputs.json" in judge[0]
    assert "cd base && python3 tools/dev.py setup" in _text(steps)  # the base pack in its own virtualenv
    assert policy.get("needs") == "plan" and not _secrets(policy) and not _id_token(PR, policy)
    downloads = [s for s in steps if str(s.get("uses", "")).startswith("actions/download-artifact")]
    uploads = [s for s in _steps(plan) if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert downloads and uploads and downloads[0]["with"]["name"] == uploads[0]["with"]["name"]
    assert "analyzer-inputs.json" in uploads[0]["with"]["path"]
    assert any("--analyzer-inputs analyzer-inputs.json" in str(s.get("run", "")) for s in _steps(plan))
    # The pull request's own jobs carry no checkout credentials either.
    for job in PR["jobs"].values():
        assert all((s.get("with") or {}).get("persist-credentials") is False
                   for s in _steps(job) if str(s.get("uses", "")).startswith("actions/checkout"))


def test_deploys_run_in_order_each_behind_its_environment_on_main_only() -> None:
    jobs = DEPLOY["jobs"]
    order = ("integration", "staging-plan", "staging", "prod-plan", "prod")

    assert DEPLOY["on"]["push"]["branches"] == ["main"]
    assert [jobs[j].get("needs") for j in order] == ["test", *order[:-1]]
    assert [jobs[j].get("environment") for j in order] == \
        ["integration", "preview-staging", "staging", "preview-prod", "production"]
    assert all(jobs[j].get("if") == "github.ref == 'refs/heads/main'" for j in order)


def test_only_prod_on_main_holds_an_identity_token_and_the_provider_condition_is_documented() -> None:
    jobs = DEPLOY["jobs"]
    text = (WORKFLOWS / "deploy.yml").read_text()

    assert [name for name, job in jobs.items() if _id_token(DEPLOY, job)] == ["prod-plan", "prod"]
    deploy_auth = [name for name, job in jobs.items()
                   if any(str(s.get("uses", "")).startswith("google-github-actions/auth")
                          and "GCP_DEPLOY_SERVICE_ACCOUNT" in _text(s) for s in _steps(job))]
    assert deploy_auth == ["prod"]
    for claim in ("assertion.ref == 'refs/heads/main'", "assertion.environment == 'production'",
                  "assertion.repository ==", "deploy.yml@refs/heads/main"):
        assert claim in text


def test_every_deploy_runs_the_pack_from_its_own_checkout_of_main() -> None:
    for name in ("integration", "staging-plan", "staging", "prod-plan", "prod"):
        pulumi = [s for s in _steps(DEPLOY["jobs"][name]) if str(s.get("uses", "")).startswith("pulumi/actions")
                  and (s.get("with") or {}).get("command")]
        assert pulumi and all(s["with"]["policyPacks"] == "policies" for s in pulumi), name
        assert all(s["with"]["command"] == ("preview" if name.endswith("-plan") else "up") for s in pulumi), name


# ---------------------------------------------------------------------------------------------
# The deploy gates (#14, D6-D8): integration's smoke gates staging, staging's watch and smoke gate
# prod, prod rolls out as a canary and records what it promoted. The last test removes each gate
# from a copy of the workflows and runs every test of this module against it: one must fail.


def _index(job: dict[str, Any], found: Any) -> int | None:
    return next((i for i, step in enumerate(_steps(job)) if found(step)), None)


def _up(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("pulumi/actions") and (step.get("with") or {}).get("command") == "up"


def _runs(command: str) -> Any:
    return lambda step: command in str(step.get("run", ""))


def _unconditional(step: dict[str, Any]) -> bool:
    return not step.get("continue-on-error") and "if" not in step


@pytest.mark.parametrize(("job", "gates"), [("integration", "staging"), ("staging", "prod")])
def test_each_stacks_smoke_through_its_edge_gates_the_next_deploy(job: str, gates: str) -> None:
    steps = _steps(DEPLOY["jobs"][job])
    up, smoke = _index(DEPLOY["jobs"][job], _up), _index(DEPLOY["jobs"][job], _runs("python -m engine smoke"))

    assert up is not None and smoke is not None and up < smoke, f"{job} is smoke-tested after its up"
    step = steps[smoke]
    assert _unconditional(step), "a gate that may fail or be skipped gates nothing"
    assert (step.get("env") or {}).get("STACK") == f"${{{{ vars.PULUMI_ORG }}}}/platform/{job}"
    assert "--admin-key -" in step["run"] and "::add-mask::$SMOKE_ADMIN_KEY" in step["run"], "the key never in argv"
    assert DEPLOY["jobs"][f"{gates}-plan"].get("needs") == job and DEPLOY["jobs"][gates].get("needs") == f"{gates}-plan"


def test_staging_is_watched_and_rolled_back_before_its_smoke() -> None:
    staging = DEPLOY["jobs"]["staging"]
    up, watch = _index(staging, _up), _index(staging, _runs("python -m infra rollout --stack staging"))
    smoke = _index(staging, _runs("python -m engine smoke"))

    assert up is not None and watch is not None and smoke is not None and up < watch < smoke
    assert _unconditional(_steps(staging)[watch])
    assert "secrets.RAILWAY_TOKEN" in _text(_steps(staging)[watch].get("env"))


def test_prod_rolls_out_as_a_canary_then_records_the_promotion_then_smokes() -> None:
    prod = DEPLOY["jobs"]["prod"]
    steps = _steps(prod)
    ups = [i for i, step in enumerate(steps) if _up(step)]
    rollout = _index(prod, _runs("python -m infra rollout --stack prod"))
    smoke = _index(prod, _runs("python -m engine smoke"))
    assert rollout is not None
    minted = [s for s in steps[:rollout] if _mints_access_token(s)]
    assert minted, "the rollout calls the Cloud Run Admin API with an access token minted before it"
    auth = minted[-1]

    assert smoke is not None and len(ups) == 2
    assert ups[0] < rollout < ups[1] < smoke, "release up, canary, promotion up, smoke"
    assert _unconditional(steps[rollout]) and steps[rollout].get("id") == "rollout"
    assert (steps[ups[1]].get("env") or {}).get("PLATFORM_PROMOTE_ENGINE_REVISION") == \
        "${{ steps.rollout.outputs.revision }}"
    assert (steps[rollout].get("env") or {}).get("GOOGLE_OAUTH_ACCESS_TOKEN") == \
        f"${{{{ steps.{auth.get('id')}.outputs.access_token }}}}"


def test_prod_waits_for_its_certificate_after_its_first_up_and_before_it_judges_or_smokes() -> None:
    """The first deploy's certificate provisions for up to 60 minutes (#20 item 8, tests/test_ops_certificate.py)."""
    prod = DEPLOY["jobs"]["prod"]
    steps = _steps(prod)
    up = _index(prod, _up)
    wait = _index(prod, _runs("python -m infra wait-certificate --stack prod"))
    rollout = _index(prod, _runs("python -m infra rollout --stack prod"))
    smoke = _index(prod, _runs("python -m engine smoke"))
    gcloud = _index(prod, lambda s: str(s.get("uses", "")).startswith("google-github-actions/setup-gcloud"))

    assert wait is not None, "prod smokes through an edge whose origin may have no certificate yet"
    assert up is not None and rollout is not None and smoke is not None and up < wait < rollout < smoke
    assert _unconditional(steps[wait])
    assert gcloud is not None and gcloud < wait, "the wait runs gcloud, set up with the job's workload identity"


def _mints_access_token(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("google-github-actions/auth") and \
        (step.get("with") or {}).get("token_format") == "access_token"


def test_prod_mints_a_fresh_access_token_after_the_certificate_wait_for_its_rollout() -> None:
    """google-github-actions/auth mints an access token of `access_token_lifetime`, default '3600s' (its action.yml),
    and GOOGLE_OAUTH_ACCESS_TOKEN is that token, never refreshed. The first deploy's certificate wait alone may take
    70 minutes after the first `up`, so a token minted before them is expired when the rollout calls the Cloud Run
    Admin API (401). A token minted after the wait and before the rollout lives through its 15-minute canary."""
    prod = DEPLOY["jobs"]["prod"]
    steps = _steps(prod)
    wait = _index(prod, _runs("python -m infra wait-certificate --stack prod"))
    rollout = _index(prod, _runs("python -m infra rollout --stack prod"))

    assert wait is not None and rollout is not None and wait < rollout
    fresh = [s for s in steps[wait + 1:rollout] if _mints_access_token(s) and s.get("id")]
    assert fresh, "the rollout would use the token minted before the up and the certificate wait (1 h lifetime)"
    assert _unconditional(fresh[-1])
    assert (steps[rollout].get("env") or {}).get("GOOGLE_OAUTH_ACCESS_TOKEN") == \
        f"${{{{ steps.{fresh[-1]['id']}.outputs.access_token }}}}"


# ---------------------------------------------------------------------------------------------
# Apply exactly what was reviewed (#24 items 1 and 6) and the supply chain of the deploy path (#22 item 10).

SHA_PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*([^@\s]+)@([^\s#]+)\s*(#\s*(\S+))?\s*$")


@pytest.mark.parametrize("workflow", ["deploy.yml", "pull-request.yml"])
def test_every_action_is_pinned_by_a_full_commit_sha_with_its_release_in_a_comment(workflow: str) -> None:
    """A tag can be moved to other code by whoever controls the action's repository; a commit SHA cannot
    (docs.github.com/en/actions/security-for-github-actions/security-guides/security-hardening-for-github-actions
    #using-third-party-actions: "Pin actions to a full length commit SHA")."""
    lines = [line for line in (WORKFLOWS / workflow).read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert lines
    pins: dict[str, set[tuple[str, str]]] = {}
    for line in lines:
        match = SHA_PIN.match(line)
        assert match and re.fullmatch(r"[0-9a-f]{40}", match.group(2)), f"{workflow}: not pinned by SHA: {line.strip()}"
        assert match.group(4) and re.fullmatch(r"v\d+\.\d+\.\d+", match.group(4)), f"{workflow}: no release tag: {line}"
        pins.setdefault(match.group(1), set()).add((match.group(2), match.group(4)))
    # One action, one release: the same SHA for the same tag everywhere.
    assert all(len(versions) == 1 for versions in pins.values()), pins


def _lock_version(package: str) -> str:
    root = WORKFLOWS.parent.parent
    match = re.search(rf"^{package}==(\S+)", (root / "requirements.lock").read_text(), re.MULTILINE)
    assert match, package
    return match.group(1)


def test_the_pulumi_cli_is_pinned_to_the_sdk_version_everywhere() -> None:
    for workflow in (DEPLOY, PR):
        assert workflow.get("env", {}).get("PULUMI_VERSION") == _lock_version("pulumi")
        for job in workflow["jobs"].values():
            for step in _steps(job):
                if str(step.get("uses", "")).startswith("pulumi/actions"):
                    assert step["with"].get("pulumi-version") == "${{ env.PULUMI_VERSION }}", step


def _plan_preview(job: dict[str, Any]) -> int | None:
    return _index(job, lambda s: str(s.get("uses", "")).startswith("pulumi/actions")
                  and (s.get("with") or {}).get("command") == "preview" and (s.get("with") or {}).get("plan"))


def _quota(job: dict[str, Any]) -> int | None:
    return _index(job, lambda s: "tools/ci/deployed-plan.sh" in str(s.get("run", ""))
                  and "--diff-against deployed-plan.json" in str(s.get("run", "")))


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_gated_deploy_applies_the_update_plan_its_reviewers_saw(stack: str) -> None:
    plan_job, deploy_job = DEPLOY["jobs"][f"{stack}-plan"], DEPLOY["jobs"][stack]
    plan_steps, deploy_steps = _steps(plan_job), _steps(deploy_job)
    preview = _plan_preview(plan_job)
    assert preview is not None, f"{stack}-plan saves no update plan"
    saved = plan_steps[preview]["with"]["plan"]
    assert plan_steps[preview]["with"].get("comment-on-summary") is True, "the reviewers would not see the plan"
    assert (plan_steps[preview].get("env") or {}).get("PULUMI_EXPERIMENTAL") == "true"
    upload = _index(plan_job, lambda s: str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload is not None and upload > preview and plan_steps[upload]["with"]["path"] == saved

    download = _index(deploy_job, lambda s: str(s.get("uses", "")).startswith("actions/download-artifact"))
    up = _index(deploy_job, _up)
    assert download is not None and up is not None and download < up
    assert deploy_steps[download]["with"]["name"] == plan_steps[upload]["with"]["name"]
    assert deploy_steps[up]["with"].get("plan") == saved, f"{stack}'s up does not apply the reviewed plan (--plan)"
    assert (deploy_steps[up].get("env") or {}).get("PULUMI_EXPERIMENTAL") == "true"
    assert _unconditional(deploy_steps[up]) and _unconditional(deploy_steps[download])


@pytest.mark.parametrize(("job", "before"), [("integration", "up"), ("staging-plan", "preview"),
                                             ("prod-plan", "preview")])
def test_the_quota_budget_runs_before_anything_is_applied_on_main(job: str, before: str) -> None:
    """stacks/quotas.py on main too (#24 item 6): measured against the commit last deployed, before the up (or
    before the update plan the deploy applies)."""
    steps = _steps(DEPLOY["jobs"][job])
    quota = _quota(DEPLOY["jobs"][job])
    target = _index(DEPLOY["jobs"][job], _up) if before == "up" else _plan_preview(DEPLOY["jobs"][job])
    assert quota is not None, f"{job} runs no quota budget"
    assert target is not None and quota < target, f"{job}'s quota budget runs after its {before}"
    assert _unconditional(steps[quota])
    checkout = steps[0]
    assert str(checkout.get("uses", "")).startswith("actions/checkout") and checkout["with"].get("fetch-depth") == 0


def _without_fresh_token(deploy: dict[str, Any], _pr: dict[str, Any]) -> None:
    steps = deploy["jobs"]["prod"]["steps"]
    wait = next(i for i, s in enumerate(steps) if "wait-certificate" in str(s.get("run", "")))
    deploy["jobs"]["prod"]["steps"] = steps[:wait + 1] + [s for s in steps[wait + 1:] if not _mints_access_token(s)]


def _without_step(job: str, command: str) -> Any:
    def mutate(deploy: dict[str, Any], _pr: dict[str, Any]) -> None:
        deploy["jobs"][job]["steps"] = [s for s in deploy["jobs"][job]["steps"] if command not in str(s.get("run", ""))]
    return mutate


def _set(path: tuple[str, ...], value: Any, workflow: str = "deploy") -> Any:
    def mutate(deploy: dict[str, Any], pr: dict[str, Any]) -> None:
        node = deploy if workflow == "deploy" else pr
        for key in path[:-1]:
            node = node[key]
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return mutate


def _smoke_may_fail(deploy: dict[str, Any], _pr: dict[str, Any]) -> None:
    for step in deploy["jobs"]["integration"]["steps"]:
        if "python -m engine smoke" in str(step.get("run", "")):
            step["continue-on-error"] = True


def _policy_checks_out_the_pr(_deploy: dict[str, Any], pr: dict[str, Any]) -> None:
    pr["jobs"]["policy"]["steps"][0]["with"].pop("ref")


def _preview_holds_write_token(_deploy: dict[str, Any], pr: dict[str, Any]) -> None:
    pr["jobs"]["preview"]["steps"][-1]["env"]["CLOUDFLARE_API_TOKEN"] = "${{ secrets.CLOUDFLARE_API_TOKEN }}"


def _plan_job_holds_write_token(deploy: dict[str, Any], _pr: dict[str, Any]) -> None:
    deploy["jobs"]["staging-plan"]["env"]["PULUMI_ACCESS_TOKEN"] = "${{ secrets.PULUMI_ACCESS_TOKEN }}"


def _staging_up_without_the_drain_token(deploy: dict[str, Any], _pr: dict[str, Any]) -> None:
    del deploy["jobs"]["staging"]["steps"][_STAGING_UP]["env"]["RAILWAY_LOG_DRAIN_TOKEN"]


def _preview_holds_the_railway_token(_deploy: dict[str, Any], pr: dict[str, Any]) -> None:
    pr["jobs"]["preview"]["steps"][-1].setdefault("env", {})["RAILWAY_TOKEN"] = "${{ secrets.RAILWAY_TOKEN }}"


def _packages_write_on_the_pull_request(_deploy: dict[str, Any], pr: dict[str, Any]) -> None:
    pr["jobs"]["plan"].setdefault("permissions", {})["packages"] = "write"


def _quota_after_up(deploy: dict[str, Any], _pr: dict[str, Any]) -> None:
    steps = deploy["jobs"]["integration"]["steps"]
    quota = next(s for s in steps if "tools/ci/deployed-plan.sh" in str(s.get("run", "")))
    steps.remove(quota)
    steps.insert(next(i for i, s in enumerate(steps) if _up(s)) + 1, quota)


_STAGING_UP = next(i for i, s in enumerate(DEPLOY["jobs"]["staging"]["steps"]) if _up(s))
_PROD_PREVIEW = next(i for i, s in enumerate(DEPLOY["jobs"]["prod-plan"]["steps"])
                     if (s.get("with") or {}).get("command") == "preview")


GATES = {
    "the staging gate: integration's smoke": _without_step("integration", "python -m engine smoke"),
    "the staging gate: integration's smoke allowed to fail": _smoke_may_fail,
    "staging's needs on integration": _set(("jobs", "staging", "needs"), None),
    "prod's gate: staging's smoke": _without_step("staging", "python -m engine smoke"),
    "staging's watch and rollback": _without_step("staging", "python -m infra rollout"),
    "prod's needs on staging": _set(("jobs", "prod", "needs"), "integration"),
    "prod's environment protection": _set(("jobs", "prod", "environment"), None),
    "prod's canary rollout": _without_step("prod", "python -m infra rollout"),
    "prod's wait for its certificate": _without_step("prod", "python -m infra wait-certificate"),
    "prod's fresh access token for the rollout": _without_fresh_token,
    "the preview job on pull requests": _set(("jobs", "preview"), None, "pr"),
    "the preview's environment": _set(("jobs", "preview", "environment"), None, "pr"),
    "the policy job": _set(("jobs", "policy"), None, "pr"),
    "the policy job checks out the pull request": _policy_checks_out_the_pr,
    "the preview holds a write token": _preview_holds_write_token,
    "staging applies whatever it computes": _set(("jobs", "staging", "steps", _STAGING_UP, "with", "plan"), None),
    "prod's plan job": _set(("jobs", "prod-plan"), None),
    "prod's plan not on the summary": _set(("jobs", "prod-plan", "steps", _PROD_PREVIEW, "with", "comment-on-summary"),
                                           None),
    "integration's quota budget": _without_step("integration", "tools/ci/deployed-plan.sh"),
    "prod's quota budget": _without_step("prod-plan", "tools/ci/deployed-plan.sh"),
    "integration's quota budget after its up": _quota_after_up,
    "a write token on a plan job": _plan_job_holds_write_token,
    "staging's up without Locomotive's token": _staging_up_without_the_drain_token,
    "the preview holds the Railway token": _preview_holds_the_railway_token,
    "staging's registry login": _without_step("staging", "docker login"),
    "packages: write on a pull request": _packages_write_on_the_pull_request,
}


@pytest.mark.parametrize("gate", sorted(GATES))
def test_removing_a_gate_fails_a_test_of_this_module(gate: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import copy
    import inspect

    deploy, pr = copy.deepcopy(DEPLOY), copy.deepcopy(PR)
    GATES[gate](deploy, pr)
    monkeypatch.setitem(globals(), "DEPLOY", deploy)
    monkeypatch.setitem(globals(), "PR", pr)
    failed: list[str] = []
    for name, test in list(globals().items()):
        if not name.startswith("test_") or name == "test_removing_a_gate_fails_a_test_of_this_module":
            continue
        marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
        cases = [dict(zip([n.strip() for n in (m.args[0] if isinstance(m.args[0], str) else ",".join(m.args[0])).split(",")],
                          case if isinstance(case, tuple) else (case,), strict=True))
                 for m in marks for case in m.args[1]] or [{}]
        for case in cases:
            if "monkeypatch" in inspect.signature(test).parameters:
                continue
            try:
                test(**case)
            except (AssertionError, KeyError, TypeError, StopIteration):
                failed.append(name)
    assert failed, f"no test fails without {gate}"


def test_the_preview_runs_only_stacks_whose_providers_it_can_reach_read_only() -> None:
    """`pulumi preview` configures every provider of the stack. A stack whose Docker host is reached over
    SSH (integration, #20 item 10) makes the kreuzwerker provider connect at configure time, with the
    deploy key: a key to the Docker daemon is root on that host, never a read-only credential, so the
    preview job must not hold it, and such a stack cannot be previewed. The offline plan job covers it."""
    root = WORKFLOWS.parent.parent
    previewed = PR["jobs"]["preview"]["strategy"]["matrix"]["stack"]
    preview_text = _text(PR["jobs"]["preview"])
    for stack in previewed:
        config = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()).get("config", {})
        host = str(config.get("docker:host", ""))
        assert not host.startswith("ssh://") or "DOCKER_SSH_KEY" in preview_text, (
            f"the preview previews {stack}, whose docker:host {host} needs an SSH key the preview does not hold")
    assert "DOCKER_SSH_KEY" not in preview_text, "the preview holds a key to a Docker host (root on it)"
    assert set(PR["jobs"]["plan"]["strategy"]["matrix"]["stack"]) == {"integration", "staging", "prod"}


def test_integration_s_up_refreshes_first() -> None:
    """Integration's self-hosted Grafana keeps what the API created in its own database: a container replaced (or a
    volume lost) leaves the state listing a folder, dashboards and rules Grafana no longer has, and a plain `up`
    would not create them again (it diffs against the state). Integration is rebuilt freely, so every up there
    refreshes first (pulumi/actions `refresh: true`, as `pulumi up --refresh`)."""
    [up] = [s for s in _steps(DEPLOY["jobs"]["integration"]) if str(s.get("uses", "")).startswith("pulumi/actions")
            and s.get("with", {}).get("command") == "up"]
    assert up["with"].get("refresh") is True, up


def test_docs_review_names_every_secret_and_variable_the_workflows_read() -> None:
    """docs/review.md's table is what a new environment is set up from (and what the bootstrap reconciles with)."""
    doc = (WORKFLOWS.parent.parent / "docs" / "review.md").read_text()
    for name in ("deploy.yml", "pull-request.yml"):
        text = (WORKFLOWS / name).read_text()
        for kind, key in set(re.findall(r"\b(secrets|vars)\.([A-Z0-9_]+)", text)):
            assert f"`{key}`" in doc, f"docs/review.md does not name the {kind[:-1] if kind == 'secrets' else 'variable'} {key}"
    for environment in ("integration", "staging", "production", "preview-staging", "preview-prod"):
        assert f"`{environment}`" in doc
