"""The bootstrap's GitHub identities meet the workflows that present them (audit of #25.1 / #22.1).

- Every job of `.github/workflows/*.yml` that authenticates to GCP is walked with the OIDC claims GitHub would
  put in its token (repository, ref, environment, event_name, workflow_ref: docs.github.com/en/actions/reference/
  security/oidc#understanding-the-oidc-token) for every event its workflow runs it on, and the attribute condition
  of the provider it names (`vars.GCP_PREVIEW_WORKLOAD_IDENTITY_PROVIDER` or `vars.GCP_WORKLOAD_IDENTITY_PROVIDER`),
  as the stack's bootstrap plans it, is evaluated on them: each must be admitted.
- A pull request can never pass the deploy provider's condition.
- No project-level grant to the deploy account can set a service account's IAM policy (which would let it grant
  anyone impersonation of any account, itself included: cloud.google.com/iam/docs/service-account-permissions).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, cast

import pytest
import yaml

from infra.bootstrap.plan import bootstrap_plan
from infra.plan import Plan
from tests.conftest import PROJECT_DIR

REPOSITORY = "acme-commerce/platform"  # infra/bootstrap/Pulumi.<env>.yaml bootstrap:githubRepository
WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
PROVIDER_VARS = {"GCP_PREVIEW_WORKLOAD_IDENTITY_PROVIDER": "github-preview",
                 "GCP_WORKLOAD_IDENTITY_PROVIDER": "github-deploy"}


def evaluate(condition: str, claims: Mapping[str, str]) -> bool:
    """The conjunctions of CEL the bootstrap writes: `assertion.X == 'v'`, `assertion.X.startsWith('v')`,
    `assertion.X in ['a', 'b']` (https://cloud.google.com/iam/docs/workload-identity-federation#conditions).
    Anything else is refused, so a new form of clause cannot pass unevaluated."""
    for clause in (c.strip() for c in condition.split("&&")):
        if m := re.fullmatch(r"assertion\.(\w+) == '([^']*)'", clause):
            ok = claims.get(m.group(1)) == m.group(2)
        elif m := re.fullmatch(r"assertion\.(\w+)\.startsWith\('([^']*)'\)", clause):
            ok = claims.get(m.group(1), "").startswith(m.group(2))
        elif m := re.fullmatch(r"assertion\.(\w+) in \[(.*)\]", clause):
            ok = claims.get(m.group(1)) in re.findall(r"'([^']*)'", m.group(2))
        else:
            raise AssertionError(f"a clause this evaluator does not know: {clause!r}")
        if not ok:
            return False
    return True


def _stack_of(environment: str) -> str:
    return {"production": "prod"}.get(environment, environment.removeprefix("preview-"))


def _events(document: dict[Any, Any]) -> list[str]:
    on = document.get("on", document.get(True))  # PyYAML reads the key `on` as True
    if isinstance(on, dict | list):
        return [str(event) for event in cast(dict[str, Any] | list[str], on)]
    return [str(on)]


def gcp_logins() -> Iterator[tuple[str, str, str, str, str]]:
    """(workflow file, job, stack, GitHub environment, provider gate) of each job that logs in to GCP."""
    for path in sorted(WORKFLOWS.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for name, job in document["jobs"].items():
            stacks = job.get("strategy", {}).get("matrix", {}).get("stack", [None])
            for stack in stacks:
                environment = str(job.get("environment", "")).replace("${{ matrix.stack }}", str(stack))
                for step in job.get("steps", []):
                    if not str(step.get("uses", "")).startswith("google-github-actions/auth@"):
                        continue
                    only = re.search(r"matrix\.stack == '(\w+)'", str(step.get("if", "")))
                    if only and only.group(1) != stack:
                        continue
                    provider = re.search(r"vars\.(\w+)", str(step["with"]["workload_identity_provider"]))
                    assert provider and provider.group(1) in PROVIDER_VARS, (path.name, name, step)
                    yield path.name, name, _stack_of(environment), environment, PROVIDER_VARS[provider.group(1)]


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {stack: bootstrap_plan(stack) for stack in {login[2] for login in gcp_logins()}}


def _condition(plan: Plan, gate: str) -> str:
    [provider] = [r for r in plan.resources if r.name == gate and r.custom]
    return str(provider.inputs["attributeCondition"])


def _claims(workflow: str, environment: str, event: str) -> dict[str, str]:
    ref = "refs/pull/7/merge" if event.startswith("pull_request") else "refs/heads/main"
    return {"repository": REPOSITORY, "ref": ref, "environment": environment, "event_name": event,
            "workflow_ref": f"{REPOSITORY}/.github/workflows/{workflow}@{ref}"}


def test_the_workflows_log_in_with_both_providers() -> None:
    logins = list(gcp_logins())
    assert {(w, j, g) for w, j, _, _, g in logins} >= {
        ("pull-request.yml", "preview", "github-preview"), ("deploy.yml", "prod-plan", "github-preview"),
        ("drift.yml", "refresh", "github-preview"), ("deploy.yml", "prod", "github-deploy")}


@pytest.mark.parametrize("login", list(gcp_logins()), ids=lambda login: f"{login[0]}:{login[1]}:{login[2]}")
def test_every_job_that_logs_in_to_gcp_is_admitted_by_its_providers_condition(
        login: tuple[str, str, str, str, str], plans: dict[str, Plan]) -> None:
    workflow, job, stack, environment, gate = login
    condition = _condition(plans[stack], gate)
    for event in _events(yaml.safe_load((WORKFLOWS / workflow).read_text())):
        assert evaluate(condition, _claims(workflow, environment, event)), \
            f"{workflow} job {job} ({event}, environment {environment!r}) is refused by {gate}: {condition}"


def test_a_pull_request_never_passes_the_deploy_condition(plans: dict[str, Plan]) -> None:
    condition = _condition(plans["prod"], "github-deploy")
    for environment in ("production", "preview-prod"):
        assert not evaluate(condition, _claims("pull-request.yml", environment, "pull_request"))
        # nor a push of another workflow file on main, naming the deploy environment
        assert not evaluate(condition, _claims("drift.yml", environment, "push"))


def test_the_preview_condition_admits_its_own_environment_only(plans: dict[str, Plan]) -> None:
    condition = _condition(plans["prod"], "github-preview")
    assert not evaluate(condition, _claims("pull-request.yml", "preview-staging", "pull_request"))
    assert not evaluate(condition, {**_claims("pull-request.yml", "preview-prod", "pull_request"),
                                    "repository": "someone/fork"})


# Predefined roles that include iam.serviceAccounts.setIamPolicy, from the roles reference
# (https://cloud.google.com/iam/docs/roles-permissions/iam: Service Account Admin "Create and manage service
# accounts", includes iam.serviceAccounts.setIamPolicy; https://cloud.google.com/iam/docs/roles-permissions/
# resourcemanager and /iam/docs/understanding-roles#basic: Owner; Security Admin "get and set any IAM policy").
SETS_SERVICE_ACCOUNT_POLICIES = frozenset({"roles/owner", "roles/iam.serviceAccountAdmin", "roles/iam.securityAdmin"})
# roles/iam.serviceAccountUser: iam.serviceAccounts.actAs, .get, .list, resourcemanager.projects.get, .list
# (https://cloud.google.com/iam/docs/service-account-permissions#user-role): no setIamPolicy.


def test_no_project_grant_to_the_deploy_account_can_set_a_service_accounts_policy(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    grants = [r for r in plan.resources if r.type == "gcp:projects/iAMMember:IAMMember" and r.name.startswith("deploy-")]
    assert grants
    checked_custom = False
    for grant in grants:
        role = str(grant.inputs["role"])
        assert role not in SETS_SERVICE_ACCOUNT_POLICIES, role
        if role.startswith("projects/"):
            [defined] = [r for r in plan.resources if r.type == "gcp:projects/iAMCustomRole:IAMCustomRole"
                         and role.endswith("/roles/" + str(r.inputs["roleId"]))]
            assert "iam.serviceAccounts.setIamPolicy" not in defined.inputs["permissions"]
            assert "iam.serviceAccounts.create" in defined.inputs["permissions"]
            checked_custom = True
        if role == "roles/resourcemanager.projectIamAdmin":
            # what it may grant is the stack's own roles, none of which sets an account's policy
            allowed = set(re.findall(r'"([^"]+)"', str(grant.inputs["condition"]["expression"])))
            assert allowed and not allowed & SETS_SERVICE_ACCOUNT_POLICIES
    assert checked_custom, "prod declares service accounts: the deploy account creates them through a custom role"
