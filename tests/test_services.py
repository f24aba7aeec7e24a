"""Container services under the mock engine, per stack: backends, sizes and replica bounds exactly as
the profile says; PocketBase one replica on a volume; Redis never public; generated secrets masked."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest

from components.cache import maxmemory_mib
from infra.config import load_model
from infra.plan import Plan
from infra.stackfile import read_stack_file
from stacks.profile import ServiceProfile
from tests.conftest import PROJECT_DIR, STACKS

SERVICE_NAMES = {"engine": "commission-engine", "pocketbase": "pocketbase", "redis": "redis"}


def _services(stack: str) -> dict[str, ServiceProfile]:
    return dict(load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml")).services)


def _standby(inputs: dict[str, Any]) -> bool:
    """The failover region's standby (tests/test_failover.py), not the service the profile sizes."""
    labels = inputs.get("labels")
    return ((isinstance(labels, dict) and cast(dict[str, Any], labels).get("platform-standby") == "true")
            or str(inputs.get("name")).endswith("-standby"))


def _deployed(plan: Plan, service: str) -> tuple[str, dict[str, Any]]:
    """The backend resource that runs `service`, as (type, inputs)."""
    name = SERVICE_NAMES[service]
    found = [(r.type, r.inputs) for r in plan.resources
             if r.type in ("docker:index/container:Container", "gcp:cloudrunv2/service:Service",
                           "pulumi-python:dynamic/railway:Service") and r.inputs.get("name") == name
             and not _standby(r.inputs)]
    if service == "redis":
        found += [(r.type, r.inputs) for r in plan.resources if r.type == "gcp:redis/instance:Instance"
                  and not str(r.inputs.get("name")).endswith("-standby")]
    found += [(r.type, r.inputs) for r in plan.resources if r.type == "gcp:compute/instance:Instance"
              and str(r.inputs.get("name", "")).startswith(f"{name}-") and not _standby(r.inputs)]
    assert len(found) == 1, f"{service}: {found}"
    return found[0]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("service", sorted(SERVICE_NAMES))
def test_each_service_runs_on_the_profile_backend_with_the_profile_size_and_replicas(
    stack: str, service: str, committed_plans: dict[str, Plan]
) -> None:
    want = _services(stack)[service]
    type_, inputs = _deployed(committed_plans[stack], service)

    if want.backend == "docker":
        assert type_ == "docker:index/container:Container"
        assert inputs["memory"] == want.memory_mib
        assert inputs["cpuQuota"] == want.cpu_millis * 100 and inputs["cpuPeriod"] == 100_000
    elif want.backend == "railway":
        assert type_ == "pulumi-python:dynamic/railway:Service"
        assert inputs["num_replicas"] == want.min_instances == want.max_instances
        assert inputs["vcpus"] == want.peak_cpu_millis / 1000
        assert inputs["memory_gb"] == want.peak_memory_mib / 1024
    elif want.backend == "gce":
        from components.backends.gce import machine_type

        assert type_ == "gcp:compute/instance:Instance"
        assert inputs["machineType"] == machine_type(want.peak_cpu_millis, want.peak_memory_mib)
    elif type_ == "gcp:redis/instance:Instance":
        assert inputs["memorySizeGb"] == want.memory_mib // 1024
    else:
        assert type_ == "gcp:cloudrunv2/service:Service"
        template = inputs["template"]
        # No Beta-only scaling targets (tests/test_gcp_cloudrun_limits.py): Cloud Run's default 60 % CPU target.
        assert template["scaling"] == {"minInstanceCount": want.min_instances, "maxInstanceCount": want.max_instances}
        limits = template["containers"][0]["resources"]["limits"]
        assert limits == {"cpu": str(want.cpu_millis // 1000), "memory": f"{want.memory_mib}Mi"}


def test_prod_engine_runs_on_cloud_run_with_one_warm_instance_scaling_to_five(committed_plans: dict[str, Plan]) -> None:
    type_, inputs = _deployed(committed_plans["prod"], "engine")

    assert type_ == "gcp:cloudrunv2/service:Service"
    assert inputs["template"]["scaling"]["minInstanceCount"] == 1
    assert inputs["template"]["scaling"]["maxInstanceCount"] == 5
    assert inputs["template"]["maxInstanceRequestConcurrency"] == 80
    assert inputs["template"]["containers"][0]["resources"]["cpuIdle"] is False
    assert inputs["deletionProtection"] is True
    probes = inputs["template"]["containers"][0]
    assert probes["startupProbe"]["httpGet"]["path"] == probes["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("stack", STACKS)
def test_pocketbase_runs_one_replica_on_a_persistent_volume_everywhere(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    plan = committed_plans[stack]
    type_, inputs = _deployed(plan, "pocketbase")

    if type_ == "docker:index/container:Container":
        assert [v["containerPath"] for v in inputs["volumes"]] == ["/pb/pb_data"]
        # Its own volume (Grafana has another, at /var/lib/grafana).
        assert [v["volumeName"] for v in inputs["volumes"]] == ["pocketbase-data"]
        assert "pocketbase-data" in [r.inputs["name"] for r in plan.resources if r.type == "docker:index/volume:Volume"]
    elif type_ == "gcp:compute/instance:Instance":
        # One VM, its data on one attached persistent disk mounted at /pb/pb_data (components/backends/gce.py).
        assert [d["deviceName"] for d in inputs["attachedDisks"]] == ["data"]
        assert len([r for r in plan.resources if r.type == "gcp:compute/disk:Disk"]) == 1
    else:
        assert type_ == "pulumi-python:dynamic/railway:Service"
        assert inputs["volume_mount_path"] == "/pb/pb_data"
        assert inputs["num_replicas"] == 1


@pytest.mark.parametrize("stack", STACKS)
def test_redis_has_no_public_endpoint_and_requires_a_password(stack: str, committed_plans: dict[str, Plan]) -> None:
    type_, inputs = _deployed(committed_plans[stack], "redis")

    if type_ == "docker:index/container:Container":
        assert inputs.get("ports", []) == []
        assert "--requirepass" in inputs["command"][-1]
        maxmemory = maxmemory_mib(inputs["memory"])
        assert f"--maxmemory {maxmemory}mb --maxmemory-policy allkeys-lru" in inputs["command"][-1]
    elif type_ == "pulumi-python:dynamic/railway:Service":
        assert inputs.get("public_port") is None  # left out: no Railway domain, no TCP proxy
    else:
        assert type_ == "gcp:redis/instance:Instance"
        assert inputs["connectMode"] == "DIRECT_PEERING" and inputs["authEnabled"] is True
        assert inputs["transitEncryptionMode"] == "SERVER_AUTHENTICATION"
        assert inputs["redisConfigs"] == {"maxmemory-policy": "allkeys-lru"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_generated_password_stays_secret_in_the_plan(stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    document = plan.dumps()
    from infra.plan import _fake  # pyright: ignore[reportPrivateUsage]

    passwords = [r for r in plan.resources if r.type == "random:index/randomPassword:RandomPassword"]
    assert len(passwords) >= 3
    for password in passwords:
        assert _fake(password.name, length=password.inputs["length"]) not in document, password.name
    # Where they are used, they arrive masked.
    assert not re.search(r'"(REDIS_PASSWORD|PB_SUPERUSER_PASSWORD)=[^\[]', document)


def test_cloud_run_runs_as_a_dedicated_account_reading_only_its_own_secrets(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    [engine] = [r for r in plan.resources if r.type == "gcp:cloudrunv2/service:Service"
                and r.inputs.get("name") == "commission-engine" and not _standby(r.inputs)]
    [account] = [r for r in plan.resources if r.type == "gcp:serviceaccount/account:Account"
                 and r.inputs["accountId"] == "commission-engine-prod"]
    grants = [r.inputs for r in plan.resources if "IamMember" in r.type or "IAMMember" in r.type]
    mine = [g for g in grants if "commission-engine-prod@" in str(g.get("member"))]

    assert account.urn in engine.dependencies
    assert not [g for g in grants if g.get("role") in ("roles/owner", "roles/editor", "roles/viewer")]
    assert {g["role"] for g in mine} == {"roles/secretmanager.secretAccessor"}
    # The engine and its standby in the failover region, each behind the load balancer.
    assert [g["member"] for g in grants if g["role"] == "roles/run.invoker"] == ["allUsers", "allUsers"]


def test_the_engine_reaches_memorystore_over_direct_vpc_egress_in_prod(committed_plans: dict[str, Plan]) -> None:
    _, engine = _deployed(committed_plans["prod"], "engine")

    assert engine["template"]["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"
    assert len(engine["template"]["vpcAccess"]["networkInterfaces"]) == 1


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_images_are_built_for_amd64_and_tagged_by_content_never_latest(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    images = [r.inputs for r in committed_plans[stack].resources if r.type == "docker:index/image:Image"]

    assert images
    for image in images:
        assert re.fullmatch(r".+:[0-9a-f]{12}", image["imageName"])
        assert image["build"]["platform"] == "linux/amd64"
        assert not image["build"]["context"].startswith("/"), "relative, so plans do not depend on the checkout"
        assert image["skipPush"] is False
        registry = image["registry"]
        if stack == "staging":
            # No registry credential in the program (#22 item 1): the staging deploy job runs `docker login` with its
            # own short-lived GITHUB_TOKEN and pulumi-docker pushes with the Docker config (pulumi/pulumi-docker#461).
            assert isinstance(registry, dict) and set(registry) == {"server"}, registry
        else:  # a block with a password is secret as a whole
            assert isinstance(registry, str) and registry.startswith("[secret:"), registry
