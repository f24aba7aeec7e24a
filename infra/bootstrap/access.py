"""What each environment's deploy and preview identities may do, derived from what its stack declares.

Every resource type the stack's plan declares maps to the GCP role (or Cloudflare permission group) that
creating, changing and deleting it needs, with the reason. `tests/test_bootstrap.py` plans each committed
stack and fails when a planned type has no entry here, so a new resource type cannot reach a deploy that
its identity cannot make (nor widen that identity unreviewed).

Sources: GCP predefined roles, https://cloud.google.com/iam/docs/understanding-roles; granting roles with a
condition on the roles granted, https://cloud.google.com/iam/docs/setting-limits-on-granting-roles;
Cloudflare permission groups, https://developers.cloudflare.com/fundamentals/api/reference/permissions/ and,
per ruleset phase, https://developers.cloudflare.com/ruleset-engine/basic-operations/add-rule-phase-rulesets/.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CUSTOM_PREFIX = "custom:"
"""A role the bootstrap defines in the project (gcp.projects.IAMCustomRole) from CUSTOM_ROLES."""

# roles/iam.serviceAccountAdmin would let the deploy account set any service account's IAM policy
# (iam.serviceAccounts.setIamPolicy), i.e. grant anyone, itself included, roles/iam.serviceAccountTokenCreator or
# serviceAccountUser on any account, the deploy account among them ("Service Account Admin ... get and set the
# IAM policy on a service account", https://cloud.google.com/iam/docs/service-account-permissions). The stack sets
# no service account's policy (no gcp.serviceaccount.IAM* in components/), so it gets the service-account
# permissions of that role minus getIamPolicy/setIamPolicy (role's permission list:
# https://cloud.google.com/iam/docs/roles-permissions/iam#iam.serviceAccountAdmin). Each is supported in custom
# roles (https://cloud.google.com/iam/docs/custom-roles-permissions-support).
SERVICE_ACCOUNT_MANAGER = (
    "iam.serviceAccounts.create", "iam.serviceAccounts.delete", "iam.serviceAccounts.disable",
    "iam.serviceAccounts.enable", "iam.serviceAccounts.get", "iam.serviceAccounts.list",
    "iam.serviceAccounts.undelete", "iam.serviceAccounts.update", "resourcemanager.projects.get")
CUSTOM_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "platformServiceAccountManager": ("Platform service account manager (no IAM policies)", SERVICE_ACCOUNT_MANAGER),
}

# GCP resource type -> (project-level role of the deploy account, why).
GCP_DEPLOY_ROLES: dict[str, tuple[str, str]] = {
    "gcp:projects/service:Service": (
        "roles/serviceusage.serviceUsageAdmin", "the stack enables the APIs it uses (run, compute, redis, ...)"),
    "gcp:serviceaccount/account:Account": (
        CUSTOM_PREFIX + "platformServiceAccountManager",
        "the engine's, PocketBase VM's, restore's and telemetry's own runtime accounts: create, update, delete, "
        "never their IAM policies (SERVICE_ACCOUNT_MANAGER)"),
    "gcp:projects/iAMMember:IAMMember": (
        "roles/resourcemanager.projectIamAdmin",
        "project grants to those runtime accounts (log and metric writers), limited by a condition to the "
        "roles the plan grants"),
    # Audit configs are part of the project's IAM policy (Policy.auditConfigs; gcp.projects.IAMAuditConfig
    # "Updates the IAM policy to enable audit logging for the given service": it calls projects.setIamPolicy,
    # https://cloud.google.com/resource-manager/reference/rest/v1/projects/setIamPolicy, updateMask
    # `bindings,etag,auditConfigs`), so the role that sets that policy covers it. The condition on that grant
    # limits the *roles* a change may grant or revoke (iam.googleapis.com/modifiedGrantsByRole); a change to
    # audit configs alone modifies no grant, so the condition admits it.
    "gcp:projects/iAMAuditConfig:IAMAuditConfig": (
        "roles/resourcemanager.projectIamAdmin", "Data Access audit logs of the services holding tenant data"),
    "gcp:cloudrunv2/service:Service": ("roles/run.admin", "the engine's Cloud Run services (primary, standby)"),
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": ("roles/run.admin", "who may invoke the engine"),
    "gcp:compute/instance:Instance": ("roles/compute.instanceAdmin.v1", "PocketBase's VM (and its standby)"),
    "gcp:compute/disk:Disk": ("roles/compute.instanceAdmin.v1", "PocketBase's persistent disk"),
    "gcp:compute/network:Network": ("roles/compute.networkAdmin", "the private network"),
    "gcp:compute/subnetwork:Subnetwork": ("roles/compute.networkAdmin", "the engine's and the database's subnets"),
    "gcp:compute/router:Router": ("roles/compute.networkAdmin", "Cloud NAT's router"),
    "gcp:compute/routerNat:RouterNat": ("roles/compute.networkAdmin", "egress for VMs without external addresses"),
    "gcp:compute/address:Address": ("roles/compute.networkAdmin", "PocketBase's internal address"),
    "gcp:compute/globalAddress:GlobalAddress": ("roles/compute.networkAdmin", "the load balancer's address"),
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": ("roles/compute.networkAdmin", "the load balancer"),
    "gcp:compute/backendService:BackendService": ("roles/compute.networkAdmin", "the load balancer's backend"),
    "gcp:compute/uRLMap:URLMap": ("roles/compute.networkAdmin", "the load balancer's URL map"),
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": ("roles/compute.networkAdmin", "the HTTPS proxy"),
    "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup": (
        "roles/compute.networkAdmin", "the serverless NEGs in front of Cloud Run"),
    "gcp:compute/firewall:Firewall": ("roles/compute.securityAdmin", "firewall rules of the private network"),
    "gcp:compute/securityPolicy:SecurityPolicy": ("roles/compute.securityAdmin", "Cloud Armor (edge only)"),
    "gcp:compute/sSLPolicy:SSLPolicy": ("roles/compute.securityAdmin", "the load balancer's TLS policy"),
    "gcp:certificatemanager/certificate:Certificate": ("roles/certificatemanager.editor", "the origin certificate"),
    "gcp:certificatemanager/certificateMap:CertificateMap": ("roles/certificatemanager.editor", "its map"),
    "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry": ("roles/certificatemanager.editor", "its entry"),
    "gcp:certificatemanager/dnsAuthorization:DnsAuthorization": (
        "roles/certificatemanager.editor", "the DNS authorization of the managed certificate"),
    "gcp:logging/projectBucketConfig:ProjectBucketConfig": (
        "roles/logging.configWriter", "the log bucket's retention (S5)"),
    "gcp:redis/instance:Instance": ("roles/redis.admin", "Memorystore"),
    "gcp:secretmanager/secret:Secret": ("roles/secretmanager.admin", "secrets the services read at start"),
    "gcp:secretmanager/secretVersion:SecretVersion": ("roles/secretmanager.admin", "their values"),
    "gcp:secretmanager/secretIamMember:SecretIamMember": ("roles/secretmanager.admin", "who may read each secret"),
    "gcp:storage/bucket:Bucket": ("roles/storage.admin", "PocketBase's backup and replica buckets"),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ("roles/storage.admin", "who may write them"),
    "gcp:storage/hmacKey:HmacKey": ("roles/storage.hmacKeyAdmin", "Litestream's and the backups' S3 key"),
    # Granted on the repository the bootstrap declares, not on the project (see REPOSITORY_ROLE).
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": (
        "", "who may pull the images: covered by the repository-level role below"),
}

RUNS_AS_ROLE = ("roles/iam.serviceAccountUser",
                "a Cloud Run service or VM that runs as a runtime account needs its deployer to act as that account "
                "(iam.serviceAccounts.actAs, get, list: no setIamPolicy, so it cannot grant impersonation; "
                "https://cloud.google.com/iam/docs/service-account-permissions#user-role)")
REPOSITORY_ROLE = ("roles/artifactregistry.repoAdmin",
                   "push the engine's and telemetry images (docker:index/image:Image) and grant pulls on them, on "
                   "this one repository")
KMS_DEPLOY_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
KMS_PREVIEW_ROLE = "roles/cloudkms.cryptoKeyDecrypter"
PREVIEW_ROLES: dict[str, str] = {
    "roles/viewer": "read every resource's configuration to diff it (no secret payloads, no data)",
    "roles/iam.securityReviewer": "read the IAM policies the stack's grants live in",
}

# Cloudflare: (resource type, ruleset phase or "") -> (permission group name, scope, why).
ZONE, ACCOUNT = "zone", "account"
CLOUDFLARE_DEPLOY_GROUPS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("cloudflare:index/zoneSetting:ZoneSetting", ""): ("Zone Settings Write", ZONE, "TLS settings, HSTS"),
    ("cloudflare:index/dnsRecord:DnsRecord", ""): ("DNS Write", ZONE, "api, tenant and SaaS records"),
    ("cloudflare:index/customHostname:CustomHostname", ""): (
        "SSL and Certificates Write", ZONE, "tenants' own domains (Cloudflare for SaaS)"),
    ("cloudflare:index/customHostnameFallbackOrigin:CustomHostnameFallbackOrigin", ""): (
        "SSL and Certificates Write", ZONE, "the SaaS fallback origin"),
    ("cloudflare:index/ruleset:Ruleset", "http_request_firewall_managed"): ("Zone WAF Write", ZONE, "managed WAF"),
    ("cloudflare:index/ruleset:Ruleset", "http_request_firewall_custom"): ("Zone WAF Write", ZONE, "custom rules"),
    ("cloudflare:index/ruleset:Ruleset", "http_ratelimit"): ("Zone WAF Write", ZONE, "rate limits"),
    ("cloudflare:index/ruleset:Ruleset", "http_request_cache_settings"): (
        "Cache Settings Write", ZONE, "cache rules"),
    ("cloudflare:index/ruleset:Ruleset", "http_config_settings"): ("Config Settings Write", ZONE, "config rules"),
    ("cloudflare:index/ruleset:Ruleset", "http_request_dynamic_redirect"): (
        "Dynamic URL Redirects Write", ZONE, "the HTTPS redirect"),
    ("cloudflare:index/ruleset:Ruleset", "http_request_late_transform"): (
        "Zone Transform Rules Write", ZONE, "the origin-auth request header"),
    ("cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared", ""): (
        "Cloudflare Tunnel Write", ACCOUNT, "integration's tunnel to the Docker host"),
    ("cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig", ""): (
        "Cloudflare Tunnel Write", ACCOUNT, "its routes"),
    # integration's Grafana behind Cloudflare Access (#22 item 11); permission group names as Cloudflare lists them
    # (developers.cloudflare.com/fundamentals/api/reference/permissions/: "Access: Apps and Policies Write",
    # "Access: Service Tokens Write"), looked up by name at apply like the others.
    ("cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication", ""): (
        "Access: Apps and Policies Write", ACCOUNT, "the Access application in front of Grafana"),
    ("cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy", ""): (
        "Access: Apps and Policies Write", ACCOUNT, "who may reach Grafana"),
    ("cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken", ""): (
        "Access: Service Tokens Write", ACCOUNT, "the Grafana provider's service token"),
}
ALWAYS_ZONE_GROUPS = ("Zone Read",)  # every zone-scoped resource reads its zone first
FORBIDDEN_GROUPS = frozenset({"API Tokens Write", "API Tokens Edit", "Account Settings Write"})
"""#22.3: a deploy token that can mint tokens can mint one for any zone: never in a deploy token."""

CATALOG_PURGE_GROUPS = ("Cache Purge",)


def _key(resource_type: str, inputs: Mapping[str, Any]) -> tuple[str, str]:
    phase = inputs.get("phase") if resource_type == "cloudflare:index/ruleset:Ruleset" else ""
    return resource_type, str(phase or "")


class UnreviewedType(Exception):
    def __init__(self, missing: list[str]) -> None:
        super().__init__("no deploy role or permission group reviewed for: " + ", ".join(missing))
        self.missing = missing


def gcp_roles(planned: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, list[str]]:
    """role -> the planned GCP types that need it; UnreviewedType for a GCP type with no entry."""
    roles: dict[str, list[str]] = {}
    missing: list[str] = []
    for resource_type, _ in planned:
        if not resource_type.startswith("gcp:"):
            continue
        entry = GCP_DEPLOY_ROLES.get(resource_type)
        if entry is None:
            missing.append(resource_type)
        elif entry[0]:
            roles.setdefault(entry[0], [])
            if resource_type not in roles[entry[0]]:
                roles[entry[0]].append(resource_type)
    if missing:
        raise UnreviewedType(sorted(set(missing)))
    return roles


def cloudflare_groups(planned: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, set[str]]:
    """scope (zone/account) -> permission group names; UnreviewedType for a Cloudflare type or phase with no
    entry. The stack's own tokens are not deployed by it any more (the bootstrap creates them): an ApiToken in
    a stack's plan is unreviewed too."""
    groups: dict[str, set[str]] = {ZONE: set(ALWAYS_ZONE_GROUPS), ACCOUNT: set()}
    missing: list[str] = []
    for resource_type, inputs in planned:
        if not resource_type.startswith("cloudflare:"):
            continue
        entry = CLOUDFLARE_DEPLOY_GROUPS.get(_key(resource_type, inputs))
        if entry is None:
            missing.append("/".join(filter(None, _key(resource_type, inputs))))
        else:
            groups[entry[1]].add(entry[0])
    if missing:
        raise UnreviewedType(sorted(set(missing)))
    return groups
