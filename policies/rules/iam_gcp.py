"""PLAT-IAM-002, -003 and -004: Google Cloud IAM as allow-lists of resource types, roles and members.

Deny by default. Any resource whose type is an IAM member, binding, policy, custom role, key or
access control list (`is_grant`) is a grant; only the grants listed in `ALLOWED_GRANTS` exist, with their one role, to
members the stack itself declares. Workloads run only as Cloud Run v2 services (or Compute Engine
instances), each as a service account the stack declares and no other workload shares. `allUsers`
and `allAuthenticatedUsers` appear nowhere but in the one shape the platform needs: run.invoker on a
service labelled public whose ingress is `INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER` (the load balancer
does not authenticate; the ingress setting keeps everyone but the load balancer out, and Cloud Armor
admits only Cloudflare's ranges there). A value the engine does not know yet in a grant is refused:
an unknown member cannot be judged, and CrossGuard would otherwise turn the rule advisory.

Sources: Cloud Run ingress "Internal and Cloud Load Balancing" (cloud.google.com/run/docs/securing/
ingress); predefined roles (cloud.google.com/iam/docs/understanding-roles); the default compute
service account holds Editor unless the organization disables it
(cloud.google.com/compute/docs/access/service-accounts#default_service_account).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import (
    CLOUD_RUN,
    SERVICE_ACCOUNT,
    Finding,
    Resource,
    Violation,
    as_list,
    as_map,
    is_unknown,
    strings,
    unknown_paths,
)

# What is an IAM grant, precisely (issue #22 item 9: "Policy" in a name is not IAM; an SSL policy, a
# Cloud Armor policy or Grafana's notification policy are judged by their own rules). From the installed
# pulumi-gcp SDK's type tokens (10.2): the `*IamMember`/`*IamBinding`/`*IamPolicy` (and `IAM*`) resources of
# every service (141 + 17 of each), `IamMemberRemove`, custom roles (`projects/iAMCustomRole`,
# `organizations/iAMCustomRole`), everything under `gcp:iam/` (deny policies, principal access boundaries,
# workload identity pools), service account keys, and Cloud Storage's legacy ACL resources. Audit configs
# (`*IamAuditConfig`) are not grants: PLAT-LOG-003 judges them. A type of another provider that grants
# access (a Vercel team member, a Cloudflare account member) is on no reviewed list, so PLAT-TYPE-001
# refuses it.
IAM_NAME = re.compile(r"(?i)iam(member|binding|policy|memberremove|customrole)$")
IAM_MODULES = ("gcp:iam/",)
EXPLICIT_IAM = frozenset({
    "gcp:serviceaccount/key:Key",
    # Cloud Storage ACLs (legacy access control: cloud.google.com/storage/docs/access-control/lists).
    "gcp:storage/bucketACL:BucketACL", "gcp:storage/bucketAccessControl:BucketAccessControl",
    "gcp:storage/defaultObjectACL:DefaultObjectACL",
    "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
    "gcp:storage/objectACL:ObjectACL", "gcp:storage/objectAccessControl:ObjectAccessControl",
})
ALLOWED_GRANTS: dict[str, frozenset[str]] = {
    # A service reads its own secrets, one grant per secret.
    "gcp:secretmanager/secretIamMember:SecretIamMember": frozenset({"roles/secretmanager.secretAccessor"}),
    # The load balancer invokes the public service (the member is judged by PLAT-IAM-004).
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": frozenset({"roles/run.invoker"}),
    # A VM pulls its image from the stack's repository.
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": frozenset({"roles/artifactregistry.reader"}),
    # A VM's Ops Agent writes its logs and metrics; write-only roles, granted on the project because logs
    # and metrics have no narrower resource to grant them on (cloud.google.com/logging/docs/agent/ops-agent/
    # authorization).
    "gcp:projects/iAMMember:IAMMember": frozenset({"roles/logging.logWriter", "roles/monitoring.metricWriter",
                                                   # reading metrics (the telemetry exporter): read-only
                                                   "roles/monitoring.viewer"}),
    # PocketBase's backups and replica: object access on the stack's own bucket, never the project.
    "gcp:storage/bucketIAMMember:BucketIAMMember": frozenset({"roles/storage.objectAdmin",
                                                            "roles/storage.objectCreator",
                                                            "roles/storage.objectViewer"}),
}
STORAGE_ANALYTICS = "group:cloud-storage-analytics@google.com"
PUBLIC_MEMBERS = ("allusers", "allauthenticatedusers")
_PUBLIC = re.compile(r"(?i)\ball(authenticated)?users\b")
INTERNAL_LB = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
DEFAULT_ACCOUNTS = re.compile(r"(-compute@developer\.gserviceaccount\.com|@appspot\.gserviceaccount\.com|"
                              r"@cloudbuild\.gserviceaccount\.com|@cloudservices\.gserviceaccount\.com)$")
WORKLOAD_MODULES = ("gcp:cloudrun/", "gcp:cloudrunv2/", "gcp:cloudfunctions/", "gcp:cloudfunctionsv2/",
                    "gcp:appengine/", "gcp:container/", "gcp:dataflow/", "gcp:composer/", "gcp:workflows/",
                    "gcp:cloudscheduler/", "gcp:batch/", "gcp:notebooks/", "gcp:workbench/", "gcp:dataproc/")
CLOUD_RUN_JOB = "gcp:cloudrunv2/job:Job"
WORKLOADS = frozenset({CLOUD_RUN, CLOUD_RUN_JOB, "gcp:compute/instance:Instance"})
NOT_WORKLOADS = frozenset({"gcp:cloudrunv2/serviceIamMember:ServiceIamMember"})
_DANGEROUS_PERMISSIONS = re.compile(r"(setIamPolicy|serviceAccountKeys\.create|serviceAccounts\.(getAccessToken|"
                                    r"signBlob|signJwt|implicitDelegation|actAs)|roles\.(create|update))$")


def is_grant(resource: Resource) -> bool:
    """Whether the resource grants access (a member and a role, a policy document, a key or an ACL)."""
    token = resource.type
    if token in EXPLICIT_IAM or token.startswith(IAM_MODULES):
        return True
    return token.startswith("gcp:") and bool(IAM_NAME.search(token.rsplit(":", 1)[-1]))


def declared_accounts(resources: Sequence[Resource]) -> set[str]:
    """E-mails of the service accounts the stack creates: accountId@project.iam.gserviceaccount.com."""
    return {f"{r.get('accountId')}@{r.get('project')}.iam.gserviceaccount.com" for r in resources
            if r.type == SERVICE_ACCOUNT and isinstance(r.get("accountId"), str) and isinstance(r.get("project"), str)}


def _declared_secrets(resources: Sequence[Resource]) -> set[str]:
    return {str(r.get("secretId")) for r in resources
            if r.type == "gcp:secretmanager/secret:Secret" and isinstance(r.get("secretId"), str)}


def check_grants(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-IAM-002: every grant is an allowed type, with its one role, to a member the stack declares."""
    accounts = declared_accounts(resources)
    secrets = _declared_secrets(resources)
    access_log_buckets = {r.get("name") for r in resources if r.type == "gcp:storage/bucket:Bucket"
                          and as_map(r.get("labels")).get("platform-role") == "access-logs"}
    out: list[tuple[str, Finding]] = []
    for r in (r for r in resources if is_grant(r)):
        unknown = unknown_paths(r.props)
        if unknown:
            out.append((r.urn, f"{', '.join(unknown)} not known until apply, so this grant cannot be judged; "
                               "expected every IAM property known at preview"))
            continue
        if r.type not in ALLOWED_GRANTS:
            detail = _why_not(r)
            out.append((r.urn, f"{r.type} is not on the IAM allow-list{detail}; expected only "
                               f"{', '.join(sorted(ALLOWED_GRANTS))}, with their roles"))
            continue
        role, member = r.get("role"), r.get("member")
        if role not in ALLOWED_GRANTS[r.type]:
            allowed = ", ".join(sorted(ALLOWED_GRANTS[r.type]))
            out.append((r.urn, f"grants {role!r}{_why_not(r)}; expected only {allowed} on this type"))
        if member == STORAGE_ANALYTICS and role == "roles/storage.objectCreator" \
                and r.get("bucket") in access_log_buckets:
            pass  # Cloud Storage writes usage logs as this group (cloud.google.com/storage/docs/access-logs)
        elif not isinstance(member, str):
            out.append((r.urn, "names no single member; expected one member per grant"))
        elif member.lower() in PUBLIC_MEMBERS:
            pass  # judged by PLAT-IAM-004
        elif member.removeprefix("serviceAccount:") not in accounts or not member.startswith("serviceAccount:"):
            out.append((r.urn, f"grants to {member}, which is not a service account this stack declares; expected "
                               "serviceAccount:<a dedicated account of this stack>"))
        if r.type.startswith("gcp:secretmanager/") and r.get("secretId") not in secrets:
            out.append((r.urn, f"grants access to secret {r.get('secretId')!r}, which this stack does not declare; "
                               "expected a grant on the service's own secret"))
    return out


def _why_not(r: Resource) -> str:
    permissions = [p for p in as_list(r.get("permissions")) if isinstance(p, str) and _DANGEROUS_PERMISSIONS.search(p)]
    if permissions:
        return f" (a custom role with {', '.join(permissions)}: whoever holds it can grant itself more)"
    role = r.get("role")
    scope = r.type.split(":", 1)[-1].split("/", 1)[0]
    if isinstance(role, str):
        return f" ({role} at {scope} level)"
    return ""


def check_workloads(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-IAM-003: workloads are Cloud Run v2 services (or instances), each as its own declared account."""
    accounts = declared_accounts(resources)
    out: list[tuple[str, Finding]] = []
    users: dict[str, list[Resource]] = {}
    for r in resources:
        if r.type.startswith(WORKLOAD_MODULES) and r.type not in WORKLOADS and r.type not in NOT_WORKLOADS \
                and not is_grant(r):
            out.append((r.urn, f"{r.type} is not an allowed kind of workload; expected a Cloud Run v2 service "
                               "(gcp:cloudrunv2/service:Service) running as a dedicated service account"))
            continue
        if r.type not in WORKLOADS:
            continue
        account = (r.get("template", "serviceAccount") if r.type == CLOUD_RUN
                   else r.get("template", "template", "serviceAccount") if r.type == CLOUD_RUN_JOB
                   else r.get("serviceAccount", "email"))
        if is_unknown(account):
            out.append((r.urn, "its service account is not known until apply; expected a declared account"))
        elif not isinstance(account, str) or not account:
            out.append((r.urn, "runs as the project's default compute service account (Editor on the project); "
                               "expected a dedicated service account"))
        elif account not in accounts:
            out.append((r.urn, f"runs as {account}, which this stack does not declare; expected a dedicated "
                               "account of this stack (gcp:serviceaccount/account:Account)"))
        else:
            users.setdefault(account, []).append(r)
    for account, workloads in users.items():
        if len(workloads) > 1:
            names = ", ".join(sorted(w.name for w in workloads))
            out += [(w.urn, f"shares {account} with {names}; expected one account per service, so each holds "
                            "only its own grants") for w in workloads]
    for r in resources:
        defaults = sorted({s for s in strings(r.props) if DEFAULT_ACCOUNTS.search(s.removeprefix("serviceAccount:"))})
        if defaults:
            out.append((r.urn, f"uses the default service account {defaults[0]} (Editor on the project); "
                               "expected a dedicated account"))
    return out


def _service_key(props: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return props.get("project"), props.get("location"), props.get("name")


def check_public(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-IAM-004: nothing is public but run.invoker on a public service behind the load balancer."""
    services = {_service_key(r.props): r for r in resources if r.type == CLOUD_RUN}
    out: list[tuple[str, Finding]] = []
    for r in resources:
        if r.type == CLOUD_RUN and r.props.get("invokerIamDisabled") is not False \
                and r.props.get("invokerIamDisabled") is not None:
            out.append((r.urn, Violation(f"{r.props.get('name')!r} has invokerIamDisabled, so anyone may invoke it "
                                         "without a grant; expected IAM checked on every request", (r.name,))))
        public = sorted({m.group(0) for s in strings(r.props) for m in [_PUBLIC.search(s)] if m is not None})
        if not public:
            continue
        if r.type != "gcp:cloudrunv2/serviceIamMember:ServiceIamMember":
            out.append((r.urn, f"{r.type} {r.name} makes something readable or callable by {public[0]}; expected "
                               "no public access but the public service's invoker"))
            continue
        member, role = r.get("member"), r.get("role")
        service = services.get(_service_key(r.props))
        if member != "allUsers" or role != "roles/run.invoker":
            out.append((r.urn, f"grants {role!r} to {member!r}; the one public grant allowed is run.invoker to "
                               "allUsers"))
        elif service is None:
            out.append((r.urn, f"lets anyone invoke {r.get('name')!r} in {r.get('location')!r}, a service this stack "
                               "does not declare there; expected the public service itself (same project, region, "
                               "name)"))
        elif as_map(service.props.get("labels")).get("platform-public") != "true":
            out.append((r.urn, f"lets anyone invoke {r.get('name')!r}, which is not labelled platform-public=true; "
                               "expected public invocation only for public services"))
        elif service.props.get("ingress") != INTERNAL_LB:
            out.append((r.urn, f"lets anyone invoke {r.get('name')!r}, whose ingress is "
                               f"{service.props.get('ingress')!r}: its run.app URL skips the load balancer, Cloud "
                               f"Armor and the edge; expected ingress {INTERNAL_LB}"))
    return out
