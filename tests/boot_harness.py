"""Boot emulation (#20 item 19): every container service of a stack's plan, started here from its planned spec.

`planned_containers` reads each container service out of a plan, whatever runs it: a Docker container
(`docker:index/container:Container`), a Railway service, each container of a Cloud Run service (sidecars
included) and the container a Compute Engine VM's user-data starts with `docker run`. Each carries its
image, its command (entrypoint and arguments as the platform applies them), its environment (secret
values resolved from Secret Manager as Cloud Run and the VM read them), its port, the probes the platform
runs against it, whether the plan leaves it running, and the names other services reach it by.

The plan used is the *applied* one (`applied_plan`): under preview, what a provider computes at create is
unknown (a secret version's number, so a VM's whole user-data; Memorystore's host, AUTH string and CA), so
`AppliedMocks` answers those as the providers document them.

`StackBoot` then starts, here, every container the plan leaves running and whose binary exists here, each
through its image's entrypoint (`EMULATIONS`), on free loopback ports, with its dependencies in the state the
plan leaves them: a service the plan stops (prod's standby PocketBase: its VM is TERMINATED) is a blackhole,
as an internal address without an instance is in a VPC. The secret values of the plan are replaced by test
values (consistently: a password in two services' variables, or inside a URL, stays the same secret). It
measures each startup probe against the real process, against the probe's own budget (capped so the suite
stays fast), then checks that each readiness endpoint tells the truth about its dependencies.

What runs here: the engine (components/engine, from source), PocketBase (the real binary through the image's
entrypoint.sh), Redis (redis-server; Memorystore as redis-server with TLS and AUTH), Prometheus in agent mode
and the self-hosted Prometheus (Debian's prometheus) and the Redis exporter (Debian's
prometheus-redis-exporter). What does not, and why, is `CANNOT_RUN_HERE`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.plan import TLS_CERT_PLACEHOLDER, TLS_KEY_PLACEHOLDER, Plan, PlanMocks, PlannedResource, run_plan
from infra.stackfile import read_stack_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
_SIG = "4dabf18193072939515e22adb298388d"

DOCKER_CONTAINER = "docker:index/container:Container"
DOCKER_IMAGE = "docker:index/image:Image"
RAILWAY_SERVICE = "pulumi-python:dynamic/railway:Service"
CLOUD_RUN_SERVICE = "gcp:cloudrunv2/service:Service"
GCE_INSTANCE = "gcp:compute/instance:Instance"
MEMORYSTORE = "gcp:redis/instance:Instance"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
CONTAINER_TYPES = (DOCKER_CONTAINER, RAILWAY_SERVICE, CLOUD_RUN_SERVICE, GCE_INSTANCE)
"""Resource types that run containers; `uncovered_container_types` fails on any other that names an image."""

DEFAULT_CAP_S = 30.0
"""A startup probe must pass within min(its budget, this) here, so the suite stays fast. The engine answers in
2-3 s on an idle machine and in up to 15 s on a test machine shared by several suites; a service slower than
this here would be close to its budget on a small instance anyway."""


# ---------------------------------------------------------------------------------------------
# The applied plan: what providers compute at create, answered as they document it.

MEMORYSTORE_TLS_PORT = 6378
"""Memorystore for Redis with in-transit encryption serves on 6378, without it on 6379
(cloud.google.com/memorystore/docs/redis/manage-in-transit-encryption: "instances with in-transit
encryption enabled use port 6378")."""
CA_PLACEHOLDER = "-----BEGIN CERTIFICATE-----\nBOOT-EMULATION-MEMORYSTORE-CA\n-----END CERTIFICATE-----"
"""Stands for Memorystore's server CA (`server_ca_certs[].cert`) in the applied plan; the emulated
instance's own CA replaces it, as any other secret stand-in is replaced by a test value."""


def memorystore_host(name: str) -> str:
    return f"10.30.0.{int(hashlib.sha256(name.encode()).hexdigest()[:2], 16) % 200 + 10}"


def memorystore_auth(name: str) -> str:
    """Memorystore generates the AUTH string (`auth_string`, "populated if auth_enabled is true")."""
    return hashlib.sha256(f"auth-{name}".encode()).hexdigest()[:36]


class AppliedMocks(PlanMocks):
    """The plan's mocks, plus the outputs a container's spec reads that providers compute at create."""

    def new_resource(self, args: Any) -> tuple[str | None, dict[str, Any]]:
        ident, state = super().new_resource(args)
        inputs: dict[str, Any] = dict(args.inputs)
        if args.typ == SECRET_VERSION:
            # Secret Manager numbers a secret's versions from 1 (cloud.google.com/secret-manager/docs/add-secret-version).
            state["version"] = "1"
        elif args.typ == MEMORYSTORE:
            tls = inputs.get("transitEncryptionMode") == "SERVER_AUTHENTICATION"
            state.update(host=memorystore_host(args.name), port=MEMORYSTORE_TLS_PORT if tls else 6379,
                         authString=memorystore_auth(args.name) if inputs.get("authEnabled") else "",
                         serverCaCerts=[{"cert": CA_PLACEHOLDER}] if tls else [])
        elif args.typ == CLOUD_RUN_SERVICE:
            state["uri"] = f"https://{inputs.get('name')}-{hashlib.sha256(args.name.encode()).hexdigest()[:10]}.a.run.app"
        return ident, state


def applied_plan(stack: str) -> Plan:
    return run_plan(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml"), stack, mocks=AppliedMocks())


# ---------------------------------------------------------------------------------------------
# The planned containers


def plain(value: Any) -> Any:
    """The wire value with every secret unwrapped."""
    if isinstance(value, dict):
        if _SIG in value:
            return plain(value.get("value"))
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and _SIG in value


@dataclass(frozen=True)
class Probe:
    """A check the platform runs against a container: HTTP GET `path`, a `command` run in the container, or a TCP
    connect (neither). It fails the start when it has not passed by `budget` seconds after the container started."""

    kind: str
    """`startup`, `liveness` (Cloud Run), `healthcheck` (Docker's), `deploy` (Railway's deploy-time healthcheck)."""
    path: str | None
    command: tuple[str, ...]
    port: int | None
    initial_delay: float
    period: float
    failure_threshold: int
    timeout: float
    ok: tuple[int, int]
    """HTTP statuses that pass, [low, high)."""
    rule: str
    """Who runs it, and the documented semantics the budget follows."""
    limit: float | None = None
    """An outer bound: how long `pulumi up` waits for it (the Docker provider's `wait_timeout`)."""

    @property
    def budget(self) -> float:
        budget = self.initial_delay + self.period * self.failure_threshold
        return min(budget, self.limit) if self.limit is not None else budget

    def describe(self) -> str:
        what = f"GET {self.path}" if self.path else " ".join(self.command) if self.command else "TCP connect"
        limit = f", at most {self.limit:g} s" if self.limit is not None else ""
        return (f"{self.kind} probe {what} ({self.rule}: budget {self.initial_delay:g} s + {self.period:g} s x "
                f"{self.failure_threshold}{limit} = {self.budget:g} s)")


# Cloud Run's probe defaults (cloud.google.com/run/docs/reference/rest/v2/Container#Probe): initialDelaySeconds 0,
# periodSeconds 10, failureThreshold 3, timeoutSeconds 1; "Any response between 200 and 400 is a success", and
# a startup probe that has not succeeded within initialDelay + failureThreshold x periodSeconds shuts the container
# down (cloud.google.com/run/docs/configuring/healthchecks). A container without one gets the default TCP startup
# probe: "timeoutSeconds: 240 periodSeconds: 240 failureThreshold: 1".
CLOUD_RUN_RULE = "Cloud Run, cloud.google.com/run/docs/configuring/healthchecks"
# Docker (docs.docker.com/reference/dockerfile/#healthcheck, Engine API HealthConfig): the first check runs an
# interval after the start; failures within the start period do not count; `retries` consecutive failures make
# the container unhealthy. The Docker provider's `wait` waits for healthy up to `wait_timeout` seconds
# (pulumi.com/registry/packages/docker/api-docs/container: "The timeout in seconds to wait the container to be
# healthy after creation").
DOCKER_RULE = "Docker HEALTHCHECK, docs.docker.com/reference/dockerfile/#healthcheck"
# Railway: "Railway will query the endpoint until it receives an HTTP 200 response"; "The default timeout on
# healthchecks is 300 seconds" (docs.railway.com/reference/healthchecks).
RAILWAY_RULE = "Railway deploy healthcheck, docs.railway.com/reference/healthchecks"
RAILWAY_HEALTHCHECK_TIMEOUT = 300.0
RAILWAY_ATTEMPT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Container:
    stack: str
    backend: str
    """docker, railway, cloudrun, gce."""
    resource: str
    name: str
    image: str
    entrypoint: tuple[str, ...] | None
    """Replaces the image's ENTRYPOINT (and then its CMD too, unless `args` is given)."""
    args: tuple[str, ...] | None
    """Replaces the image's CMD."""
    env: dict[str, str]
    secret_names: frozenset[str]
    port: int | None
    """The port the platform sends traffic and probes to; None where the plan names none (Docker, private)."""
    probes: tuple[Probe, ...]
    running: bool
    """Whether the plan leaves it running."""
    hosts: tuple[str, ...]
    """Names and addresses other services reach it by."""
    files: dict[str, str] = field(default_factory=dict[str, str])
    """Files the backend puts in the container (Docker uploads)."""
    sidecar_of: str | None = None
    why_stopped: str = ""

    @property
    def key(self) -> str:
        return f"{self.stack} {self.resource}/{self.name}"

    def probe(self, *kinds: str) -> Probe | None:
        return next((p for p in self.probes if p.kind in kinds), None)


def _seconds(text: str) -> float:
    """Docker's durations: `10s`, `1m30s`, `500ms`."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def planned_containers(plan: Plan) -> list[Container]:
    containers: list[Container] = []
    for resource in plan.resources:
        if resource.type == DOCKER_CONTAINER:
            containers.append(_docker(plan, resource))
        elif resource.type == RAILWAY_SERVICE:
            containers.append(_railway(plan, resource))
        elif resource.type == CLOUD_RUN_SERVICE:
            containers.extend(_cloud_run(plan, resource))
        elif resource.type == GCE_INSTANCE:
            containers.append(_gce(plan, resource))
    return containers


def uncovered_container_types(plan: Plan) -> list[str]:
    """Resources that name a container image but are of a type `planned_containers` does not read."""
    known = {*CONTAINER_TYPES, DOCKER_IMAGE, "docker:index/remoteImage:RemoteImage"}

    def names_image(value: Any) -> bool:
        if isinstance(value, dict):
            return any((k == "image" and isinstance(v, str)) or names_image(v) for k, v in value.items())
        return isinstance(value, list) and any(names_image(v) for v in value)

    return sorted({f"{r.type} {r.name}" for r in plan.resources
                   if r.custom and r.type not in known and names_image(plain(r.wire_inputs))})


def _docker(plan: Plan, resource: PlannedResource) -> Container:
    raw = resource.wire_inputs
    inputs = plain(raw)
    env: dict[str, str] = {}
    secret_names: set[str] = set()
    envs_secret = is_secret(raw.get("envs"))
    entries = list(inputs.get("envs") or [])
    raw_entries = raw.get("envs") if isinstance(raw.get("envs"), list) else [None] * len(entries)
    for entry_raw, entry in zip(raw_entries, entries, strict=True):
        key, _, value = str(entry).partition("=")
        env[key] = value
        if envs_secret or is_secret(entry_raw):
            secret_names.add(key)
    probes: list[Probe] = []
    check = inputs.get("healthcheck")
    if check:
        tests = list(check["tests"])
        command = tuple(tests[1:]) if tests[0] == "CMD" else ("sh", "-c", tests[1])
        probes.append(Probe("healthcheck", None, command, None, _seconds(check.get("startPeriod", "0s")),
                            _seconds(check.get("interval", "30s")), int(check.get("retries", 3)),
                            _seconds(check.get("timeout", "30s")), (0, 0), DOCKER_RULE,
                            float(inputs.get("waitTimeout", 60)) if inputs.get("wait") else None))
    else:
        probes.extend(image_healthcheck(image_source(plan, inputs["image"])))
    aliases = [a for network in inputs.get("networksAdvanced") or [] for a in network.get("aliases") or []]
    return Container(plan.stack, "docker", resource.name, inputs["name"], inputs["image"],
                     tuple(inputs["entrypoints"]) if inputs.get("entrypoints") else None,
                     tuple(inputs["command"]) if inputs.get("command") else None, env, frozenset(secret_names),
                     None, tuple(probes), True, tuple(dict.fromkeys([inputs["name"], *aliases])),
                     files={u["file"]: u["content"] for u in inputs.get("uploads") or []})


def _railway(plan: Plan, resource: PlannedResource) -> Container:
    raw = resource.wire_inputs
    inputs = plain(raw)
    variables = inputs.get("variables") or {}
    raw_variables = raw.get("variables")
    all_secret = is_secret(raw_variables)
    secret_names = {k for k in variables if all_secret or (isinstance(raw_variables, dict)
                                                          and is_secret(raw_variables.get(k)))}
    # Variables the Railway provider sets from the deploy job's environment when it applies (`deploy_variables`:
    # service variable -> environment variable, components/backends/railway.py): the deploy job holds a value for
    # each, so the service starts with one; a stand-in here, secret like the credentials they are.
    for name, source in (inputs.get("deploy_variables") or {}).items():
        variables = {**variables, name: f"deploy-env-{source}-{secrets.token_hex(8)}"}
        secret_names.add(name)
    port = int(variables["PORT"]) if "PORT" in variables else None
    probes: tuple[Probe, ...] = ()
    if inputs.get("healthcheck_path"):
        timeout = float(inputs.get("healthcheck_timeout") or RAILWAY_HEALTHCHECK_TIMEOUT)
        # Railway documents no timeout per request; each one here may take RAILWAY_ATTEMPT_TIMEOUT.
        probes = (Probe("deploy", inputs["healthcheck_path"], (), port, 0.0, timeout, 1, RAILWAY_ATTEMPT_TIMEOUT,
                        (200, 201), RAILWAY_RULE),)
    start = inputs.get("start_command")
    # Railway runs the start command in exec form in place of the image's ENTRYPOINT, split as a shell splits
    # words (docs.railway.com/deployments/start-command; components/backends/railway.py `start_command`).
    return Container(plan.stack, "railway", resource.name, inputs["name"], inputs["image"],
                     tuple(shlex.split(start)) if start else None, None, dict(variables), frozenset(secret_names),
                     port, probes, int(inputs.get("num_replicas", 1)) > 0, (f"{inputs['name']}.railway.internal",))


def _secret_data(plan: Plan) -> dict[str, tuple[str, bool]]:
    """Secret Manager: secret id -> (the data of the version the plan adds, whether it is a secret)."""
    ids = {r.urn: plain(r.wire_inputs).get("secretId") for r in plan.resources if r.type == SECRET}
    out: dict[str, tuple[str, bool]] = {}
    for version in (r for r in plan.resources if r.type == SECRET_VERSION):
        for urn in version.dependencies:
            if urn in ids:
                data = version.wire_inputs.get("secretData")
                out[str(ids[urn])] = (str(plain(data)), is_secret(data))
    return out


def _cloud_run_probe(kind: str, probe: dict[str, Any] | None, port: int | None) -> Probe | None:
    if probe is None:
        return None
    http = probe.get("httpGet")
    tcp = probe.get("tcpSocket")
    return Probe(kind, http.get("path", "/") if http else None, (),
                 int((http or tcp or {}).get("port") or port or 0) or None,
                 float(probe.get("initialDelaySeconds", 0)), float(probe.get("periodSeconds", 10)),
                 int(probe.get("failureThreshold", 3)), float(probe.get("timeoutSeconds", 1)), (200, 400),
                 CLOUD_RUN_RULE)


def _cloud_run(plan: Plan, resource: PlannedResource) -> list[Container]:
    inputs = plain(resource.wire_inputs)
    secrets_by_id = _secret_data(plan)
    template = inputs["template"]
    out: list[Container] = []
    ingress_key = ""
    for index, spec in enumerate(template["containers"]):
        env: dict[str, str] = {}
        secret_names: set[str] = set()
        for entry in spec.get("envs") or []:
            if "valueSource" in entry:
                env[entry["name"]], _ = secrets_by_id[entry["valueSource"]["secretKeyRef"]["secret"]]
                secret_names.add(entry["name"])
            else:
                env[entry["name"]] = str(entry.get("value", ""))
        port = int(spec["ports"]["containerPort"]) if spec.get("ports") else None
        startup = _cloud_run_probe("startup", spec.get("startupProbe"), port)
        if startup is None and index == 0:
            startup = Probe("startup", None, (), port or 8080, 0, 240, 1, 240, (0, 0), CLOUD_RUN_RULE + " (default)")
        liveness = _cloud_run_probe("liveness", spec.get("livenessProbe"), port)
        container = Container(plan.stack, "cloudrun", resource.name, spec.get("name") or inputs["name"],
                              spec["image"], tuple(spec["commands"]) if spec.get("commands") else None,
                              tuple(spec["args"]) if spec.get("args") else None, env, frozenset(secret_names),
                              port, tuple(p for p in (startup, liveness) if p is not None), True, (),
                              sidecar_of=ingress_key or None)
        if index == 0:
            ingress_key = container.key
        out.append(container)
    return out


_SECRET_URL = re.compile(r"/secrets/([^/\s]+)/versions/[^:\s]+:access")


def _gce(plan: Plan, resource: PlannedResource) -> Container:
    """The container a VM's user-data runs: its `docker run` line, with the secrets its start-up script reads
    from Secret Manager into the env file (each line names the variable and the secret's URL)."""
    inputs = plain(resource.wire_inputs)
    user_data = str(inputs["metadata"]["user-data"])
    run_line = next((line.split("ExecStart=", 1)[1] for line in user_data.splitlines()
                     if "ExecStart=" in line and "docker run " in line), None)
    if run_line is None:
        raise ValueError(f"{plan.stack} {resource.name}: no `ExecStart=... docker run` in its user-data")
    full = shlex.split(run_line)
    words = full[full.index("run") + 1:]
    env: dict[str, str] = {}
    secret_names: set[str] = set()
    port: int | None = None
    volumes: list[str] = []
    index = 0
    while words[index].startswith("-"):
        flag = words[index]
        value = words[index + 1] if flag not in ("--rm", "-d", "-i", "-t") else ""
        if flag in ("-e", "--env"):
            key, _, val = value.partition("=")
            env[key] = val
        elif flag in ("-p", "--publish"):
            port = int(value.rsplit(":", 1)[-1])
        elif flag in ("-v", "--volume"):
            volumes.append(value)
        elif flag == "--env-file":
            data = _secret_data(plan)
            for line in user_data.splitlines():
                found = _SECRET_URL.search(line)
                if not found:
                    continue
                secret_id = found.group(1)
                names = [n for n in re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", line)
                         if secret_id.endswith(n.lower().replace("_", "-"))]
                if not names:
                    raise ValueError(f"{plan.stack} {resource.name}: which variable holds secret {secret_id}?")
                env[max(names, key=len)], _ = data[secret_id]
                secret_names.add(max(names, key=len))
        index += 1 if flag in ("--rm", "-d", "-i", "-t") else 2
    image, args = words[index], tuple(words[index + 1:])
    # The unit starts only where its data disk is (`ConditionPathExists=/dev/disk/by-id/google-<device>`).
    condition = re.search(r"ConditionPathExists=/dev/disk/by-id/google-(\S+)", user_data)
    disks = {d.get("deviceName") for d in inputs.get("attachedDisks") or []}
    running, why = True, ""
    if inputs.get("desiredStatus", "RUNNING") != "RUNNING":
        running, why = False, f"its VM is declared {inputs['desiredStatus']}"
    elif condition and condition.group(1) not in disks:
        running, why = False, f"its VM has no disk {condition.group(1)}, which its unit requires"
    hosts = tuple(str(n["networkIp"]) for n in inputs.get("networkInterfaces") or [] if n.get("networkIp"))
    name = next((full[i + 1] for i, w in enumerate(full) if w == "--name"), resource.name)
    return Container(plan.stack, "gce", resource.name, name, image, None, args or None, env, frozenset(secret_names),
                     port, tuple(image_healthcheck(image_source(plan, image))), running, hosts, why_stopped=why)


# ---------------------------------------------------------------------------------------------
# Images: which local build context or upstream image a planned image is


@dataclass(frozen=True)
class ImageConfig:
    """The final stage of a Dockerfile: what a container of it runs by default."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str]
    workdir: str
    healthcheck: Probe | None


def image_source(plan: Plan, image: str) -> str:
    """The build context a planned image is built from (`components/engine`), or the upstream image it runs
    (`redis:7.4.1-alpine`): a context whose Dockerfile only names an upstream image is that image."""
    for resource in plan.resources:
        if resource.type == DOCKER_IMAGE:
            inputs = plain(resource.wire_inputs)
            # A pushed image runs by digest (`repo@sha256:...`, components/images.py): the same repository.
            if inputs.get("imageName") == image or ("@" in image and inputs.get("imageName")
                                                    and repository(str(inputs["imageName"])) == repository(image)):
                context = str(inputs["build"]["context"])
                dockerfile = (PROJECT_DIR / context / "Dockerfile").read_text()
                instructions = [line.split()[0].upper() for line in dockerfile.splitlines()
                                if line.strip() and not line.lstrip().startswith("#")]
                if instructions == ["FROM"]:
                    return re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)[-1]
                return context
    return image


def repository(image: str) -> str:
    """`prom/prometheus:v2.55.1` -> `prom/prometheus`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def image_config(context: str) -> ImageConfig:
    text = (PROJECT_DIR / context / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = {}
    workdir = "/"
    healthcheck: Probe | None = None
    for line in final.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENTRYPOINT":
            entrypoint, cmd = tuple(json.loads(rest)), ()  # a new ENTRYPOINT resets CMD
        elif word == "CMD":
            cmd = tuple(json.loads(rest))
        elif word == "WORKDIR":
            workdir = rest.strip()
        elif word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif word == "HEALTHCHECK":
            options = dict(re.findall(r"--([\w-]+)=(\S+)", rest))
            command = json.loads(rest.split("CMD", 1)[1].strip())
            healthcheck = Probe("healthcheck", None, tuple(command), None,
                                _seconds(options.get("start-period", "0s")), _seconds(options.get("interval", "30s")),
                                int(options.get("retries", "3")), _seconds(options.get("timeout", "30s")), (0, 0),
                                DOCKER_RULE + f" ({context}/Dockerfile)")
    return ImageConfig(entrypoint, cmd, env, workdir, healthcheck)


def image_healthcheck(source: str) -> list[Probe]:
    """`docker run` applies the image's HEALTHCHECK (the VM's container, a container that declares none)."""
    if (PROJECT_DIR / source / "Dockerfile").exists():
        check = image_config(source).healthcheck
        return [check] if check else []
    return []


# ---------------------------------------------------------------------------------------------
# Emulations: how each image runs here


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


@dataclass(frozen=True)
class Emulation:
    source: str
    """A build context of this repository, or an upstream image's repository."""
    role: str
    """What its clients' readiness calls it (the engine's /readyz checks `pocketbase` and `redis`)."""
    port: int
    """Where the image listens unless told otherwise: others' URLs name it."""
    cannot_run: str = ""
    """Why it does not run here; empty: it does."""
    ready_path: str | None = None
    """Its readiness endpoint: 200 when its dependencies serve, 503 naming the ones that do not."""


EMULATIONS: dict[str, Emulation] = {e.source: e for e in (
    Emulation("components/engine", "engine", 8000, ready_path="/readyz"),
    Emulation("components/pocketbase", "pocketbase", 8090),
    Emulation("redis", "redis", 6379),
    Emulation("prom/prometheus", "prometheus", 9090),
    Emulation("oliver006/redis_exporter", "redis-exporter", 9121),
)}
CANNOT_RUN_HERE: dict[str, str] = {
    "cloudflare/cloudflared": "no cloudflared binary here, and it only runs connected to Cloudflare's edge with a "
                              "tunnel token",
    "gcr.io/cadvisor/cadvisor": "no cAdvisor binary here; it reads a Docker daemon and its cgroups, which this "
                                "machine has not",
    "otel/opentelemetry-collector-contrib": "no OpenTelemetry Collector binary here (not in Debian or PyPI)",
    "grafana/grafana": "no Grafana binary here (not in Debian's archive)",
    "grafana/tempo": "no Tempo binary here (not in Debian's archive)",
    "ghcr.io/brody192/locomotive": "no Locomotive binary here; it reads Railway's API",
    "quay.io/prometheuscommunity/json-exporter": "no json_exporter binary here (not in this Debian release); it reads "
                                                 "Railway's API",
    "prometheuscommunity/stackdriver-exporter": "no stackdriver_exporter binary here; it needs Google credentials "
                                                "and Cloud Monitoring",
}
for _source, _why in CANNOT_RUN_HERE.items():
    EMULATIONS[_source] = Emulation(_source, _source.rsplit("/", 1)[-1], 0, cannot_run=_why)


def emulation_for(plan: Plan, container: Container) -> Emulation | None:
    source = image_source(plan, container.image)
    return EMULATIONS.get(source) or EMULATIONS.get(repository(source))


# ---------------------------------------------------------------------------------------------
# Booting a stack


def free_ports(count: int) -> list[int]:
    """Distinct free ports on loopback: all held open while choosing, so none is handed out twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


class BootFailure(AssertionError):
    pass


@dataclass
class Running:
    container: Container
    process: subprocess.Popen[bytes]
    launch: Launch
    log: Path
    started: float

    def tail(self, lines: int = 12) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join("    | " + line for line in text.splitlines()[-lines:])


@dataclass(frozen=True)
class BootResult:
    container: Container
    probe: Probe
    elapsed: float
    allowed: float


_TOKEN = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-]{16,}$")
"""A generated secret (a password, a key, a token), not a name that travels in a secret list of variables."""


class StackBoot:
    """Every runnable container of one stack's (applied) plan, started here in the state the plan leaves it."""

    def __init__(self, plan: Plan, workdir: Path, cap_s: float = DEFAULT_CAP_S) -> None:
        self.plan = plan
        self.workdir = workdir
        self.cap_s = cap_s
        self.containers = planned_containers(plan)
        self.emulations = {c.key: emulation_for(plan, c) for c in self.containers}
        spare = free_ports(2 * len(self.containers))  # one each, and one for PocketBase behind TLS (`loopbacks`)
        self.ports: dict[str, int] = dict(zip((c.key for c in self.containers), spare[:len(self.containers)],
                                              strict=True))
        self.started: set[str] = set()
        """Containers whose startup probe passed."""
        self.running: dict[str, Running] = {}
        self.blackholes: dict[str, socket.socket] = {}
        self.helpers: list[subprocess.Popen[bytes]] = []
        self._port_maps: dict[str, dict[int, int]] = {}
        self.managed: dict[str, int] = {}
        """Memorystore instances the plan declares, by resource name: their local TLS port."""
        self._s3: str | None = None
        self._tls: Path | None = None
        self.substitutions = self._secret_test_values()
        self.loopbacks: dict[str, int] = {}
        """PocketBase containers served through the image's TLS proxy: the port PocketBase itself listens on, on
        loopback (the image's 127.0.0.1:8090, where its HEALTHCHECK looks)."""
        if any(TLS_CERT_PLACEHOLDER in v for c in self.containers for v in c.env.values()) or any(
                _b64(TLS_CERT_PLACEHOLDER) in v for c in self.containers for v in c.env.values()):
            # The stack's generated certificate and key (`tls` provider): a real pair for where the emulated VM
            # answers, 127.0.0.1, in every form the plan carries them (PEM to the engine, base64 to the VM).
            cert, key = self.pocketbase_tls()
            for placeholder, real in ((TLS_CERT_PLACEHOLDER, cert), (TLS_KEY_PLACEHOLDER, key)):
                self.substitutions[placeholder] = real
                self.substitutions[_b64(placeholder)] = _b64(real)
        for container in self.containers:
            emulation = self.emulations[container.key]
            if "PB_TLS_CERT_B64" in container.env:
                self.loopbacks[container.key] = spare[len(self.containers) + len(self.loopbacks)]
            if not container.running:
                # A VPC drops packets to an internal address no running instance holds: a client hangs until its
                # own timeout. A socket that listens and never accepts does the same here.
                hole = socket.socket()
                hole.bind(("127.0.0.1", self.ports[container.key]))
                hole.listen(0)
                self.blackholes[container.key] = hole
            for host in container.hosts:
                port = emulation.port if emulation and emulation.port else container.port
                if port:
                    self.substitutions[f"{host}:{port}"] = f"127.0.0.1:{self.ports[container.key]}"
                if container.port and container.port != port:  # published elsewhere than the image's default (TLS)
                    self.substitutions[f"{host}:{container.port}"] = f"127.0.0.1:{self.ports[container.key]}"
                for planned, here in self.port_map(container).items():
                    self.substitutions.setdefault(f"{host}:{planned}", f"127.0.0.1:{here}")
        for resource in (r for r in plan.resources if r.type == MEMORYSTORE):
            self.managed[resource.name] = free_ports(1)[0]
            host = memorystore_host(resource.name)
            self.substitutions[f"{host}:{MEMORYSTORE_TLS_PORT}"] = f"127.0.0.1:{self.managed[resource.name]}"
            self.substitutions[memorystore_auth(resource.name)] = secrets.token_hex(18)

    # -- values --------------------------------------------------------------------------------

    def _secret_test_values(self) -> dict[str, str]:
        """Each secret stand-in of the plan -> a fresh test value of the same length (the same one wherever it
        appears: a password is also inside a URL), `[secret]` placeholders -> a test value."""
        table: dict[str, str] = {}
        for container in self.containers:
            for name in container.secret_names:
                value = container.env[name]
                if _TOKEN.match(value) and value not in table:
                    table[value] = secrets.token_hex((len(value) + 1) // 2)[: len(value)]
        return table

    def env_value(self, container: Container, name: str, value: str) -> str:
        for old in sorted(self.substitutions, key=len, reverse=True):
            value = value.replace(old, self.substitutions[old])
        if name in container.secret_names and value == "[secret]":
            value = f"test-{name.lower().replace('_', '-')}"
        if CA_PLACEHOLDER in value:
            value = value.replace(CA_PLACEHOLDER, (self.tls() / "ca.crt").read_text().strip())
        return value

    def port_map(self, container: Container) -> dict[int, int]:
        """Every port of the plan's this container listens on -> where it listens here: its port (`self.ports`) and
        the engine's private listener (INTERNAL_PORT, components/api.py) and a `--port` its command names, each on a
        free port of its own unless it is the container's port (a fixed one may be taken on this machine)."""
        if container.key not in self._port_maps:
            mapping = {container.port: self.ports[container.key]} if container.port else {}
            command = [*(container.entrypoint or ()), *(container.args or ())]
            named = [container.env.get("INTERNAL_PORT", "")] + [
                w for i, w in enumerate(command) if i and command[i - 1] == "--port"]
            for word in named:
                if word.isdigit() and int(word) not in mapping:
                    mapping[int(word)] = free_ports(1)[0]
            self._port_maps[container.key] = mapping
        return self._port_maps[container.key]

    def environment(self, container: Container) -> dict[str, str]:
        env = {k: self.env_value(container, k, v) for k, v in container.env.items()}
        if env.get("INTERNAL_PORT", "").isdigit():
            env["INTERNAL_PORT"] = str(self.port_map(container)[int(env["INTERNAL_PORT"])])
        if container.sidecar_of is not None:
            # A sidecar reaches the ingress container of its instance at localhost (Cloud Run's container contract).
            ingress = next(c for c in self.containers if c.key == container.sidecar_of)
            for host in ("localhost", "127.0.0.1"):
                env = {k: v.replace(f"{host}:{ingress.port}", f"127.0.0.1:{self.ports[ingress.key]}")
                       for k, v in env.items()}
                for planned, here in self.port_map(ingress).items():  # its private listener (the scrape)
                    env = {k: v.replace(f"{host}:{planned}", f"127.0.0.1:{here}") for k, v in env.items()}
        if container.backend == "cloudrun":
            # Set by Cloud Run in every container of an instance, PORT in the ingress one only
            # (cloud.google.com/run/docs/container-contract#env-vars).
            env.update(K_SERVICE=container.resource, K_REVISION=f"{container.resource}-00001-boot",
                       K_CONFIGURATION=container.resource)
        return env

    # -- dependencies --------------------------------------------------------------------------

    def dependencies(self, container: Container) -> list[str]:
        """What the container's variables name: other containers (by key) and Memorystore instances (by name)."""
        text = "\n".join(container.env.values())
        found: list[str] = []
        for other in self.containers:
            emulation = self.emulations[other.key]
            port = emulation.port if emulation and emulation.port else other.port
            ports = {port, other.port} - {None}  # the image's default, and where the platform publishes it (TLS)
            if other.key != container.key and any(f"{h}:{p}" in text for h in other.hosts for p in ports):
                found.append(other.key)
        found += [name for name in self.managed if f"{memorystore_host(name)}:{MEMORYSTORE_TLS_PORT}" in text]
        return found

    def serving(self, dependency: str) -> bool:
        if dependency in self.managed:
            return True
        return dependency in self.running and self.running[dependency].process.poll() is None

    def role(self, dependency: str) -> str:
        if dependency in self.managed:
            return "redis"
        emulation = self.emulations.get(dependency)
        return emulation.role if emulation else dependency

    # -- helpers the containers need -----------------------------------------------------------

    def s3(self) -> str:
        """An S3 API (moto) standing for the replica's bucket (S3, or Cloud Storage's XML API)."""
        if self._s3 is None:
            port = free_ports(1)[0]
            log = (self.workdir / "moto.log").open("wb")
            process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                       stdout=log, stderr=log, start_new_session=True)
            self.helpers.append(process)
            self._s3 = f"http://127.0.0.1:{port}"
            _wait(lambda: _http_status(f"{self._s3}/", 1.0) is not None, 20, "moto's S3")
        return self._s3

    def tls(self) -> Path:
        """A CA and a server certificate it signed, for Memorystore's in-transit encryption."""
        if self._tls is None:
            self._tls = self.workdir / "tls"
            self._tls.mkdir()
            run = lambda *a: subprocess.run(["openssl", *a], cwd=self._tls, check=True, capture_output=True)  # noqa: E731
            run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=Boot emulation Memorystore CA")
            run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=127.0.0.1")
            run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.crt", "-days", "2")
        return self._tls

    def pocketbase_tls(self) -> tuple[str, str]:
        """A self-signed certificate for 127.0.0.1 and its key (PEM), as `tls:SelfSignedCert` makes the VM's."""
        folder = self.workdir / "pocketbase-tls"
        folder.mkdir(exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=pocketbase-boot",
                        "-addext", "subjectAltName=IP:127.0.0.1"], cwd=folder, check=True, capture_output=True)
        return (folder / "cert.pem").read_text(), (folder / "key.pem").read_text()

    def start_memorystore(self, name: str) -> None:
        resource = next(r for r in self.plan.resources if r.type == MEMORYSTORE and r.name == name)
        inputs = plain(resource.wire_inputs)
        tls = self.tls()
        argv = ["redis-server", "--port", "0", "--tls-port", str(self.managed[name]), "--bind", "127.0.0.1",
                "--tls-cert-file", str(tls / "server.crt"), "--tls-key-file", str(tls / "server.key"),
                "--tls-ca-cert-file", str(tls / "ca.crt"), "--tls-auth-clients", "no", "--save", "", "--appendonly",
                "no"]
        if inputs.get("authEnabled"):
            argv += ["--requirepass", self.substitutions[memorystore_auth(name)]]
        for key, value in sorted((inputs.get("redisConfigs") or {}).items()):
            argv += [f"--{key}", str(value)]
        log = (self.workdir / f"memorystore-{name}.log").open("wb")
        process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        self.helpers.append(process)
        _wait(lambda: _tcp(self.managed[name]), 10, f"Memorystore {name}")

    # -- containers ----------------------------------------------------------------------------

    def launch(self, container: Container) -> Launch:
        emulation = self.emulations[container.key]
        assert emulation is not None and not emulation.cannot_run
        home = self.workdir / _slug(container.key)
        home.mkdir(parents=True, exist_ok=True)
        env = self.environment(container)
        port = self.ports[container.key]
        if emulation.source == "components/engine":
            return _engine(container, env, port, home, self.port_map(container))
        if emulation.source == "components/pocketbase":
            if env.get("LITESTREAM_BUCKET"):
                endpoint = self.s3()
                httpx.put(f"{endpoint}/{env['LITESTREAM_BUCKET']}", timeout=10)
                # moto answers on loopback by path, not by a bucket's host name.
                env.update(LITESTREAM_ENDPOINT=endpoint, LITESTREAM_FORCE_PATH_STYLE="true")
            if container.key in self.loopbacks:
                # The image's TLS proxy on the published port; PocketBase itself on loopback (entrypoint.sh).
                env.update(PB_TLS_LISTEN=f"127.0.0.1:{port}",
                           PB_HTTP_LOOPBACK=f"127.0.0.1:{self.loopbacks[container.key]}")
            return _pocketbase(container, env, port, home)
        if emulation.source == "redis":
            return _redis(container, env, port, home)
        if emulation.source == "prom/prometheus":
            env.setdefault("REPLICA", "boot-emulation-instance")  # the start-up script's stand-in for the metadata server
            return _prometheus(container, env, port, home)
        if emulation.source == "oliver006/redis_exporter":
            return _redis_exporter(container, env, port, home)
        raise AssertionError(f"no launcher for {emulation.source}")

    def start(self, container: Container) -> Running:
        if container.key in self.blackholes:
            self.blackholes.pop(container.key).close()
        launch = self.launch(container)
        log = self.workdir / f"{_slug(container.key)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(launch.argv, env=launch.env, cwd=launch.cwd, stdout=out, stderr=out,
                                       start_new_session=True)
        running = Running(container, process, launch, log, time.monotonic())
        self.running[container.key] = running
        return running

    def startup_probe(self, container: Container) -> Probe:
        """What the platform waits for before it calls the container started. Where the plan declares none (a
        Railway service without a healthcheck path), the port opening, within the cap."""
        probe = container.probe("startup", "healthcheck", "deploy")
        if probe is None:
            return Probe("start", None, (), container.port, 0, self.cap_s, 1, 1, (0, 0), "no probe declared: its port")
        return probe

    def wait_started(self, running: Running) -> BootResult:
        results, failures = self.wait_all([running])
        if failures:
            raise BootFailure(failures[0])
        return results[0]

    def wait_all(self, runnings: list[Running]) -> tuple[list[BootResult], list[str]]:
        """Probe each container until its startup probe passes, its process exits, or its time is up; all at once,
        so each elapsed time is its own."""
        results: list[BootResult] = []
        failures: list[str] = []
        pending = list(runnings)
        while pending:
            for running in list(pending):
                container = running.container
                probe = self.startup_probe(container)
                allowed = min(probe.budget, self.cap_s)
                passed = self.check(running, probe)
                elapsed = time.monotonic() - running.started
                failure = ""
                if passed:
                    results.append(BootResult(container, probe, elapsed, allowed))
                    self.started.add(container.key)
                elif running.process.poll() is not None:
                    failure = (f"{container.key} ({container.backend}) exited with {running.process.returncode} "
                               f"{elapsed:.1f} s after its start, before its {probe.describe()} passed")
                elif elapsed > allowed:
                    failure = (f"{container.key} ({container.backend}): its {probe.describe()} has not passed "
                               f"{elapsed:.1f} s after its start (allowed here: {allowed:g} s); the process is "
                               "still running")
                else:
                    continue
                pending.remove(running)
                if failure:
                    failures.append(f"{failure}. Its output:\n{running.tail() or '    | (nothing)'}")
            time.sleep(0.2)
        return results, failures

    def check(self, running: Running, probe: Probe) -> bool:
        """One probe, as the platform runs it against the container: at the port it names (mapped here)."""
        port = self.port_map(running.container).get(probe.port or 0, self.ports[running.container.key])
        if probe.command:
            argv = [self._probe_word(running, w) for w in probe.command]
            try:
                return subprocess.run(argv, env=running.launch.env, cwd=running.launch.cwd, capture_output=True,
                                      timeout=probe.timeout).returncode == 0
            except (subprocess.TimeoutExpired, OSError):
                return False
        if probe.path is None:
            return _tcp(port, probe.timeout)
        status = _http_status(f"http://127.0.0.1:{port}{probe.path}", probe.timeout)
        return status is not None and probe.ok[0] <= status < probe.ok[1]

    def _probe_word(self, running: Running, word: str) -> str:
        container = running.container
        emulation = self.emulations[container.key]
        port = emulation.port if emulation else container.port
        inside = self.loopbacks.get(container.key, self.ports[container.key])
        word = re.sub(rf"(127\.0\.0\.1|localhost):{port}\b", f"127.0.0.1:{inside}", word)
        for planned, here in self.port_map(container).items():
            word = re.sub(rf"(127\.0\.0\.1|localhost):{planned}\b", f"127.0.0.1:{here}", word)
        return {"python": sys.executable, "/redis_exporter": _binary("prometheus-redis-exporter")}.get(word, word)

    def readiness(self, container: Container, timeout_s: float = 10.0) -> tuple[int | None, str]:
        emulation = self.emulations[container.key]
        assert emulation is not None and emulation.ready_path
        try:
            response = httpx.get(f"http://127.0.0.1:{self.ports[container.key]}{emulation.ready_path}",
                                 timeout=timeout_s)
            return response.status_code, response.text
        except httpx.HTTPError as err:
            return None, f"{type(err).__name__}: {err}"

    def boot(self) -> tuple[list[BootResult], list[str]]:
        """Start what the plan leaves running, dependencies first; each startup probe measured. Returns the results
        and the failures (one line each, with the process's last lines)."""
        for name in self.managed:
            self.start_memorystore(name)
        results: list[BootResult] = []
        failures: list[str] = []
        for level in self._dependency_levels():
            level_results, level_failures = self.wait_all([self.start(c) for c in level])
            results += level_results
            failures += level_failures
        return results, failures

    def runnable(self, container: Container) -> bool:
        emulation = self.emulations[container.key]
        return container.running and emulation is not None and not emulation.cannot_run

    def _dependency_levels(self) -> list[list[Container]]:
        """Containers whose dependencies all started before them, level by level, as `pulumi up` creates a
        container after what its variables name; the containers of one level start together (a Cloud Run
        instance's sidecars with its ingress container)."""
        todo = [c for c in self.containers if self.runnable(c)]
        keys = {c.key for c in todo}
        done: set[str] = set()
        levels: list[list[Container]] = []
        while todo:
            ready = [c for c in todo if all(d in done or d not in keys for d in self.dependencies(c))]
            if not ready:
                raise AssertionError(f"a dependency cycle among {[c.key for c in todo]}")
            levels.append(ready)
            done.update(c.key for c in ready)
            todo = [c for c in todo if c.key not in done]
        return levels

    def close(self) -> None:
        _stop_all([r.process for r in self.running.values()])
        _stop_all(self.helpers)
        for hole in self.blackholes.values():
            hole.close()


@contextlib.contextmanager
def booted(plan: Plan, cap_s: float = DEFAULT_CAP_S) -> Iterator[tuple[StackBoot, list[BootResult], list[str]]]:
    # Below the temporary directory, which image_home opens to every user (PocketBase drops to its own user).
    workdir = Path(tempfile.mkdtemp(prefix=f"boot-{plan.stack}-"))
    stack = StackBoot(plan, workdir, cap_s)
    try:
        results, failures = stack.boot()
        yield stack, results, failures
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Launchers: each image's entrypoint, here


def _command(container: Container, image_entrypoint: tuple[str, ...], image_cmd: tuple[str, ...]) -> list[str]:
    """Docker's rule: an entrypoint given replaces the image's and drops its CMD; args given replace the CMD."""
    if container.entrypoint is not None:
        return [*container.entrypoint, *(container.args or ())]
    return [*image_entrypoint, *(container.args if container.args is not None else image_cmd)]


def _base_env(env: dict[str, str]) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", **env}


def _engine(container: Container, env: dict[str, str], port: int, home: Path,
            ports: dict[int, int] | None = None) -> Launch:
    image = image_config("components/engine")
    argv = _command(container, image.entrypoint, image.cmd)
    # A `--port` in the command (Railway's, whose PORT variable is the private listener's) names a listener of the
    # plan's: here on the port it is mapped to.
    argv = [str((ports or {}).get(int(w), w)) if i and argv[i - 1] == "--port" and w.isdigit() else w
            for i, w in enumerate(argv)]
    if argv[0] == "python":
        argv[0] = sys.executable  # the image's /venv/bin/python: here the environment the engine is installed in
    image_env = dict(image.env)
    image_env["PATH"] = f"{VENV_BIN}:{os.environ.get('PATH', '')}"
    metrics = home / "metrics"
    metrics.mkdir(exist_ok=True)
    image_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    # PORT: the image's default, Railway's variable, Cloud Run's injected value; here where it listens.
    return Launch(argv, _base_env({**image_env, **env, "PORT": str(port)}), PROJECT_DIR / "components" / "engine")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _pocketbase(container: Container, env: dict[str, str], port: int, home: Path) -> Launch:
    from infra.ops.drill import image_home

    pb = image_home(home / "pb")
    (pb / "pb_data").mkdir(exist_ok=True)  # the volume, root-owned as a new one is mounted
    image = image_config("components/pocketbase")
    argv = _command(container, image.entrypoint, image.cmd)
    argv = ["sh", str(pb / "entrypoint.sh"), *argv[1:]] if argv[0] == "/pb/entrypoint.sh" else argv
    # PB_HTTP: the entrypoint's listen address (":8090" in the image); PB_HOME: the image's /pb, here.
    return Launch(argv, _base_env({**env, "PB_HOME": str(pb), "PB_HTTP": f"127.0.0.1:{port}"}), pb)


def _shim(home: Path, name: str, script: str) -> None:
    (home / "bin").mkdir(exist_ok=True)
    path = home / "bin" / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _redis(container: Container, env: dict[str, str], port: int, home: Path) -> Launch:
    # The image's ENTRYPOINT docker-entrypoint.sh execs a command that is not redis-server's own flags as it is;
    # its CMD is redis-server. Here redis-server listens on this container's port on loopback (later options win).
    _shim(home, "redis-server", f'exec {shlex.quote(_binary("redis-server"))} "$@" --port {port} --bind 127.0.0.1')
    _shim(home, "redis-cli", f'exec {shlex.quote(_binary("redis-cli"))} -p {port} "$@"')
    argv = _command(container, (), ("redis-server",))
    env = _base_env(env)
    env["PATH"] = f"{home / 'bin'}:{env['PATH']}"
    return Launch(argv, env, home)


_PROMETHEUS_PATHS = ("/etc/prometheus", "/prometheus")


def _map_paths(text: str, paths: dict[str, str]) -> str:
    for old in sorted(paths, key=len, reverse=True):
        text = re.sub(rf"(?<![\w/.-]){re.escape(old)}(?![\w.-])", paths[old].replace("\\", "\\\\"), text)
    return text


def _prometheus(container: Container, env: dict[str, str], port: int, home: Path) -> Launch:
    # prom/prometheus: ENTRYPOINT ["/bin/prometheus"], CMD ["--config.file=/etc/prometheus/prometheus.yml",
    # "--storage.tsdb.path=/prometheus"], WORKDIR /prometheus (its Dockerfile, prometheus/prometheus).
    paths = {"/bin/prometheus": _binary("prometheus"), **{p: str(home / p.strip("/")) for p in _PROMETHEUS_PATHS}}
    for path in _PROMETHEUS_PATHS:
        (home / path.strip("/")).mkdir(parents=True, exist_ok=True)
    for path, content in container.files.items():
        target = Path(_map_paths(path, paths))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_map_paths(content, paths))
    argv = _command(container, ("/bin/prometheus",),
                    ("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"))
    argv = [_map_paths(word, paths) for word in argv]
    listen = f"--web.listen-address=127.0.0.1:{port}"
    if any("--web.listen-address=" in word for word in argv):
        argv = [re.sub(r"--web\.listen-address=[^\s'\"]*", listen, word) for word in argv]
    else:
        argv.append(listen)
    return Launch(argv, _base_env({k: _map_paths(v, paths) for k, v in env.items()}), home / "prometheus")


def _redis_exporter(container: Container, env: dict[str, str], port: int, home: Path) -> Launch:
    # oliver006/redis_exporter: ENTRYPOINT ["/redis_exporter"]; it reads its flags from REDIS_EXPORTER_* variables.
    argv = _command(container, (_binary("prometheus-redis-exporter"),), ())
    argv = [_binary("prometheus-redis-exporter") if w == "/redis_exporter" else w for w in argv]
    return Launch(argv, _base_env({**env, "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}"}), home)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BootFailure(f"{name} is missing here: apt-get install it (python3 tools/dev.py test does, as root)")
    return found


def _tcp(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_status(url: str, timeout: float) -> int | None:
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def _wait(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise BootFailure(f"{what} did not start within {timeout_s:g} s")


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _stop_all(processes: list[subprocess.Popen[bytes]], grace_s: float = 5.0) -> None:
    """Each process and every child it started (its own session: PocketBase under setpriv, uvicorn's workers),
    all at once: SIGTERM, then SIGKILL to what is left after the grace period."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        _signal_group(process, signal.SIGKILL)  # children left behind too, even by a parent that exited
        process.wait(timeout=5)
