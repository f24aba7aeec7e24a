"""One container service, whatever the backend: what it runs, how big, and how it is checked.

Each backend turns a `ContainerSpec` into its provider's resources and answers an `Endpoint`. The
backend limits were checked when the stack config was loaded (`stacks/backends.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from stacks.profile import ServiceProfile


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    """The service's name on its backend and its host name on the private network."""
    image: pulumi.Input[str]
    port: int
    size: ServiceProfile
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict[str, pulumi.Input[str]])
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict[str, pulumi.Input[str]])
    """Values that must stay secret: Secret Manager on Cloud Run, secret variables elsewhere."""
    deploy_env: Mapping[str, str] = field(default_factory=dict[str, str])
    """Railway only: variables whose value is a write credential the deploy job's environment holds, by the name of
    its environment variable (variable -> environment variable). The Railway provider sets them when it applies, so
    they are in no stack file, preview or state (components/backends/railway.py, issue #22 item 1)."""
    health_path: str | None = None
    """HTTP path answering 200 while the process is alive (liveness, startup)."""
    ready_path: str | None = None
    """HTTP path answering 200 once dependencies are reachable (readiness). Left out, `health_path`."""
    healthcheck_command: Sequence[str] = ()
    """For the docker backend: the command Docker runs inside the container."""
    volume_path: str | None = None
    """Mount a persistent volume here. A service with a volume runs exactly one replica."""
    command: Sequence[str] = ()
    files: Mapping[str, str] = field(default_factory=dict[str, str])
    """Configuration files (container path -> content). The docker backend only."""
    host_mounts: Mapping[str, str] = field(default_factory=dict[str, str])
    """Host paths mounted read-only (host path -> container path). The docker backend only."""
    public_hostname: str | None = None
    """The name the edge forwards a public service's requests to (`api.<zone>`): the backend makes the
    service answer for it itself, since overriding the Host header is Cloudflare Enterprise only."""
    internal_port: int | None = None
    """A port the service answers its probes and metrics scrape on, which no public route forwards to (the
    engine's private listener, components/api.py INTERNAL_PORT): the backend's probes ask it."""
    edge_gate: pulumi.Input[str] | None = None
    """Cloud Run only: the `X-Origin-Gate` value the edge adds for `public_hostname`, which the load balancer's
    Cloud Armor policy requires (components/backends/cloudrun.py `_armor_rules`)."""
    sidecars: Sequence[ContainerSpec] = ()
    """Cloud Run only: containers beside this one in each instance, reaching it at localhost (an agent)."""
    project_roles: Sequence[str] = ()
    """Cloud Run only: project roles of the service's own account (an exporter reading Cloud Monitoring)."""


@dataclass(frozen=True)
class DnsEntry:
    """A record the stack's zone needs for a service: the proxied name the edge forwards, or a
    DNS-only one its certificate is validated with."""

    key: str
    """Names the resource."""
    name: str
    type: str
    content: pulumi.Input[str]
    proxied: bool


@dataclass(frozen=True)
class Endpoint:
    private_url: pulumi.Output[str]
    """How the other services on the same backend reach this one."""
    public_url: pulumi.Output[str] | None
    """The backend's own HTTPS URL of a public service, where it has one (Cloud Run, Railway)."""
    dns: Sequence[DnsEntry] = ()
    """Records for `ContainerSpec.public_hostname` that the edge declares in the zone."""
    resources: Sequence[pulumi.Resource] = ()
    """What runs the service: a client that needs it up depends on these."""
    routing: Sequence[pulumi.Resource] = ()
    """What routes the public hostname's requests to it (the load balancer's backend service): a step that must
    wait until the edge's traffic moved depends on these."""
