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
    return yaml.safe_dump(value)


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
