"""What a rule is: a small pure function of one resource (or of the whole stack) and a verdict.

A resource rule returns `NotApplicable(reason)` for resources it does not judge, otherwise the list
of what is wrong (empty: compliant). A stack rule returns `(urn, finding)` pairs. A finding is a
message, or a `Violation` naming its subjects (the hosts or the resource it is about): a waiver
covers a violation only when it names those subjects (`policies/waivers.py`). The pack table
(`policies/pack.py`) gives each rule its id, title, reason, requirement, level and what it denies
by default.

Rules read plain data: the pack unwraps CrossGuard's property proxies first, and a value the engine
does not know yet (during a preview) is `UNKNOWN`, never a string a rule could mistake for a value.
Rules compare against what is allowed, so an unknown value is never allowed.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

Level = Literal["advisory", "mandatory"]
Severity = Literal["low", "medium", "high", "critical"]
StackKind = Literal["integration", "staging", "prod"]


class Unknown:
    """A value the engine computes only when it applies the change (an output of another resource)."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown until apply>"

    __str__ = __repr__


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Resource:
    """A resource as the analyzer sees it: its type, logical name, URN and input properties."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    secret_keys: frozenset[str] = frozenset()
    """The top-level inputs the engine marked secret (pulumi_policy unwraps the envelope; policies/pack.py keeps
    which keys had one)."""

    @property
    def stack(self) -> str:
        """The stack name, from `urn:pulumi:<stack>::<project>::...` (the engine writes it)."""
        return self.urn.split("::", 1)[0].removeprefix("urn:pulumi:")

    def get(self, *path: str | int) -> Any:
        """The value at `path`, None where any step is missing or not a container."""
        value: Any = self.props
        for step in path:
            if isinstance(step, int):
                items = cast(list[Any], value) if isinstance(value, list) else []
                value = items[step] if step < len(items) else None
            else:
                value = cast(Mapping[str, Any], value).get(step) if isinstance(value, Mapping) else None
            if value is None:
                return None
        return value


@dataclass(frozen=True)
class NotApplicable:
    reason: str


@dataclass(frozen=True)
class Violation:
    message: str
    subjects: tuple[str, ...] = field(default=())
    """The hosts (or the one resource) the violation is about; empty: the whole zone or stack,
    which no waiver can cover."""


Finding = str | Violation
Verdict = NotApplicable | Sequence[Finding]
ResourceCheck = Callable[[Resource, Mapping[str, Any]], Verdict]
StackCheck = Callable[[Sequence[Resource], Mapping[str, Any]], Sequence[tuple[str, Finding]]]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    why: str
    requirement: str
    severity: Severity
    level: Level
    denies: str
    """What the rule refuses unless shown otherwise (POLICIES.md)."""
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    config_defaults: Mapping[str, Any] | None = None
    """Settings the rule reads from its policy config, with their defaults."""

    @property
    def iam(self) -> bool:
        """IAM rules are never waived in production."""
        return self.id.startswith("PLAT-IAM-")


def as_violation(finding: Finding, default_subject: str | None = None) -> Violation:
    if isinstance(finding, Violation):
        return finding
    return Violation(finding, (default_subject,) if default_subject else ())


# ---------------------------------------------------------------------------------------------
# The stack a resource belongs to


def stack_kind(stack: str) -> StackKind:
    """What the stack is held to: `integration` and `staging` by name, anything else is production."""
    return "integration" if stack == "integration" else "staging" if stack == "staging" else "prod"


# ---------------------------------------------------------------------------------------------
# Plain values


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Where in `value` something is not known yet."""
    if value is UNKNOWN:
        return [path or "."]
    if isinstance(value, Mapping):
        items = cast(Mapping[str, Any], value).items()
        return [p for k, v in items for p in unknown_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(cast(list[Any], value)) for p in unknown_paths(v, f"{path}[{i}]")]
    return []


def strings(value: Any) -> Iterator[str]:
    """Every string anywhere in `value`, JSON documents inside strings included."""
    if isinstance(value, str):
        yield value
        text = value.strip()
        if text[:1] in "{[":
            with contextlib.suppress(ValueError):
                yield from strings(json.loads(text))
    elif isinstance(value, Mapping):
        for k, v in cast(Mapping[str, Any], value).items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in cast(list[Any], value):
            yield from strings(v)


def as_list(value: Any) -> list[Any]:
    return cast(list[Any], value) if isinstance(value, list) else []


def as_map(value: Any) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------------------------------------
# Container services, whatever the backend


CLOUD_RUN = "gcp:cloudrunv2/service:Service"
RAILWAY = "pulumi-python:dynamic/railway:Service"
DOCKER = "docker:index/container:Container"
DOCKER_IMAGE = "docker:index/image:Image"
MEMORYSTORE = "gcp:redis/instance:Instance"
SERVICE_ACCOUNT = "gcp:serviceaccount/account:Account"
ENGINE = "commission-engine"
CONTAINER_TYPES = (CLOUD_RUN, RAILWAY, DOCKER)

# Images by repository name: what a service is, whatever it is called.
_ROLE_IMAGES: dict[str, str] = {"commission-engine": "engine", "pocketbase": "pocketbase", "redis": "redis",
                                "valkey": "redis", "keydb": "redis", "redis-stack-server": "redis",
                                "redis-stack": "redis"}
_ROLE_NAMES: dict[str, str] = {ENGINE: "engine", "pocketbase": "pocketbase", "redis": "redis"}


def images(resource: Resource) -> list[Any]:
    """The images a container service runs (values as given: strings or UNKNOWN)."""
    if resource.type == CLOUD_RUN:
        return [c.get("image") for c in map(as_map, as_list(resource.get("template", "containers")))]
    if resource.type in (RAILWAY, DOCKER):
        return [resource.props.get("image")]
    return []


def image_repository(image: str) -> str:
    """`ghcr.io/acme/commission-engine:abc@sha256:...` -> `commission-engine`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def role(resource: Resource) -> str | None:
    """`engine`, `pocketbase` or `redis` by the service's name or by the image it runs."""
    if resource.type == MEMORYSTORE:
        return "redis"
    if resource.type not in CONTAINER_TYPES:
        return None
    by_image = {_ROLE_IMAGES.get(image_repository(i)) for i in images(resource) if isinstance(i, str)} - {None}
    if by_image:
        return sorted(r for r in by_image if r is not None)[0]
    name = resource.props.get("name")
    return _ROLE_NAMES.get(name) if isinstance(name, str) else None


def service_name(resource: Resource) -> str | None:
    """The container service's own name, whatever the backend."""
    if resource.type in CONTAINER_TYPES:
        name = resource.props.get("name")
        return str(name) if name is not None else None
    return None


def replica_bounds(resource: Resource) -> tuple[Any, Any] | None:
    if resource.type == CLOUD_RUN:
        scaling = as_map(resource.get("template", "scaling"))
        return scaling.get("minInstanceCount", 0), scaling.get("maxInstanceCount", 100)
    if resource.type == RAILWAY:
        replicas = resource.props.get("num_replicas", 1)
        return replicas, replicas
    if resource.type == DOCKER:
        return 1, 1
    return None


def service_env(resource: Resource) -> dict[str, Any] | None:
    """A container service's environment as the container gets it (values as given)."""
    if resource.type == RAILWAY:
        variables = resource.props.get("variables", {})
        return dict(as_map(variables)) if isinstance(variables, Mapping) else None
    if resource.type == DOCKER:
        env: dict[str, Any] = {}
        for item in as_list(resource.props.get("envs")):
            if isinstance(item, str) and "=" in item:
                key, _, value = item.partition("=")
                env[key] = value
        labels = {as_map(x).get("label"): as_map(x).get("value") for x in as_list(resource.props.get("labels"))}
        label = labels.get("platform.env")
        if isinstance(label, str):
            try:
                env = {**as_map(json.loads(label)), **env}
            except ValueError:
                return None
        return env
    if resource.type == CLOUD_RUN:
        return {str(e.get("name")): e.get("value") if "value" in e else as_map(e.get("valueSource"))
                for c in map(as_map, as_list(resource.get("template", "containers")))
                for e in map(as_map, as_list(c.get("envs")))}
    return None


def command_argv(resource: Resource) -> list[str] | None:
    """The container's command as its words (docker `command`, Railway `start_command` split as a shell
    would), a `sh -c "..."` wrapper opened; None when it cannot be read."""
    if resource.type == DOCKER:
        argv = [str(x) for x in as_list(resource.props.get("command"))]
    elif resource.type == RAILWAY:
        try:
            argv = shlex.split(str(resource.props.get("start_command") or ""))
        except ValueError:
            return None
    elif resource.type == CLOUD_RUN:
        argv = [str(x) for c in map(as_map, as_list(resource.get("template", "containers")))
                for x in as_list(c.get("command")) + as_list(c.get("args"))]
    else:
        return []
    while len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash") and argv[1] == "-c":
        try:
            argv = shlex.split(argv[2])
        except ValueError:
            return None
    return argv


def is_public(resource: Resource) -> bool:
    """Whether a container service answers from the internet (anything not plainly private is)."""
    if resource.type == RAILWAY:
        return resource.props.get("public_port") is not None or resource.props.get("custom_domain") is not None
    if resource.type == DOCKER:
        if resource.props.get("networkMode") not in (None, "bridge", "none") \
                and not str(resource.props.get("networkMode")).startswith("container:"):
            return True  # host networking (or unknown) publishes every port on the host's interfaces
        ports = as_list(resource.props.get("ports"))
        return any(as_map(p).get("ip") not in ("127.0.0.1", "::1") for p in ports)
    if resource.type == CLOUD_RUN:
        ingress = resource.props.get("ingress")
        return ingress in (None, "INGRESS_TRAFFIC_ALL") or is_unknown(ingress)
    return False


def backend_of(resource: Resource) -> str | None:
    return {CLOUD_RUN: "cloudrun", RAILWAY: "railway", DOCKER: "docker", MEMORYSTORE: "cloudrun"}.get(resource.type)


def size_of(resource: Resource) -> tuple[float, float] | None:
    """(vCPUs, GiB of memory) a container service may use; None when it cannot be read."""
    try:
        if resource.type == RAILWAY:
            return float(resource.props.get("vcpus", 0)), float(resource.props.get("memory_gb", 0))
        if resource.type == DOCKER:
            return (float(resource.props.get("cpuQuota", 0)) / float(resource.props.get("cpuPeriod", 100_000)),
                    float(resource.props.get("memory", 0)) / 1024)
        if resource.type == MEMORYSTORE:
            return 0.0, float(resource.props.get("memorySizeGb", 0))
        if resource.type == CLOUD_RUN:
            limits = [as_map(as_map(c.get("resources")).get("limits"))
                      for c in map(as_map, as_list(resource.get("template", "containers")))]
            cpu = sum(_cpu(x.get("cpu", "1")) for x in limits)
            memory = sum(_memory_gib(x.get("memory", "512Mi")) for x in limits)
            return cpu, memory
    except (TypeError, ValueError):
        return None
    return None


def _cpu(value: Any) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _memory_gib(value: Any) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi|M|G)", str(value))
    if match is None:
        raise ValueError(f"memory {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    return number / 1024 if unit in ("Mi", "M") else number
