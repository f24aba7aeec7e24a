"""The docker backend: containers on one Docker host, on a private network (integration, D4)."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.backends.service import ContainerSpec, Endpoint


def deploy(name: str, spec: ContainerSpec, network: docker.Network, parent: pulumi.Resource) -> Endpoint:
    child = pulumi.ResourceOptions(parent=parent)
    mounts: list[docker.ContainerVolumeArgsDict] = []
    if spec.volume_path is not None:
        volume = docker.Volume(f"{name}-data", name=f"{spec.name}-data", opts=child)
        mounts.append({"volume_name": volume.name, "container_path": spec.volume_path})
    env = {**spec.env, **spec.secret_env}
    envs = [pulumi.Output.concat(key, "=", value) for key, value in sorted(env.items())]
    healthcheck: docker.ContainerHealthcheckArgsDict | None = None
    if spec.healthcheck_command:
        healthcheck = {"tests": ["CMD", *spec.healthcheck_command], "interval": "10s", "timeout": "3s",
                       "retries": 5, "start_period": "20s"}
    # Published on the host only when public; everything else is reachable on the network alone.
    ports: list[docker.ContainerPortArgsDict] = (
        [{"internal": spec.port, "external": spec.port}] if spec.size.public else [])
    docker.Container(
        name,
        name=spec.name,
        image=spec.image,
        command=list(spec.command) or None,
        envs=envs,
        networks_advanced=[{"name": network.name, "aliases": [spec.name]}],
        ports=ports,
        volumes=mounts,
        healthcheck=healthcheck,
        restart="unless-stopped",
        memory=spec.size.memory_mib,
        cpu_period=100_000,
        cpu_quota=spec.size.cpu_millis * 100,
        log_driver="json-file",
        log_opts={"max-size": "50m", "max-file": "5"},
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["envs"]),
    )
    public = pulumi.Output.from_input(f"http://localhost:{spec.port}") if spec.size.public else None
    return Endpoint(private_url=pulumi.Output.from_input(f"http://{spec.name}:{spec.port}"), public_url=public)
