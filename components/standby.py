"""PocketBase's standby in the failover region (#13 item 7, C8, C9).

A second VM of the same image and settings in the failover region's subnetwork of the stack's VPC,
replicating to the same Litestream replica. While the primary region serves it is declared stopped
and without a data disk. When `platform:gcp.serving` is `failover` it gets a new, empty disk and
runs: the image's entrypoint restores the latest replica onto an empty volume before PocketBase
starts (`drtool.py restore-if-empty`), verified, then replicates again. It starts only after the
load balancer stopped sending the API's traffic to the primary region and a drain: a replica restored
while the primary still writes would miss every order written after the restore, and both writers
would then replicate to the same path (two Litestream generations, the later restore picking one).

The engine's standby is declared with the engine (components/backends/cloudrun.py, `Standby`); the
failover region's subnetwork and, while it serves, its Redis with the cache (components/cache.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.backends import gce
from components.backends.service import ContainerSpec, Endpoint
from components.cache import FAILOVER_VM_SUBNET_RANGE
from components.database import IMAGE_CONTEXT, TLS_PORT
from components.images import Registry, image_name

STANDBY_ADDRESS = gce.vm_address(FAILOVER_VM_SUBNET_RANGE)
"""The standby PocketBase's internal address in the failover region's VM subnetwork (components.cache): fixed, so
the standby engine is declared before the VM that waits for the load balancer to switch."""
STANDBY_URL = f"https://{STANDBY_ADDRESS}:{TLS_PORT}"
"""TLS, as the primary: the stack's certificate names this address too (infra/program.py, `tls_addresses`)."""


def pocketbase_image(registry: Registry) -> str:
    """The image the primary's `Database` builds and pushes, by name: a failover must not wait for a build."""
    return image_name(IMAGE_CONTEXT, "pocketbase", registry)


@dataclass(frozen=True)
class StandbyDatabaseArgs:
    spec: ContainerSpec
    """The primary's container (`Database.spec`): the same image, settings, backups, replica and secrets."""
    target: gce.GceTarget


class StandbyDatabase(pulumi.ComponentResource):
    endpoint: Endpoint

    def __init__(self, name: str, args: StandbyDatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:database:PocketBaseStandby", name, None, opts)
        self.endpoint = gce.deploy(name, args.spec, args.target, self)
        self.register_outputs({})


def standby_target(primary: gce.GceTarget, region: str, subnetwork: pulumi.Input[str], client_ranges: Sequence[str],
                   serving: bool, depends_on: Sequence[pulumi.Resource]) -> gce.GceTarget:
    return gce.GceTarget(
        project=primary.project, region=region, environment=primary.environment, network=primary.network,
        subnetwork=subnetwork, client_ranges=tuple(client_ranges), registry_server=primary.registry_server,
        registry_repository=primary.registry_repository, deletion_protection=primary.deletion_protection,
        disk_gb=primary.disk_gb, name_suffix="-standby", running=serving, data_disk=serving,
        address=STANDBY_ADDRESS, depends_on=tuple(depends_on), grants=primary.grants)
