"""The docker backend: containers on one Docker host, on a private network (integration, D4).

`container_settings` is the one mapping from a `ContainerSpec` to Docker's settings; the Pulumi
resources and the generated `docker-compose.yml` (`python -m infra compose`) both come from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import cast

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
CGROUP_SLICE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def cgroup_parent(name: str) -> str:
    """The cgroup every container runs under, named after it, so that cAdvisor, which reads cgroups and never
    Docker's API (#22 item 11, components/observability/selfhosted.py), sees which container a cgroup is.

    A slice name, because Docker's systemd cgroup driver takes only that: runc's ExpandSlice (opencontainers/runc
    libcontainer/cgroups/systemd/common.go) requires the `.slice` suffix, no `/`, and no empty component between
    dashes ("test--a.slice isn't permitted, nor is -test.slice"), and nests `a-b.slice` as `/a.slice/a-b.slice`;
    the container's own cgroup is `docker-<id>.scope` under it. With the cgroupfs driver the same name is one
    directory, `/platform-<name>.slice/<id>`. Either way the path ends `/platform-<name>.slice/<container>`, which
    the cadvisor scrape turns into the `name` label (components/observability/telemetry.py)."""
    if not CGROUP_SLICE.fullmatch(name):
        raise ValueError(f"container name {name!r} cannot name a systemd slice; expected lowercase letters, digits "
                         "and single '-' between them")
    return f"platform-{name}.slice"


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
        cgroup_parent=cgroup_parent(spec.name),
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


# ---------------------------------------------------------------------------------------------
# How the deploy reaches the Docker host (#20 item 10)
#
# pulumi-docker 5.2.0 bridges kreuzwerker/terraform-provider-docker, whose client (internal/provider/config.go)
# takes, in this order: `certMaterial`+`keyMaterial` (TLS client certificates, `caMaterial` verifying the daemon),
# `certPath`, an `ssh://` host with `sshOpts` ("Additional SSH option flags to be appended when using `ssh://`
# protocol": argv items handed to `ssh` by docker/cli's connhelper), and otherwise "just return the direct
# client": a `tcp://` host without TLS is the daemon's unauthenticated API. Docker: "By default, Docker runs
# through a non-networked UNIX socket ... If you need Docker to be reachable through HTTP rather than SSH in a
# safe manner, you can enable TLS" (docs.docker.com/engine/security/protect-access/). `docker:host` falls back to
# $DOCKER_HOST (pulumi_docker/config/vars.py), which a stack file cannot check: the host is named here.

HOST_KEY = "docker:host"
SSH_OPTS_KEY = "docker:sshOpts"
TLS_KEYS = ("docker:certMaterial", "docker:keyMaterial", "docker:caMaterial")
PINNED_HOST_KEY = "StrictHostKeyChecking=yes"
"""ssh_config(5): "If this flag is set to yes, ssh will never automatically add host keys to the known_hosts
file, and refuses to connect to hosts whose host key has changed"."""


def host_problems(values: Mapping[str, str], secret_keys: AbstractSet[str]) -> list[str]:
    """What is wrong with how a stack running containers on docker reaches its Docker host: `ssh://` with a
    pinned host key, or `tcp://` with TLS client certificates; never a plain TCP (or HTTP) daemon."""
    host = values.get(HOST_KEY, "").strip()
    if not host:
        return [f"{HOST_KEY}: is required for a stack with services on the docker backend; expected "
                "ssh://USER@HOST (with docker:sshOpts pinning the host key) or tcp://HOST:2376 with "
                "docker:certMaterial, docker:keyMaterial (secret) and docker:caMaterial, so the deploy's DOCKER_HOST "
                "cannot pick a plain TCP daemon"]
    scheme = host.split("://", 1)[0].lower() if "://" in host else ""
    if scheme == "ssh":
        return _ssh_problems(host, values.get(SSH_OPTS_KEY))
    if scheme == "tcp":
        missing = [key for key in TLS_KEYS if not values.get(key)]
        if missing:
            return [f"{HOST_KEY}: {host!r} is a plain TCP daemon without {', '.join(missing)}: anyone on the path gets "
                    "root on the host; expected TLS client certificates (docker:certMaterial, docker:keyMaterial as a "
                    "secret, docker:caMaterial) or ssh://USER@HOST"]
        if "docker:keyMaterial" not in secret_keys:
            return ["docker:keyMaterial: is in plain text but must be a secret; expected it set with "
                    "`pulumi config set --secret docker:keyMaterial < key.pem`"]
        return []
    return [f"{HOST_KEY}: {host!r} is not a Docker host this stack may use; expected ssh://USER@HOST with a pinned "
            "host key, or tcp://HOST:2376 with TLS client certificates"]


# docker:sshOpts is an ALLOWLIST, not a reading of ssh's argv. ssh(1) takes getopt-style flags, so bundled
# flags (`-4oKey=v`), flags taking the next word (`-E`, `-F`) and ssh_config(5)'s own syntax ("Configuration
# options may be separated by whitespace or optional whitespace and exactly one `=`"; "Arguments may optionally
# be enclosed in double quotes") each let a list that looks pinned leave it unpinned; options such as
# GlobalKnownHostsFile, KnownHostsCommand and VerifyHostKeyDNS add keys ssh trusts. `ssh -G` (OpenSSH 9.2p1)
# confirmed each case: see tests/test_ops_docker_host.py. The one accepted form: `-o` followed by a separate
# `Key=value` item (Key below, case-insensitive, value one word without quotes, `=` or `#`), or `-i` followed by
# a key file. StrictHostKeyChecking=yes and a UserKnownHostsFile that is a file must both be given, and no other
# value for either anywhere in the list ("the first obtained value will be used": no order to reason about).
SSH_OPTION_FLAG = "-o"
SSH_IDENTITY_FLAG = "-i"
SSH_ALLOWED_KEYS = {k.lower(): k for k in (
    "StrictHostKeyChecking", "UserKnownHostsFile", "IdentityFile", "IdentitiesOnly", "ConnectTimeout",
    "ServerAliveInterval", "ServerAliveCountMax", "Port", "User")}
SSH_VALUE = re.compile(r"""^[^\s"'=#-][^\s"'=#]*$""")
"""One word: no whitespace, quotes, `=` or `#` (ssh_config(5) would split, unquote or comment on them), and
not starting with `-` (never mistaken for a flag)."""
SSH_OPTS_EXAMPLE = (f'["-o", "{PINNED_HOST_KEY}", "-o", "UserKnownHostsFile=~/.ssh/known_hosts_<stack>", '
                    '"-i", "~/.ssh/id_<stack>"]')


def _ssh_problems(host: str, raw_options: str | None) -> list[str]:
    options = _ssh_options(raw_options)
    if options is None:
        return [f"{SSH_OPTS_KEY}: {raw_options!r} is not a list of ssh arguments; expected e.g. {SSH_OPTS_EXAMPLE}"]
    pairs, problems = _allowed_ssh_pairs(options)
    if problems:
        return problems
    checking = [value for key, value in pairs if key == "stricthostkeychecking"]
    known_hosts = [value for key, value in pairs if key == "userknownhostsfile"]
    if not checking or not known_hosts:
        return [f"{HOST_KEY}: {host!r} without a pinned host key (docker:sshOpts {options!r} give "
                f"StrictHostKeyChecking {checking or None!r}, UserKnownHostsFile {known_hosts or None!r}); expected "
                f'docker:sshOpts with "-o", "{PINNED_HOST_KEY}" and "-o", "UserKnownHostsFile=<file the deploy writes '
                'from a pinned value>", so a host that is not ours is refused']
    return []


def _allowed_ssh_pairs(options: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The (lowercased key, value) pairs of an allowlisted docker:sshOpts, or a problem naming the first item
    outside the allowlist (`docker:sshOpts[i]`)."""
    pairs: list[tuple[str, str]] = []
    for index in range(0, len(options), 2):
        flag = options[index]
        if flag not in (SSH_OPTION_FLAG, SSH_IDENTITY_FLAG):
            return [], [_ssh_item_problem(index, flag, '"-o" (followed by a separate Key=value item) or "-i" '
                                                       "(followed by a key file), each as its own item")]
        if index + 1 >= len(options):
            return [], [_ssh_item_problem(index, flag, f"a {'Key=value' if flag == '-o' else 'key file'} item "
                                                       "after it")]
        argument = options[index + 1]
        pair = ("identityfile", argument) if flag == SSH_IDENTITY_FLAG else _ssh_key_value(argument)
        problem = _ssh_pair_problem(pair) if pair else (
            f"Key=value with Key one of {', '.join(SSH_ALLOWED_KEYS.values())} and a value of one word without "
            "spaces, quotes, = or #")
        if problem:
            return [], [_ssh_item_problem(index + 1, argument, problem)]
        pairs.append(cast(tuple[str, str], pair))
    return pairs, []


def _ssh_key_value(argument: str) -> tuple[str, str] | None:
    key, equals, value = argument.partition("=")
    return (key.lower(), value) if equals and key.lower() in SSH_ALLOWED_KEYS else None


def _ssh_pair_problem(pair: tuple[str, str]) -> str | None:
    key, value = pair
    if not SSH_VALUE.match(value):
        return "a value of one word without spaces, quotes, = or # that does not start with -"
    if key == "stricthostkeychecking" and value.lower() != "yes":
        return f"{PINNED_HOST_KEY}: any other value lets ssh accept a host key it does not know"
    if key == "userknownhostsfile" and value.lower() in ("/dev/null", "none"):
        return "UserKnownHostsFile=<file the deploy writes from a pinned value>, never /dev/null or none"
    return None


def _ssh_item_problem(index: int, item: str, expected: str) -> str:
    return (f"{SSH_OPTS_KEY}[{index}]: {item!r} is not an ssh option this stack may use; expected {expected} "
            f"(e.g. {SSH_OPTS_EXAMPLE})")


def _ssh_options(raw: str | None) -> list[str] | None:
    if raw is None or not raw.strip():
        return []
    try:
        options: object = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(options, list) or not all(isinstance(o, str) for o in cast(list[object], options)):
        return None
    return cast(list[str], options)
