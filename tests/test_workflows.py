"""The CI workflows' structure, read from the YAML: pull-request previews are gated and read-only,
the policy pack a pull request is judged by comes from the base branch, deploys follow the needs
chain behind their environments, and only prod on main holds an identity token for GCP. Removing a
gate fails a test here."""

from __future__ import annotations

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

    assert preview.get("environment") == "preview"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in str(preview.get("if"))
    assert "secrets.PULUMI_PREVIEW_ACCESS_TOKEN" in _text(preview.get("env"))
    auth = [s for s in _steps(preview) if str(s.get("uses", "")).startswith("google-github-actions/auth")]
    assert auth and all("GCP_PREVIEW_" in _text(s.get("with")) for s in auth)


def test_only_the_gated_preview_may_ask_for_an_identity_token_on_a_pull_request() -> None:
    assert not _id_token(PR, {"permissions": PR.get("permissions")})
    assert [name for name, job in PR["jobs"].items() if _id_token(PR, job)] == ["preview"]


@pytest.mark.parametrize("job", ["plan", "preview"])
def test_a_pull_request_is_judged_by_the_base_branchs_policy_pack(job: str) -> None:
    steps = _steps(PR["jobs"][job])

    base = [s for s in steps if s.get("uses", "").startswith("actions/checkout") and (s.get("with") or {}).get("path") == "base"]
    assert base and base[0]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    text = _text(steps)
    assert "cd base && python3 tools/dev.py setup" in text  # the base pack in its own virtualenv
    if job == "plan":
        assert "--policy-pack base/policies" in text
    else:
        pulumi = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions")]
        assert pulumi and all(s["with"]["policyPacks"] == "base/policies" for s in pulumi)
        assert "(cd base && .venv/bin/python -m infra policy-config" in text
    assert all((s.get("with") or {}).get("persist-credentials") is False
               for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))


def test_deploys_run_in_order_each_behind_its_environment_on_main_only() -> None:
    jobs = DEPLOY["jobs"]

    assert DEPLOY["on"]["push"]["branches"] == ["main"]
    assert [jobs[j].get("needs") for j in ("integration", "staging", "prod")] == ["test", "integration", "staging"]
    assert [jobs[j].get("environment") for j in ("integration", "staging", "prod")] == \
        ["integration", "staging", "production"]
    assert all(jobs[j].get("if") == "github.ref == 'refs/heads/main'" for j in ("integration", "staging", "prod"))


def test_only_prod_on_main_holds_an_identity_token_and_the_provider_condition_is_documented() -> None:
    jobs = DEPLOY["jobs"]
    text = (WORKFLOWS / "deploy.yml").read_text()

    assert [name for name, job in jobs.items() if _id_token(DEPLOY, job)] == ["prod"]
    auth = [name for name, job in jobs.items()
            if any(str(s.get("uses", "")).startswith("google-github-actions/auth") for s in _steps(job))]
    assert auth == ["prod"]
    for claim in ("assertion.ref == 'refs/heads/main'", "assertion.environment == 'production'",
                  "assertion.repository ==", "deploy.yml@refs/heads/main"):
        assert claim in text


def test_every_deploy_runs_the_pack_from_its_own_checkout_of_main() -> None:
    for name in ("integration", "staging", "prod"):
        pulumi = [s for s in _steps(DEPLOY["jobs"][name]) if str(s.get("uses", "")).startswith("pulumi/actions")]
        assert pulumi and all(s["with"]["policyPacks"] == "policies" and s["with"]["command"] == "up" for s in pulumi)


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
    assert DEPLOY["jobs"][gates].get("needs") == job


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
