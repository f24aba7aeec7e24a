"""What a rule is: a small pure function of one resource (or of the whole stack) and a verdict.

A resource rule returns `NotApplicable(reason)` for resources it does not judge, otherwise the list
of what is wrong (empty: compliant). A stack rule returns `(urn, message)` pairs. The pack table
(`policies/pack.py`) gives each rule its id, title, reason, requirement and level.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

Level = Literal["advisory", "mandatory"]
Severity = Literal["low", "medium", "high", "critical"]


@dataclass(frozen=True)
class Resource:
    """A resource as the analyzer sees it: its type, logical name, URN and input properties."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]

    @property
    def stack(self) -> str:
        """The stack name, from `urn:pulumi:<stack>::<project>::...`."""
        return self.urn.split("::", 1)[0].removeprefix("urn:pulumi:")


@dataclass(frozen=True)
class NotApplicable:
    reason: str


Verdict = NotApplicable | list[str]
ResourceCheck = Callable[[Resource, Mapping[str, Any]], Verdict]
StackCheck = Callable[[Sequence[Resource], Mapping[str, Any]], list[tuple[str, str]]]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    why: str
    requirement: str
    severity: Severity
    level: Level
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    config_defaults: Mapping[str, Any] | None = None
    """Settings the rule reads from its policy config, with their defaults."""


# Resource kinds the rules look for, by type token.
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
RAILWAY = "pulumi-python:dynamic/railway:Service"
DOCKER = "docker:index/container:Container"
MEMORYSTORE = "gcp:redis/instance:Instance"
ENGINE = "commission-engine"


def service_name(resource: Resource) -> str | None:
    """The container service's own name, whatever the backend."""
    if resource.type in (CLOUD_RUN, RAILWAY, DOCKER):
        name = resource.props.get("name")
        return str(name) if name is not None else None
    return None


def replica_bounds(resource: Resource) -> tuple[int, int] | None:
    if resource.type == CLOUD_RUN:
        scaling = resource.props.get("template", {}).get("scaling", {})
        return int(scaling.get("minInstanceCount", 0)), int(scaling.get("maxInstanceCount", 100))
    if resource.type == RAILWAY:
        replicas = int(resource.props.get("num_replicas", 1))
        return replicas, replicas
    if resource.type == DOCKER:
        return 1, 1
    return None


def service_env(resource: Resource) -> dict[str, Any] | None:
    """A container service's plain environment, where the analyzer can see it."""
    if resource.type == RAILWAY:
        variables = resource.props.get("variables")
        return {str(k): v for k, v in cast(Mapping[Any, Any], variables).items()} \
            if isinstance(variables, Mapping) else None
    if resource.type == DOCKER:
        labels = {label.get("label"): label.get("value") for label in resource.props.get("labels", [])}
        return json.loads(labels["platform.env"]) if "platform.env" in labels else None
    if resource.type == CLOUD_RUN:
        containers = resource.props.get("template", {}).get("containers", [])
        return {e["name"]: e.get("value") for c in containers for e in c.get("envs", []) if "value" in e}
    return None


def is_public(resource: Resource) -> bool:
    """Whether a container service answers from the internet."""
    if resource.type == RAILWAY:
        return resource.props.get("public_port") is not None
    if resource.type == DOCKER:
        return bool(resource.props.get("ports"))
    if resource.type == CLOUD_RUN:
        return resource.props.get("ingress") in (None, "INGRESS_TRAFFIC_ALL")
    return False


def backend_of(resource: Resource) -> str | None:
    return {CLOUD_RUN: "cloudrun", RAILWAY: "railway", DOCKER: "docker", MEMORYSTORE: "cloudrun"}.get(resource.type)


def size_of(resource: Resource) -> tuple[float, float] | None:
    """(vCPUs, GiB of memory) a container service may use."""
    if resource.type == RAILWAY:
        return float(resource.props.get("vcpus", 0)), float(resource.props.get("memory_gb", 0))
    if resource.type == DOCKER:
        return resource.props.get("cpuQuota", 0) / resource.props.get("cpuPeriod", 100_000), \
            resource.props.get("memory", 0) / 1024
    if resource.type == MEMORYSTORE:
        return 0.0, float(resource.props.get("memorySizeGb", 0))
    return None
