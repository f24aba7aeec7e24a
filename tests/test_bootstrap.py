"""#25.1, #22.3: the bootstrap program (infra/bootstrap) plans offline for each environment, and what it grants
is what the environment's stack needs: deploy roles and deploy-token permission groups derived from the
stack's plan (a planned type nobody reviewed stops it), deploy only from main in the environment, previews
read-only, tags immutable, no token that can mint tokens."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from infra.bootstrap import access, planned_of
from infra.bootstrap.plan import bootstrap_plan
from infra.bootstrap.railway import PROJECT_TOKEN_CREATE
from infra.config import load_model
from infra.plan import Plan, PlannedResource
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, STACKS, CliResult, stack_document

REPOSITORY = "acme-commerce/platform"


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {stack: bootstrap_plan(stack) for stack in STACKS}


def _one(plan: Plan, name: str) -> PlannedResource:
    [found] = [r for r in plan.resources if r.name == name and r.custom]
    return found


def _stack_planned(stack: str) -> list[tuple[str, dict[str, object]]]:
    raw = read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack)
    return [(t, dict(i)) for t, i in planned_of(load_model(raw), raw, stack)]


def test_bootstrap_plan_runs_offline_for_prod_and_names_what_ci_uses(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("bootstrap-plan", "prod")

    assert result.code == 0, result.err
    assert "output deployServiceAccount: deploy@acme-commerce-prod.iam.gserviceaccount.com" in result.out
    assert "output previewServiceAccount: preview@acme-commerce-prod.iam.gserviceaccount.com" in result.out
    assert "workloadIdentityPools/github/providers/github-deploy" in result.out
    assert "output secretsProvider: gcpkms://projects/acme-commerce-prod/" in result.out


@pytest.mark.parametrize("stack", STACKS)
def test_deploy_is_main_and_the_environment_only_and_preview_is_pull_requests(stack: str, plans: dict[str, Plan]) -> None:
    plan = plans[stack]
    deploy, preview = _one(plan, "github-deploy").inputs, _one(plan, "github-preview").inputs

    assert deploy["oidc"]["issuerUri"] == preview["oidc"]["issuerUri"] == "https://token.actions.githubusercontent.com"
    condition = deploy["attributeCondition"]
    github_environment = "production" if stack == "prod" else stack  # as .github/workflows/deploy.yml names them
    for clause in (f"assertion.repository == '{REPOSITORY}'", "assertion.ref == 'refs/heads/main'",
                   f"assertion.environment == '{github_environment}'",
                   f"assertion.workflow_ref.startsWith('{REPOSITORY}/.github/workflows/deploy.yml@refs/heads/main')"):
        assert clause in condition
    assert "pull_request" not in condition
    # The preview provider admits the read-only environment `preview-<stack>` on any event (a pull request's
    # preview, `<stack>-plan` on main, drift): tests/test_bootstrap_identities.py walks the workflows against it.
    assert preview["attributeCondition"] == (f"assertion.repository == '{REPOSITORY}' && "
                                             f"assertion.environment == 'preview-{stack}'")
    # A pull request's token, exchanged through the preview provider, carries gate=preview whatever it claims,
    # and only gate=deploy principals may act as the deploy account.
    assert deploy["attributeMapping"]["attribute.gate"] == "'deploy'"
    assert preview["attributeMapping"]["attribute.gate"] == "'preview'"
    for gate in ("deploy", "preview"):
        binding = _one(plan, f"{gate}-federated").inputs
        assert binding["role"] == "roles/iam.workloadIdentityUser"
        assert binding["member"].endswith(f"/workloadIdentityPools/github/attribute.gate/{gate}")
        assert binding["serviceAccountId"] == _one(plan, gate).name or binding["serviceAccountId"]


def test_prod_deploy_roles_are_derived_from_every_gcp_type_prod_declares(plans: dict[str, Plan]) -> None:
    planned = _stack_planned("prod")
    gcp_types = {t for t, _ in planned if t.startswith("gcp:")}
    granted = {r.inputs["role"] for r in plans["prod"].resources
               if r.type == "gcp:projects/iAMMember:IAMMember" and r.name.startswith("deploy-")}

    assert gcp_types, "prod declares GCP resources"
    # a custom role is granted by its name in the project (projects/P/roles/ID)
    needed = {access.GCP_DEPLOY_ROLES[t][0].replace(access.CUSTOM_PREFIX, "projects/acme-commerce-prod/roles/")
              for t in gcp_types} - {""}
    assert granted == needed | {access.RUNS_AS_ROLE[0]}
    assert "roles/owner" not in granted and "roles/editor" not in granted
    [iam_admin] = [r for r in plans["prod"].resources if r.name == "deploy-resourcemanager.projectIamAdmin"]
    allowed = {str(i.get("role")) for t, i in planned if t == "gcp:projects/iAMMember:IAMMember"}
    assert iam_admin.inputs["condition"]["expression"].endswith(f".hasOnly({json.dumps(sorted(allowed))})")


def test_a_type_nobody_reviewed_stops_the_bootstrap() -> None:
    with pytest.raises(access.UnreviewedType, match="gcp:compute/vpnTunnel:VPNTunnel"):
        access.gcp_roles([("gcp:compute/vpnTunnel:VPNTunnel", {})])
    with pytest.raises(access.UnreviewedType, match="http_request_origin"):
        access.cloudflare_groups([("cloudflare:index/ruleset:Ruleset", {"phase": "http_request_origin"})])
    with pytest.raises(access.UnreviewedType, match="apiToken"):  # a stack never creates tokens again (#22.3)
        access.cloudflare_groups([("cloudflare:index/apiToken:ApiToken", {})])


@pytest.mark.parametrize("stack", STACKS)
def test_the_preview_account_gets_read_only_roles(stack: str, plans: dict[str, Plan]) -> None:
    roles = {r.inputs["role"] for r in plans[stack].resources
             if r.name.startswith("preview-") and "role" in r.inputs and r.name != "preview-federated"}

    assert "roles/viewer" in roles
    for role in roles:
        assert not any(word in role.lower() for word in ("admin", "editor", "writer", "encrypter", "owner", "user")), role


@pytest.mark.parametrize("stack", STACKS)
def test_the_deploy_token_reaches_this_environment_only_and_cannot_mint_tokens(stack: str, plans: dict[str, Plan]) -> None:
    zone = stack_document(stack)["config"]["platform:zone"]
    token = _one(plans[stack], "cloudflare-deploy").inputs
    planned = _stack_planned(stack)
    groups = access.cloudflare_groups(planned)

    scopes = [json.loads(p["resources"]) for p in token["policies"]]
    assert scopes[0] == {f"com.cloudflare.api.account.zone.{zone['zoneId']}": "*"}
    assert scopes[1:] == ([{f"com.cloudflare.api.account.{zone['accountId']}": "*"}] if groups[access.ACCOUNT] else [])
    assert not (groups[access.ZONE] | groups[access.ACCOUNT]) & access.FORBIDDEN_GROUPS
    assert token["expiresOn"] == f"{zone['tokensExpireOn']}T00:00:00Z"
    # Each environment's token names its own zone only: integration's cannot reach prod's.
    others = {stack_document(s)["config"]["platform:zone"]["zoneId"] for s in STACKS if s != stack}
    assert not any(z in json.dumps(scopes) for z in others)


def test_prod_images_go_to_a_repository_whose_tags_cannot_be_overwritten(plans: dict[str, Plan]) -> None:
    registry = stack_document("prod")["config"]["platform:registry"]
    repo = _one(plans["prod"], "images").inputs

    assert repo["format"] == "DOCKER"
    assert repo["dockerConfig"] == {"immutableTags": True}
    assert f"{repo['location']}-docker.pkg.dev" == registry["server"]
    assert f"{repo['project']}/{repo['repositoryId']}" == registry["repository"]


def test_grafana_tokens_one_write_only_for_agents_one_for_the_program(plans: dict[str, Plan]) -> None:
    policy = _one(plans["prod"], "telemetry-write").inputs
    account = _one(plans["prod"], "platform-deploy").inputs

    assert sorted(policy["scopes"]) == ["logs:write", "metrics:write", "traces:write"]
    assert [r["type"] for r in policy["realms"]] == ["stack"]
    assert account["role"] == "Editor"
    assert {"grafanaCloudToken", "grafanaAuth"} <= set(plans["prod"].outputs)


def test_railway_gets_a_project_token_for_its_environment_never_an_account_token(plans: dict[str, Plan]) -> None:
    railway = stack_document("staging")["config"]["platform:railway"]
    token = _one(plans["staging"], "railway-project-token").inputs
    schema = build_schema((PROJECT_DIR / "tests/schemas/railway-public-api.graphql").read_text(), assume_valid=True)

    assert (token["project_id"], token["environment_id"]) == (railway["projectId"], railway["environmentId"])
    assert validate(schema, parse(PROJECT_TOKEN_CREATE)) == []
    assert plans["staging"].outputs["railwayProjectToken"].startswith("[secret")
    # the metrics exporter's own token (platform:railwayMetricsToken), not the deploy's
    metrics = _one(plans["staging"], "railway-metrics-token").inputs
    assert (metrics["project_id"], metrics["environment_id"]) == (railway["projectId"], railway["environmentId"])
    assert metrics["name"] != token["name"]
    assert plans["staging"].outputs["railwayMetricsToken"].startswith("[secret")


def test_the_bootstrap_project_file_has_its_own_name_and_the_repositorys_virtualenv() -> None:
    import yaml

    project = yaml.safe_load((PROJECT_DIR / "infra/bootstrap/Pulumi.yaml").read_text())
    assert project["name"] == "platform-bootstrap"
    venv = Path(PROJECT_DIR / "infra/bootstrap" / project["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == (PROJECT_DIR / ".venv").resolve()
