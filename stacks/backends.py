"""What each container backend allows. Config validation rejects anything outside these limits.

Sources: Cloud Run's documented CPU/memory pairs and instance limits; Railway's plan limits and its
rules that replicas are a fixed count and that a service with a volume runs exactly one replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.profile import Backend, ServiceName


@dataclass(frozen=True)
class BackendLimits:
    cpu_millis_allowed: tuple[int, ...] | None
    cpu_millis_range: tuple[int, int]
    memory_mib_range: tuple[int, int]
    max_instances_limit: int
    autoscaling: bool
    volumes: bool
    why_no_volumes: str = ""
    source: str = ""
    """Where the backend's limits are written; config errors about them cite it, as contract lines do."""


LIMITS: dict[Backend, BackendLimits] = {
    # One Docker host: a container per service, no autoscaling (the integration environment, D4).
    "docker": BackendLimits(
        cpu_millis_allowed=None,
        cpu_millis_range=(250, 8000),
        memory_mib_range=(128, 16384),
        max_instances_limit=1,
        autoscaling=False,
        volumes=True,
    ),
    "cloudrun": BackendLimits(
        cpu_millis_allowed=(1000, 2000, 4000, 6000, 8000),
        cpu_millis_range=(1000, 8000),
        memory_mib_range=(512, 32768),
        max_instances_limit=1000,
        autoscaling=True,
        volumes=False,
        why_no_volumes="Cloud Run has no local disk",
        # Whole vCPUs only for declared services: below 1 vCPU Cloud Run requires maximum concurrency 1 and
        # request-based CPU, which services taking concurrent requests cannot have (CR-CPU-001/002).
        source="https://cloud.google.com/run/docs/configuring/services/cpu and "
               "https://cloud.google.com/run/docs/configuring/services/memory-limits",
    ),
    # One Compute Engine VM with a persistent disk, private, in the engine's VPC (components/backends/gce.py):
    # E2 custom machine types, 2 to 32 vCPUs (https://cloud.google.com/compute/docs/general-purpose-machines#e2_machine_types).
    "gce": BackendLimits(
        cpu_millis_allowed=None,
        cpu_millis_range=(1000, 32000),
        memory_mib_range=(1024, 131072),
        max_instances_limit=1,
        autoscaling=False,
        volumes=True,
        source="https://cloud.google.com/compute/docs/general-purpose-machines#e2_machine_types",
    ),
    "railway": BackendLimits(
        cpu_millis_allowed=None,
        cpu_millis_range=(1000, 32000),
        memory_mib_range=(512, 32768),
        max_instances_limit=50,
        autoscaling=False,
        volumes=True,
    ),
}

# Services that keep state on a local volume: never on a backend without disk, never replicated.
NEEDS_VOLUME: frozenset[ServiceName] = frozenset({"pocketbase"})

# Cloud Run requires more vCPUs for more memory: (memory above MiB, needs at least cpu millis).
CLOUDRUN_MEMORY_NEEDS_CPU: tuple[tuple[int, int], ...] = (
    (4096, 2000),
    (8192, 4000),
    (16384, 6000),
    (24576, 8000),
)


def cloudrun_min_cpu_for_memory(memory_mib: int) -> int:
    needed = 1000
    for above_mib, cpu_millis in CLOUDRUN_MEMORY_NEEDS_CPU:
        if memory_mib > above_mib:
            needed = cpu_millis
    return needed


# What Cloud Run checks of every service it is asked to deploy, declared in a stack file or derived by the
# program (the `telemetry` service, the failover region's standby engine), is one table: the Cloud Run service
# contract (stacks/contracts/cloudrun.py), run by the cloudrun backend on each revision it is about to declare
# (components/backends/cloudrun.py, `check`) and by `plan` on every planned resource.


# The Google API each kind of GCP resource is created through: its REST collection's service
# (cloud.google.com/<product>/docs/reference/rest). The program enables, per stack, exactly the APIs of the
# resource types it declares (infra/program.py, `enable_gcp_apis`), and every GCP resource waits for its API: a
# first `pulumi up` in a new project would otherwise fail with SERVICE_DISABLED ("API has not been used in project
# ... before or it is disabled"). A GCP type missing here stops the program: say which API it needs, and why.
# Not needed, so not enabled: Serverless VPC Access (vpcaccess) — Cloud Run leaves through Direct VPC egress, no
# connector; Service Networking — Memorystore is `DIRECT_PEERING`, not private services access
# (cloud.google.com/memorystore/docs/redis/networking: only PRIVATE_SERVICE_ACCESS needs it).
GCP_APIS: dict[str, tuple[str, str]] = {
    "gcp:artifactregistry/": ("artifactregistry.googleapis.com",
                              "cloud.google.com/artifact-registry/docs/reference/rest (repositories.setIamPolicy)"),
    "gcp:certificatemanager/": ("certificatemanager.googleapis.com",
                                "cloud.google.com/certificate-manager/docs/reference/certificate-manager/rest"),
    "gcp:cloudrunv2/": ("run.googleapis.com", "cloud.google.com/run/docs/reference/rest (v2 services)"),
    "gcp:compute/": ("compute.googleapis.com", "cloud.google.com/compute/docs/reference/rest/v1"),
    "gcp:logging/": ("logging.googleapis.com", "cloud.google.com/logging/docs/reference/v2/rest (buckets)"),
    # Project IAM members read and write the project's policy: projects.getIamPolicy/setIamPolicy.
    "gcp:projects/iAMMember:": ("cloudresourcemanager.googleapis.com",
                                "cloud.google.com/resource-manager/reference/rest/v1/projects/setIamPolicy"),
    # An audit config is part of the project's IAM policy (auditConfigs), set through setIamPolicy too.
    "gcp:projects/iAMAuditConfig:": ("cloudresourcemanager.googleapis.com",
                                     "cloud.google.com/resource-manager/reference/rest/v1/projects/setIamPolicy"),
    "gcp:redis/": ("redis.googleapis.com", "cloud.google.com/memorystore/docs/redis/reference/rest"),
    "gcp:servicenetworking/": ("servicenetworking.googleapis.com",
                               "cloud.google.com/service-infrastructure/docs/service-networking/reference/rest"),
    "gcp:sql/": ("sqladmin.googleapis.com", "cloud.google.com/sql/docs/postgres/admin-api/rest"),
    "gcp:secretmanager/": ("secretmanager.googleapis.com", "cloud.google.com/secret-manager/docs/reference/rest"),
    "gcp:serviceaccount/": ("iam.googleapis.com", "cloud.google.com/iam/docs/reference/rest (serviceAccounts)"),
    # Buckets, their IAM and HMAC keys (projects.hmacKeys) are the Cloud Storage JSON API.
    "gcp:storage/": ("storage.googleapis.com", "cloud.google.com/storage/docs/json_api"),
}
GCP_API_SERVICE_TYPE = "gcp:projects/service:Service"
"""Enabling an API is itself a call to Service Usage (serviceusage.googleapis.com): one of the bootstrap APIs."""

# Used by what runs rather than by a resource type, with the grant or the job that uses them.
GCP_APIS_BY_ROLE: dict[str, str] = {
    # The telemetry service's stackdriver_exporter reads Cloud Monitoring (projects.timeSeries.list).
    "roles/monitoring.viewer": "monitoring.googleapis.com",
    # The VM's logging agent and metrics (google-logging-enabled) write through these APIs.
    "roles/monitoring.metricWriter": "monitoring.googleapis.com",
    "roles/logging.logWriter": "logging.googleapis.com",
}
GCP_APIS_ALWAYS: dict[str, str] = {
    # The bootstrap APIs: enabled once by hand before the first `up` (README, "What the first `pulumi up` of each
    # stack expects to exist"), since the stack cannot enable them itself: reading a `gcp.projects.Service` calls
    # Cloud Resource Manager's projects.get (terraform-provider-google resource_google_project_service.go;
    # hashicorp/terraform-provider-google#6101), enabling is a Service Usage call, and the deploy workflows
    # authenticate keylessly, a GitHub OIDC token exchanged at STS, then a service account impersonated through
    # IAM Credentials, before any `up` runs (cloud.google.com/iam/docs/workload-identity-federation-with-deployment-
    # pipelines: "Enable the IAM, Resource Manager, Service Account Credentials, and Security Token Service APIs").
    # The stack declares them only so they are recorded and never disabled on destroy (an enable that is a no-op).
    "sts.googleapis.com": "the deploy workflows' Workload Identity Federation (token exchange)",
    "iamcredentials.googleapis.com": "the deploy workflows' service account impersonation",
    "iam.googleapis.com": "Workload Identity Federation and the services' own accounts",
    "cloudresourcemanager.googleapis.com": "Workload Identity Federation, project IAM members, reading any API",
    "serviceusage.googleapis.com": "enabling every other API",
}


def gcp_apis(type_: str, role: object = None) -> list[str]:
    """The APIs a GCP resource of `type_` needs (and, for an IAM member, what its `role` is used for)."""
    found = [api for prefix, (api, _) in GCP_APIS.items() if type_.startswith(prefix)]
    if not found:
        raise ValueError(f"{type_}: no Google API is known for this resource type; add it to GCP_APIS in "
                         "stacks/backends.py with the API its REST collection lives in")
    if isinstance(role, str) and role in GCP_APIS_BY_ROLE:
        found.append(GCP_APIS_BY_ROLE[role])
    return found
