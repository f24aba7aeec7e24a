"""The cache layer: Redis, private only, password-protected, evicting like a cache (L4, C3, C6).

On docker and Railway it is a Redis container on the private network; on Cloud Run's side it is
Memorystore, reached by the engine over Direct VPC egress with TLS and AUTH.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from components.backends.service import ContainerSpec, Endpoint
from components.backends.targets import Targets, deploy
from components.images import COMPONENTS_DIR, Registry, build_image
from stacks.profile import ServiceProfile

REDIS_CONTEXT = COMPONENTS_DIR / "redis"


def _upstream(dockerfile: Path) -> str:
    found = re.search(r"^FROM\s+(\S+)\s*$", dockerfile.read_text(), re.MULTILINE)
    if found is None:
        raise ValueError(f"{dockerfile} names no image")
    return found.group(1)


REDIS_IMAGE = _upstream(REDIS_CONTEXT / "Dockerfile")
"""The upstream image, as `components/redis/Dockerfile` names it."""
EVICTION_POLICY = "allkeys-lru"
SUBNET_RANGE = "10.20.0.0/24"
"""The engine's Direct VPC egress subnetwork (Cloud Run only: no Cloud NAT on it)."""
FAILOVER_SUBNET_RANGE = "10.21.0.0/24"
"""The failover region's subnetwork of the same VPC: the standby engine's egress."""
VM_SUBNET_RANGE = "10.20.1.0/24"
FAILOVER_VM_SUBNET_RANGE = "10.21.1.0/24"
"""The VMs' own subnetworks (PocketBase, its standby), the only ones Cloud NAT covers: "When you route internal IP
address requests to the VPC network (--vpc-egress=private-ranges-only), avoid associating Cloud NAT with subnets
that run Cloud Run services or revisions" (cloud.google.com/run/docs/configuring/networking-best-practices, "Avoid
Cloud NAT with Cloud Run subnets"); #20 item 12 cites cold starts of 30 s or more with NAT on a Direct VPC egress
subnet. The firewall admits the engine's egress subnetwork of the same region to PocketBase (backends/gce.py)."""


def ca_bundle(certs: Sequence[gcp.redis.outputs.InstanceServerCaCert]) -> str:
    """Every CA of the instance, as one PEM bundle: Memorystore adds a new CA five years in and keeps
    the old one valid for five more, so a client trusting only the first would break at rotation."""
    return "".join(cert.cert.strip() + "\n" for cert in certs if cert.cert)


FLOW_LOGS: gcp.compute.SubnetworkLogConfigArgsDict = {
    "aggregation_interval": "INTERVAL_5_SEC", "flow_sampling": 1.0, "metadata": "INCLUDE_ALL_METADATA"}
"""VPC flow logs on every subnet, the database's included (issue #22 item 12, checkov CKV_GCP_26): every flow,
sampled whole (cloud.google.com/vpc/docs/flow-logs)."""


@dataclass(frozen=True)
class CacheArgs:
    environment: str
    size: ServiceProfile
    targets: Targets
    gcp_project: str | None = None
    gcp_region: str | None = None
    failover_region: str | None = None
    """Memorystore only: a subnetwork of the VPC there for the standby (#13 item 7)."""
    serving_failover: bool = False
    """The failover region serves: a Memorystore instance there too. A cache, it starts cold."""
    registry: Registry | None = None
    """A container Redis runs the upstream image rebuilt into it (staging); left out, the upstream image (docker)."""


def maxmemory_mib(memory_mib: int) -> int:
    """Three quarters of the container's memory: room for fragmentation and the process itself."""
    return memory_mib * 3 // 4


def redis_spec(size: ServiceProfile, password: pulumi.Input[str], image: pulumi.Input[str] = REDIS_IMAGE,
               ) -> ContainerSpec:
    """Redis as a container: password required, nothing persisted, LRU eviction at the limit."""
    server = (f'exec redis-server --requirepass "$REDIS_PASSWORD" --maxmemory {maxmemory_mib(size.memory_mib)}mb '
              f"--maxmemory-policy {EVICTION_POLICY} --save '' --appendonly no")
    return ContainerSpec(
        name="redis",
        image=image,
        port=6379,
        size=size,
        secret_env={"REDIS_PASSWORD": password, "REDISCLI_AUTH": password},
        command=["sh", "-c", server],
        healthcheck_command=["redis-cli", "ping"],
    )


class Cache(pulumi.ComponentResource):
    url: pulumi.Output[str]
    """`redis://` or `rediss://` URL with the password: a secret."""
    ca_certificate: pulumi.Output[str] | None
    vpc_network: pulumi.Output[str] | None
    vpc_subnetwork: pulumi.Output[str] | None
    vpc_subnet_range: str | None
    """The CIDR of the subnetwork Cloud Run's Direct VPC egress leaves from."""
    vm_subnetwork: pulumi.Output[str] | None
    vm_subnet_range: str | None
    """The VMs' subnetwork in the engine's region (NATed), and its CIDR."""
    endpoint: Endpoint | None
    """The Redis container (not Memorystore): its log drain and exporter find it by it."""
    failover_subnetwork: pulumi.Output[str] | None
    failover_subnet_range: str | None
    failover_vm_subnetwork: pulumi.Output[str] | None
    failover_vm_subnet_range: str | None
    failover_url: pulumi.Output[str] | None
    """The failover region's Memorystore, declared only while that region serves."""
    failover_ca_certificate: pulumi.Output[str] | None

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:cache:Redis", name, None, opts)
        self.ca_certificate = self.vpc_network = self.vpc_subnetwork = None
        self.vpc_subnet_range = None
        self.endpoint = None
        self.failover_subnetwork = self.failover_url = self.failover_ca_certificate = None
        self.failover_subnet_range = None
        self.vm_subnetwork = self.failover_vm_subnetwork = None
        self.vm_subnet_range = self.failover_vm_subnet_range = None
        if args.size.backend == "cloudrun":
            self._memorystore(name, args)
        else:
            self._container(name, args)
        self.register_outputs({})

    def _container(self, name: str, args: CacheArgs) -> None:
        password = random.RandomPassword(f"{name}-password", length=40, special=False,
                                         opts=pulumi.ResourceOptions(parent=self))
        image = build_image(f"{name}-image", REDIS_CONTEXT, "redis", args.registry, self) \
            if args.registry is not None else REDIS_IMAGE
        endpoint = self.endpoint = deploy(name, redis_spec(args.size, password.result, image), args.targets, self)
        host = endpoint.private_url.apply(lambda u: u.removeprefix("http://"))
        self.url = pulumi.Output.secret(pulumi.Output.concat("redis://:", password.result, "@", host, "/0"))

    def _memorystore(self, name: str, args: CacheArgs) -> None:
        assert args.gcp_project is not None and args.gcp_region is not None  # required with cloudrun
        child = pulumi.ResourceOptions(parent=self)
        network = gcp.compute.Network(f"{name}-network", project=args.gcp_project,
                                      name=f"platform-{args.environment}", auto_create_subnetworks=False, opts=child)
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet", project=args.gcp_project, region=args.gcp_region, network=network.id,
            name=f"platform-{args.environment}-run", ip_cidr_range=SUBNET_RANGE, private_ip_google_access=True,
            log_config=FLOW_LOGS,
            opts=child)
        self.url, self.ca_certificate = self._instance(name, args, args.gcp_region, f"cache-{args.environment}",
                                                       network)
        self.vpc_network = network.id
        self.vpc_subnetwork = subnet.id
        self.vpc_subnet_range = SUBNET_RANGE
        # Private Google Access: the VM reads Secret Manager and pulls from Artifact Registry without NAT.
        self.vm_subnetwork = gcp.compute.Subnetwork(
            f"{name}-vm-subnet", project=args.gcp_project, region=args.gcp_region, network=network.id,
            name=f"platform-{args.environment}-vms", ip_cidr_range=VM_SUBNET_RANGE, private_ip_google_access=True,
            log_config=FLOW_LOGS,
            opts=child).id
        self.vm_subnet_range = VM_SUBNET_RANGE
        if args.failover_region is None:
            return
        # The same VPC (a VPC is global), a subnetwork in the failover region.
        failover_subnet = gcp.compute.Subnetwork(
            f"{name}-failover-subnet", project=args.gcp_project, region=args.failover_region, network=network.id,
            name=f"platform-{args.environment}-run-failover", ip_cidr_range=FAILOVER_SUBNET_RANGE,
            private_ip_google_access=True, log_config=FLOW_LOGS, opts=child)
        self.failover_subnetwork = failover_subnet.id
        self.failover_subnet_range = FAILOVER_SUBNET_RANGE
        self.failover_vm_subnetwork = gcp.compute.Subnetwork(
            f"{name}-failover-vm-subnet", project=args.gcp_project, region=args.failover_region, network=network.id,
            name=f"platform-{args.environment}-vms-failover", ip_cidr_range=FAILOVER_VM_SUBNET_RANGE,
            private_ip_google_access=True, log_config=FLOW_LOGS, opts=child).id
        self.failover_vm_subnet_range = FAILOVER_VM_SUBNET_RANGE
        if args.serving_failover:
            self.failover_url, self.failover_ca_certificate = self._instance(
                f"{name}-standby", args, args.failover_region, f"cache-{args.environment}-standby", network)

    def _instance(self, name: str, args: CacheArgs, region: str, instance_name: str, network: gcp.compute.Network,
                  ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        assert args.gcp_project is not None
        instance = gcp.redis.Instance(
            name,
            project=args.gcp_project,
            region=region,
            name=instance_name,
            tier="BASIC",
            memory_size_gb=args.size.memory_mib // 1024,
            redis_version="REDIS_7_2",
            authorized_network=network.id,
            connect_mode="DIRECT_PEERING",
            auth_enabled=True,
            transit_encryption_mode="SERVER_AUTHENTICATION",
            redis_configs={"maxmemory-policy": EVICTION_POLICY},
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["auth_string"]),
        )
        url = pulumi.Output.secret(pulumi.Output.concat(
            "rediss://:", instance.auth_string, "@", instance.host, ":", instance.port.apply(str), "/0"))
        return url, instance.server_ca_certs.apply(ca_bundle)
