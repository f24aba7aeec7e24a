"""The docker backend: containers on one Docker host, on a private network (integration, D4).

`container_settings` is the one mapping from a `ContainerSpec` to Docker's settings; the Pulumi
resources and the generated `docker-compose.yml` (`python -m infra compose`) both come from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.backends.service import ContainerSpec, Endpoint

HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_RETRIES, HEALTH_START_PERIOD = "10s", "3s", 5, "20s"
LOG_OPTIONS = {"max-size": "50m", "max-file": "5"}
RESTART = "unless-stopped"
LOOPBACK = "127.0.0.1"
HEALTH_WAIT_SECONDS = 120
ENV_LABEL = "platform.env"
"""The container's plain (non-secret) variables as JSON: `docker-compose.yml` is generated from them."""
SECRET_ENV_LABEL = "platform.secret-env"
"""Names (never values) of the container's secret variables, for `docker-compose.yml` to reference."""


@dataclass(frozen=True)
class ContainerSettings:
    published_ports: list[int]
    """Published on the host's loopback only when public (the edge reaches the host through a tunnel);
    otherwise reachable on the network alone."""
    healthcheck: list[str]
    memory_mib: int
    cpu_quota: int
    """Microseconds per 100 ms period: 1000 CPU millis is one full CPU."""
    volume_name: str | None


def container_settings(spec: ContainerSpec) -> ContainerSettings:
    return ContainerSettings(
        published_ports=[spec.port] if spec.size.public else [],
        healthcheck=["CMD", *spec.healthcheck_command] if spec.healthcheck_command else [],
        memory_mib=spec.size.memory_mib,
        cpu_quota=spec.size.cpu_millis * 100,
        volume_name=f"{spec.name}-data" if spec.volume_path is not None else None,
    )


def deploy(name: str, spec: ContainerSpec, network: docker.Network, parent: pulumi.Resource) -> Endpoint:
    child = pulumi.ResourceOptions(parent=parent)
    settings = container_settings(spec)
    mounts: list[docker.ContainerVolumeArgsDict] = []
    if spec.volume_path is not None and settings.volume_name is not None:
        volume = docker.Volume(f"{name}-data", name=settings.volume_name, opts=child)
        mounts.append({"volume_name": volume.name, "container_path": spec.volume_path})
    for host, path in sorted(spec.host_mounts.items()):
        mounts.append({"host_path": host, "container_path": path, "read_only": True})
    env = {**spec.env, **spec.secret_env}
    envs = [pulumi.Output.concat(key, "=", value) for key, value in sorted(env.items())]
    healthcheck: docker.ContainerHealthcheckArgsDict | None = None
    if settings.healthcheck:
        healthcheck = {"tests": settings.healthcheck, "interval": HEALTH_INTERVAL, "timeout": HEALTH_TIMEOUT,
                       "retries": HEALTH_RETRIES, "start_period": HEALTH_START_PERIOD}
    container = docker.Container(
        name,
        name=spec.name,
        image=spec.image,
        command=list(spec.command) or None,
        envs=envs,
        networks_advanced=[{"name": network.name, "aliases": [spec.name]}],
        ports=[{"internal": p, "external": p, "ip": LOOPBACK} for p in settings.published_ports],
        volumes=mounts,
        healthcheck=healthcheck,
        # `pulumi up` waits until the health check passes, so what depends on the container finds it up.
        wait=healthcheck is not None,
        wait_timeout=HEALTH_WAIT_SECONDS,
        restart=RESTART,
        memory=settings.memory_mib,
        cpu_period=100_000,
        cpu_quota=settings.cpu_quota,
        log_driver="json-file",
        log_opts=LOG_OPTIONS,
        uploads=[{"file": path, "content": content} for path, content in sorted(spec.files.items())],
        labels=[
            {"label": ENV_LABEL, "value": pulumi.Output.all(**spec.env).apply(
                lambda env: json.dumps(env, sort_keys=True)) if spec.env else "{}"},
            {"label": SECRET_ENV_LABEL, "value": ",".join(sorted(spec.secret_env))},
        ],
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["envs"]),
    )
    public = pulumi.Output.from_input(f"http://{LOOPBACK}:{spec.port}") if spec.size.public else None
    return Endpoint(private_url=pulumi.Output.from_input(f"http://{spec.name}:{spec.port}"), public_url=public,
                    resources=[container])
