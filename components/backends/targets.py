"""Where a stack's container services can run, and the one place that picks the backend."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.backends import cloudrun, gce, railway
from components.backends import docker as docker_backend
from components.backends.service import ContainerSpec, Endpoint


@dataclass(frozen=True)
class Targets:
    docker_network: docker.Network | None = None
    cloudrun: cloudrun.CloudRunTarget | None = None
    railway: railway.RailwayTarget | None = None
    gce: gce.GceTarget | None = None


def deploy(name: str, spec: ContainerSpec, targets: Targets, parent: pulumi.Resource) -> Endpoint:
    backend = spec.size.backend
    if spec.deploy_env and backend != "railway":
        # Only the Railway provider reads variables from the deploy job's environment when it applies.
        raise ValueError(f"{spec.name}: deploy_env is supported on the railway backend only, not {backend!r}")
    if backend == "docker" and targets.docker_network is not None:
        return docker_backend.deploy(name, spec, targets.docker_network, parent)
    if backend == "cloudrun" and targets.cloudrun is not None:
        return cloudrun.deploy(name, spec, targets.cloudrun, parent)
    if backend == "railway" and targets.railway is not None:
        return railway.deploy(name, spec, targets.railway, parent)
    if backend == "gce" and targets.gce is not None:
        return gce.deploy(name, spec, targets.gce, parent)
    # Config validation requires each backend's section wherever a service uses it.
    raise ValueError(f"{spec.name}: no target for backend {backend!r}")
