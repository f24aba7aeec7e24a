"""The cloudrun backend: a Cloud Run v2 service with its own service account and secrets (C1, S3).

Least privilege: the service account holds no project role; it may read exactly its own secrets.
Public invocation (`allUsers` as invoker) is granted only to a service marked public.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from components.backends.service import ContainerSpec, Endpoint

CPU_TARGET = 0.6
CONCURRENCY_TARGET = 0.7
MAX_CONCURRENCY = 80
# IAM grants propagate in "typically 2 minutes, potentially 7 minutes or longer"
# (https://cloud.google.com/iam/docs/access-change-propagation). A revision whose service account
# cannot read its secrets yet fails to start, so the first one waits this long after the grants.
IAM_PROPAGATION = "120s"


@dataclass(frozen=True)
class CloudRunTarget:
    project: str
    region: str
    environment: str
    deletion_protection: bool
    vpc_network: pulumi.Input[str] | None = None
    """Direct VPC egress into this network (to reach Memorystore). Left out, no VPC access."""
    vpc_subnetwork: pulumi.Input[str] | None = None


def deploy(name: str, spec: ContainerSpec, target: CloudRunTarget, parent: pulumi.Resource) -> Endpoint:
    child = pulumi.ResourceOptions(parent=parent)
    account = gcp.serviceaccount.Account(
        f"{name}-sa", project=target.project, account_id=f"{spec.name}-{target.environment}"[:30],
        display_name=f"{spec.name} ({target.environment}) on Cloud Run", opts=child)

    envs: list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgsDict] = [
        {"name": key, "value": value} for key, value in sorted(spec.env.items())]
    accessors: list[pulumi.Resource] = []
    versions: list[pulumi.Resource] = []
    for key, value in sorted(spec.secret_env.items()):
        slug = key.lower().replace("_", "-")
        secret = gcp.secretmanager.Secret(
            f"{name}-{slug}", project=target.project, secret_id=f"{spec.name}-{target.environment}-{slug}",
            replication={"auto": {}}, opts=child)
        version = gcp.secretmanager.SecretVersion(f"{name}-{slug}-v", secret=secret.id,
                                                  secret_data=pulumi.Output.secret(value), opts=child)
        versions.append(version)
        accessors.append(gcp.secretmanager.SecretIamMember(
            f"{name}-{slug}-reader", project=target.project, secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor", member=account.member, opts=child))
        # By number, not `latest`: reading a version just added by its number is strongly consistent
        # (https://cloud.google.com/secret-manager/docs/reference/consistency), and a rotated secret
        # rolls a new revision instead of reaching instances only when they restart.
        envs.append({"name": key, "value_source": {"secret_key_ref": {"secret": secret.secret_id,
                                                                       "version": version.version}}})
    # Google's own sample has the service depend on the versions and the grants
    # (cloudrunv2_job_secret: depends_on = [secret-version-data, secret-access]); the sleep runs on
    # the first create only, and again if the account (so every grant) is replaced.
    settled = time.Sleep(f"{name}-iam-propagation", create_duration=IAM_PROPAGATION,
                         triggers={"member": account.member},
                         opts=pulumi.ResourceOptions(parent=parent, depends_on=accessors)) if accessors else None

    probe_path = spec.health_path or "/"
    template: gcp.cloudrunv2.ServiceTemplateArgsDict = {
        "service_account": account.email,
        # Scale out at 60 % CPU, well before the 85 % alert (M3), or at 70 % of the concurrency limit.
        "scaling": {"min_instance_count": spec.size.min_instances, "max_instance_count": spec.size.max_instances,
                    "cpu_utilization": CPU_TARGET, "concurrency_utilization": CONCURRENCY_TARGET},
        "max_instance_request_concurrency": MAX_CONCURRENCY,
        "containers": [{
            "image": spec.image,
            "ports": {"container_port": spec.port},
            "envs": envs,
            "resources": {
                "limits": {"cpu": str(spec.size.cpu_millis // 1000), "memory": f"{spec.size.memory_mib}Mi"},
                # Warm instances keep their CPU between requests (C1: one warm instance).
                "cpu_idle": False,
                "startup_cpu_boost": True,
            },
            "startup_probe": {"http_get": {"path": probe_path, "port": spec.port}, "period_seconds": 3,
                              "failure_threshold": 20, "timeout_seconds": 2},
            "liveness_probe": {"http_get": {"path": probe_path, "port": spec.port}, "period_seconds": 15,
                               "failure_threshold": 3, "timeout_seconds": 3},
        }],
    }
    if target.vpc_network is not None:
        template["vpc_access"] = {"egress": "PRIVATE_RANGES_ONLY", "network_interfaces": [
            {"network": target.vpc_network, "subnetwork": target.vpc_subnetwork}]}
    service = gcp.cloudrunv2.Service(
        name,
        project=target.project,
        location=target.region,
        name=spec.name,
        ingress="INGRESS_TRAFFIC_ALL" if spec.size.public else "INGRESS_TRAFFIC_INTERNAL_ONLY",
        deletion_protection=target.deletion_protection,
        # PLAT-IAM-004 lets allUsers invoke only services labelled public.
        labels={"platform-public": "true" if spec.size.public else "false", "platform-environment": target.environment},
        template=template,
        traffics=[{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*versions, *accessors,
                                                               *([settled] if settled else [])]),
    )
    if spec.size.public:
        gcp.cloudrunv2.ServiceIamMember(f"{name}-public-invoker", project=target.project, location=target.region,
                                        name=service.name, role="roles/run.invoker", member="allUsers", opts=child)
    return Endpoint(private_url=service.uri, public_url=service.uri if spec.size.public else None)
