"""The bootstrap program: what an environment's stack needs before its first `pulumi up`, declared once per
environment by a human with admin rights (docs/first-deploy.md).

It reads the environment's own stack file (`Pulumi.<env>.yaml`, validated exactly as `plan` validates it) for
the project, region, zone, registry and Railway ids, so the two can never disagree, and its own stack file
(`infra/bootstrap/Pulumi.<env>.yaml`) for what only it needs: the GitHub repository, the GCP project that
holds the environment's identities and key, the Grafana Cloud stack. The deploy account's roles and the
deploy token's permission groups come from the types the environment's plan declares (`access.py`).

Outputs are what CI and the stack files take (names the `ci` workflows use):
`deployServiceAccount` (deploy@PROJECT), `previewServiceAccount` (preview@PROJECT), `deployProvider` and
`previewProvider` (projects/NUMBER/locations/global/workloadIdentityPools/github/providers/...), `secretsProvider`
(the `gcpkms://` URL for `pulumi stack init --secrets-provider`), and as secrets the tokens for GitHub
environment secrets and `pulumi config set --secret` (catalogPurgeToken, cloudflareDeployToken, ...).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_gcp as gcp
import pulumiverse_grafana as grafana

from infra.bootstrap import access
from infra.bootstrap.railway import ProjectToken
from infra.model import StackModel

NAMESPACE = "bootstrap"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
POOL_ID = "github"
# GitHub's OIDC claims: https://docs.github.com/en/actions/reference/security/oidc#understanding-the-oidc-token
# (`repository`, `ref`, `environment`, `event_name`); WIF's mapping and condition are CEL over `assertion`:
# https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines#github-actions
ATTRIBUTE_MAPPING = {
    "google.subject": "assertion.sub",
    "attribute.repository": "assertion.repository",
    "attribute.ref": "assertion.ref",
    "attribute.environment": "assertion.environment",
    "attribute.event_name": "assertion.event_name",
}
STACK_APIS = ("iam.googleapis.com", "iamcredentials.googleapis.com", "sts.googleapis.com",
              "cloudkms.googleapis.com", "cloudresourcemanager.googleapis.com")
REGISTRY_API = "artifactregistry.googleapis.com"


@dataclass(frozen=True)
class BootstrapConfig:
    github_repository: str
    gcp_project: str
    kms_location: str
    grafana_cloud_stack: str | None
    grafana_cloud_region: str | None
    github_environment: str
    """The GitHub environment the deploy job of this environment runs in (prod: `production`)."""
    github_preview_environment: str
    """The read-only GitHub environment of the environment's previews, plans and drift runs (`preview-<env>`)."""


def read_config(environment: str, model: StackModel) -> BootstrapConfig:
    config = pulumi.Config(NAMESPACE)
    project = config.get("gcpProject") or (model.gcp.project if model.gcp else None)
    if project is None:
        raise ValueError(f"{NAMESPACE}:gcpProject: is required because stack {environment!r} has no "
                         "platform:gcp.project to hold its identities and secrets key")
    return BootstrapConfig(config.require("githubRepository"), project,
                           config.get("kmsLocation") or (model.gcp.region if model.gcp else "global"),
                           config.get("grafanaCloudStack"), config.get("grafanaCloudRegion"),
                           config.get("githubEnvironment") or environment,
                           config.get("githubPreviewEnvironment") or f"preview-{environment}")


def deploy_condition(repository: str, github_environment: str) -> str:
    """Only the deploy workflow of this repository's main branch, in the environment's GitHub environment, on a
    push or a manual dispatch (never a pull request, whose code is unreviewed)."""
    return (f"assertion.repository == '{repository}' && assertion.ref == 'refs/heads/main' && "
            f"assertion.environment == '{github_environment}' && "
            f"assertion.workflow_ref.startsWith('{repository}/.github/workflows/deploy.yml@refs/heads/main') && "
            "assertion.event_name in ['push', 'workflow_dispatch']")


def preview_condition(repository: str, github_environment: str) -> str:
    """This repository's jobs in the environment's read-only GitHub environment (`preview-<env>`), on any event:
    a pull request's `preview` (pull_request), `<env>-plan` on main (push, workflow_dispatch) and the drift
    refresh (schedule, workflow_dispatch) all present it (.github/workflows/; tests/test_bootstrap_identities.py
    walks them). No event or ref restriction, and that is safe: the account it reaches holds viewer roles only
    (access.PREVIEW_ROLES), the GitHub environment holds only read tokens, fork pull requests get neither its
    secrets nor an OIDC token, and only people with write access can run a workflow of this repository at all;
    the environment's deployment branches are all branches, since a pull request's ref is refs/pull/N/merge
    (docs/review.md)."""
    return f"assertion.repository == '{repository}' && assertion.environment == '{github_environment}'"


def declare(environment: str, model: StackModel, cfg: BootstrapConfig,
            planned: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    project = cfg.gcp_project
    apis = [gcp.projects.Service(f"api-{api.split('.')[0]}", project=project, service=api,
                                 disable_on_destroy=False)
            for api in (*STACK_APIS, *((REGISTRY_API,) if _artifact_registry(model) else ()))]
    after_apis = pulumi.ResourceOptions(depends_on=list(apis))

    # Workload identity federation: one pool, a provider per kind of run (#22.1). The providers' conditions
    # decide which GitHub tokens are exchanged at all; each account admits only its own provider's
    # principals (attribute.gate is a constant per provider, so a pull request's token, even one naming the
    # environment, can never act as the deploy account).
    pool = gcp.iam.WorkloadIdentityPool("github-pool", project=project, workload_identity_pool_id=POOL_ID,
                                        display_name="GitHub Actions", opts=after_apis)
    providers: dict[str, gcp.iam.WorkloadIdentityPoolProvider] = {}
    for gate, condition in (("deploy", deploy_condition(cfg.github_repository, cfg.github_environment)),
                            ("preview", preview_condition(cfg.github_repository, cfg.github_preview_environment))):
        providers[gate] = gcp.iam.WorkloadIdentityPoolProvider(
            f"github-{gate}", project=project, workload_identity_pool_id=pool.workload_identity_pool_id,
            workload_identity_pool_provider_id=f"github-{gate}", display_name=f"GitHub {gate}",
            attribute_mapping={**ATTRIBUTE_MAPPING, "attribute.gate": f"'{gate}'"},
            attribute_condition=condition, oidc={"issuer_uri": GITHUB_ISSUER})

    accounts = {gate: gcp.serviceaccount.Account(gate, project=project, account_id=gate,
                                                 display_name=f"{environment} {gate} (GitHub Actions)",
                                                 opts=after_apis)
                for gate in ("deploy", "preview")}
    for gate, account in accounts.items():
        gcp.serviceaccount.IAMMember(
            f"{gate}-federated", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
            member=pool.name.apply(lambda name, g=gate: f"principalSet://iam.googleapis.com/{name}/attribute.gate/{g}"))

    deploy_member = accounts["deploy"].email.apply(lambda e: f"serviceAccount:{e}")
    preview_member = accounts["preview"].email.apply(lambda e: f"serviceAccount:{e}")
    _deploy_roles(model, project, planned, deploy_member)
    for role in access.PREVIEW_ROLES:
        gcp.projects.IAMMember(f"preview-{role.split('/')[1]}", project=project, role=role, member=preview_member)

    # The stacks' secrets provider: `pulumi stack init --secrets-provider gcpkms://...` (docs/first-deploy.md).
    ring = gcp.kms.KeyRing("pulumi-secrets", project=project, name="pulumi", location=cfg.kms_location,
                           opts=after_apis)
    key = gcp.kms.CryptoKey("stack-secrets", name=f"stack-{environment}", key_ring=ring.id,
                            rotation_period="7776000s", opts=pulumi.ResourceOptions(protect=True))
    gcp.kms.CryptoKeyIAMMember("deploy-kms", crypto_key_id=key.id, role=access.KMS_DEPLOY_ROLE, member=deploy_member)
    # A preview decrypts the stack's config to run the program: what it can read is listed in the guide.
    gcp.kms.CryptoKeyIAMMember("preview-kms", crypto_key_id=key.id, role=access.KMS_PREVIEW_ROLE,
                               member=preview_member)

    registry = _artifact_registry(model)
    if registry is not None:
        location, repository_id = registry
        repo = gcp.artifactregistry.Repository(
            "images", project=project, location=location, repository_id=repository_id, format="DOCKER",
            description=f"{environment}: engine and telemetry images, tags immutable",
            # A content tag, once pushed, always names the same image (#22.10):
            # https://cloud.google.com/artifact-registry/docs/docker/manage-images#immutable_tags
            docker_config={"immutable_tags": True}, opts=after_apis)
        gcp.artifactregistry.RepositoryIamMember(
            "deploy-images", project=project, location=location, repository=repo.repository_id,
            role=access.REPOSITORY_ROLE[0], member=deploy_member)
        gcp.artifactregistry.RepositoryIamMember(
            "preview-images", project=project, location=location, repository=repo.repository_id,
            role="roles/artifactregistry.reader", member=preview_member)

    _cloudflare_tokens(environment, model, planned)
    _grafana_tokens(environment, model, cfg)
    if model.railway is not None:
        token = ProjectToken("railway-project-token", model.railway.project_id, model.railway.environment_id,
                             f"platform {environment} deploy")
        pulumi.export("railwayProjectToken", pulumi.Output.secret(token.token))
        # The metrics exporter's own project token (`platform:railwayMetricsToken`): a running service never holds
        # the deploy's, so revoking one does not stop the other (components/observability/cloud.py).
        metrics = ProjectToken("railway-metrics-token", model.railway.project_id, model.railway.environment_id,
                               f"platform {environment} metrics")
        pulumi.export("railwayMetricsToken", pulumi.Output.secret(metrics.token))

    pulumi.export("deployServiceAccount", accounts["deploy"].email)
    pulumi.export("previewServiceAccount", accounts["preview"].email)
    pulumi.export("deployProvider", providers["deploy"].name)
    pulumi.export("previewProvider", providers["preview"].name)
    pulumi.export("secretsProvider", key.id.apply(lambda i: f"gcpkms://{i}"))


def _artifact_registry(model: StackModel) -> tuple[str, str] | None:
    """(location, repository id) of an Artifact Registry `platform:registry` (`LOCATION-docker.pkg.dev`)."""
    if model.registry is None or not model.registry.server.endswith("-docker.pkg.dev"):
        return None
    return model.registry.server.removesuffix("-docker.pkg.dev"), model.registry.repository.split("/")[-1]


def _deploy_roles(model: StackModel, project: str, planned: Sequence[tuple[str, Mapping[str, Any]]],
                  member: pulumi.Output[str]) -> None:
    roles = access.gcp_roles(planned)
    if not roles:
        return
    roles.setdefault(access.RUNS_AS_ROLE[0], [])
    granted = sorted({str(inputs.get("role")) for t, inputs in planned if t == "gcp:projects/iAMMember:IAMMember"})
    for role in sorted(roles):
        condition: gcp.projects.IAMMemberConditionArgsDict | None = None
        if role == "roles/resourcemanager.projectIamAdmin":
            # Only the roles the plan grants, never Owner or its own
            # (https://cloud.google.com/iam/docs/setting-limits-on-granting-roles).
            condition = {"title": "only-the-stacks-grants",
                         "expression": "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', [])"
                                       f".hasOnly({json.dumps(granted)})"}
        if role.startswith(access.CUSTOM_PREFIX):
            role_id = role.removeprefix(access.CUSTOM_PREFIX)
            title, permissions = access.CUSTOM_ROLES[role_id]
            custom = gcp.projects.IAMCustomRole(f"role-{role_id}", project=project, role_id=role_id, title=title,
                                                permissions=list(permissions), stage="GA")
            gcp.projects.IAMMember(f"deploy-{role_id}", project=project, role=custom.name, member=member)
            continue
        gcp.projects.IAMMember(f"deploy-{role.split('/')[1]}", project=project, role=role, member=member,
                               condition=condition)


def _group_ids(names: Sequence[str], scope: str) -> list[dict[str, str]]:
    """Permission group ids by name, as the API lists them (GET /user/tokens/permission_groups?name=&scope=)."""
    ids: list[dict[str, str]] = []
    for name in sorted(names):
        found = cloudflare.get_api_token_permission_groups_list(name=urllib.parse.quote(name), scope=scope)
        # The result items are dicts whose `id` the SDK exposes as an untyped property.
        ids += [{"id": str(cast(Any, r).id)} for r in found.results]
    return ids


def _cloudflare_tokens(environment: str, model: StackModel, planned: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Created with the admin's token (`cloudflare:apiToken` of the bootstrap stack, API Tokens Write), which
    stays here: neither token below can create tokens (#22.3)."""
    zone = model.zone
    groups = access.cloudflare_groups(planned)
    expires = f"{zone.tokens_expire_on}T00:00:00Z"
    zone_scope = json.dumps({f"com.cloudflare.api.account.zone.{zone.zone_id}": "*"}, separators=(",", ":"))
    policies: list[Any] = [{"effect": "allow", "resources": zone_scope,
                            "permission_groups": _group_ids(sorted(groups[access.ZONE]),
                                                            "com.cloudflare.api.account.zone")}]
    if groups[access.ACCOUNT]:
        policies.append({"effect": "allow",
                         "resources": json.dumps({f"com.cloudflare.api.account.{zone.account_id}": "*"},
                                                 separators=(",", ":")),
                         "permission_groups": _group_ids(sorted(groups[access.ACCOUNT]), "com.cloudflare.api.account")})
    deploy = cloudflare.ApiToken("cloudflare-deploy", name=f"platform {environment} deploy ({zone.name})",
                                 policies=policies, expires_on=expires,
                                 opts=pulumi.ResourceOptions(additional_secret_outputs=["value"]))
    # The engine purges its tenants' catalogs with this one: this zone, Cache Purge only (S3, C5).
    purge = cloudflare.ApiToken("catalog-purge-token", name=f"platform catalog purge ({zone.name})",
                                policies=[{"effect": "allow", "resources": zone_scope,
                                           "permission_groups": _group_ids(access.CATALOG_PURGE_GROUPS,
                                                                           "com.cloudflare.api.account.zone")}],
                                expires_on=expires, opts=pulumi.ResourceOptions(additional_secret_outputs=["value"]))
    pulumi.export("cloudflareDeployToken", pulumi.Output.secret(deploy.value))
    pulumi.export("catalogPurgeToken", pulumi.Output.secret(purge.value))


def _grafana_tokens(environment: str, model: StackModel, cfg: BootstrapConfig) -> None:
    """Two tokens, two purposes: the agents' write-only access policy token (metrics, logs, traces in:
    `platform:grafanaCloudToken`) and the stack service account the program manages alerting and dashboards
    with (`grafana:auth`, role Editor). https://grafana.com/docs/grafana-cloud/security-and-account-management/
    authentication-and-permissions/access-policies/#scopes"""
    if cfg.grafana_cloud_stack is None or cfg.grafana_cloud_region is None:
        return
    stack = grafana.cloud.get_stack(slug=cfg.grafana_cloud_stack)
    if model.grafana_cloud is not None:
        policy = grafana.cloud.AccessPolicy(
            "telemetry-write", name=f"platform-{environment}-telemetry", region=cfg.grafana_cloud_region,
            scopes=["metrics:write", "logs:write", "traces:write"],
            realms=[{"type": "stack", "identifier": stack.id}])
        token = grafana.cloud.AccessPolicyToken(
            "telemetry-write-token", name=f"platform-{environment}-telemetry", region=cfg.grafana_cloud_region,
            access_policy_id=policy.policy_id, expires_at=f"{model.zone.tokens_expire_on}T00:00:00Z")
        pulumi.export("grafanaCloudToken", pulumi.Output.secret(token.token))
    account = grafana.cloud.StackServiceAccount("platform-deploy", stack_slug=cfg.grafana_cloud_stack,
                                                name=f"platform-{environment}-deploy", role="Editor")
    sa_token = grafana.cloud.StackServiceAccountToken("platform-deploy-token", stack_slug=cfg.grafana_cloud_stack,
                                                      service_account_id=account.id, name="pulumi")
    pulumi.export("grafanaAuth", pulumi.Output.secret(sa_token.key))
