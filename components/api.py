"""The api layer: the Commission Engine image, built from `components/engine`, run as a container
service that scales from 1 warm instance to 3-5 (L2, D2, C1), and its tenant registry.

Each tenant gets an API key and an admin key (pulumi_random, kept in the state, exported as secret
stack outputs). The engine receives only their SHA-256 hashes, in JSON documents listing the
tenants, a hundred to a document (`TENANTS_JSON`, `TENANTS_JSON_2`, ...): so one entry in
`platform:tenants` onboards the tenant in the engine too, and 1,000 tenants still fit a variable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random

from components.backends.service import ContainerSpec, Endpoint
from components.backends.targets import Targets, deploy
from components.images import COMPONENTS_DIR, Registry, build_image
from stacks.profile import ServiceProfile

PORT = 8000
INTERNAL_PORT = 9000
"""The engine's private listener (engine.api.EdgeGuard): /metrics, /healthz and /readyz without the edge's
secret, nothing else. The telemetry agent scrapes it and the platform's probes ask it; no public route leads
to it: the load balancer's serverless NEG sends to the container port, the tunnel routes to PORT, Railway's
domain to its target port (PORT), while Railway's healthcheck goes to the PORT variable (set to this)."""


@dataclass(frozen=True)
class TenantEntry:
    slug: str
    currency: str


@dataclass(frozen=True)
class EngineArgs:
    environment: str
    size: ServiceProfile
    targets: Targets
    tenants: Sequence[TenantEntry]
    pocketbase_url: pulumi.Input[str]
    pocketbase_email: str
    pocketbase_password: pulumi.Input[str]
    """The engine's own PocketBase account (`Database.engine_account_*`), never the superuser's (#11.2)."""
    redis_url: pulumi.Input[str]
    public_hostname: str
    """`api.<zone>`: the engine answers for it (the edge forwards it there)."""
    registry: Registry | None = None
    """Left out (docker backend), the image is built on the Docker host and not pushed."""
    extra_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict[str, pulumi.Input[str]])
    extra_secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict[str, pulumi.Input[str]])
    workers: int = 2
    prebuilt_image: str | None = None
    """An image CI already built and pushed (D2). Left out, the image is built from `components/engine`."""
    edge_gate: pulumi.Input[str] | None = None
    """Cloud Run: what Cloud Armor requires in `X-Origin-Gate` (ContainerSpec.edge_gate)."""
    sidecars: Sequence[ContainerSpec] = ()
    """Cloud Run: the metrics agent in each instance (components/observability/cloud.py)."""
    storage: str = "pocketbase"
    """`postgres`: the engine keeps its data in PostgreSQL (its POSTGRES_* settings come in `extra_env` /
    `extra_secret_env`) and is given no PocketBase setting or credential (PG.md: not required then)."""


@dataclass(frozen=True)
class TenantKeys:
    api_key: pulumi.Output[str]
    admin_key: pulumi.Output[str]


# The engine's `registry.key_hash`, which the Pulumi program cannot import (the engine is another
# image); tests/engine/test_api.py::test_the_platform_tenant_registry_is_what_the_engine_reads checks both agree.
def _sha256(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def tenant_registry(tenants: Sequence[TenantEntry], api_keys: Sequence[str], admin_keys: Sequence[str]) -> str:
    """The document the engine loads its tenants from: no key in it, only hashes."""
    return json.dumps({"version": 1, "tenants": [
        {"slug": t.slug, "currency": t.currency, "api_key_hashes": [_sha256(api)],
         "admin_key_hashes": [_sha256(admin)]}
        for t, api, admin in zip(tenants, api_keys, admin_keys, strict=True)
    ]}, sort_keys=True)


# A shard of 100 tenants is at most ~29 KB (slugs of 63 characters): under Cloud Run's 32,768 bytes per
# variable value and Secret Manager's 64 KiB per version (tests/test_scale_limits.py checks 1,000).
TENANTS_PER_SHARD = 100


def shard_variable(index: int) -> str:
    """`TENANTS_JSON`, then `TENANTS_JSON_2`, ...: the names the engine reads (engine.registry)."""
    return "TENANTS_JSON" if index == 0 else f"TENANTS_JSON_{index + 1}"


def tenant_registry_shards(tenants: Sequence[TenantEntry], api_keys: Sequence[str],
                           admin_keys: Sequence[str]) -> list[str]:
    starts = range(0, max(len(tenants), 1), TENANTS_PER_SHARD)
    return [tenant_registry(tenants[i:i + TENANTS_PER_SHARD], api_keys[i:i + TENANTS_PER_SHARD],
                            admin_keys[i:i + TENANTS_PER_SHARD]) for i in starts]


def engine_spec(args: EngineArgs, image: pulumi.Input[str], shards: Sequence[pulumi.Input[str]]) -> ContainerSpec:
    pocketbase = args.storage == "pocketbase"
    env: dict[str, pulumi.Input[str]] = {
        "ENVIRONMENT": args.environment,
        **({"POCKETBASE_URL": args.pocketbase_url, "POCKETBASE_EMAIL": args.pocketbase_email} if pocketbase else {}),
        "WEB_CONCURRENCY": str(args.workers),
        "OTEL_SERVICE_NAME": "commission-engine",
        "INTERNAL_PORT": str(INTERNAL_PORT),
        **args.extra_env,
    }
    secret_env: dict[str, pulumi.Input[str]] = {
        **({"POCKETBASE_PASSWORD": args.pocketbase_password} if pocketbase else {}),
        "REDIS_URL": args.redis_url,
        # Hashes only, yet secret: they would let anyone test guessed keys offline.
        **{shard_variable(i): shard for i, shard in enumerate(shards)},
        **args.extra_secret_env,
    }
    return ContainerSpec(
        name="commission-engine",
        image=image,
        port=PORT,
        size=args.size,
        env=env,
        secret_env=secret_env,
        health_path="/healthz",
        ready_path="/readyz",
        healthcheck_command=["python", "-c",
                             f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{INTERNAL_PORT}/healthz')"],
        public_hostname=args.public_hostname,
        internal_port=INTERNAL_PORT,
        edge_gate=args.edge_gate,
        # On Railway the metrics agent reaches every replica at its private address, IPv6 only in environments
        # made before October 2025 (docs.railway.com/networking/private-networking/how-it-works): listen on
        # both families (a `::` socket takes IPv4 too on Linux).
        # The public port is named: Railway's PORT variable is the private one, where its healthcheck goes.
        command=["python", "-m", "engine", "serve", "--host", "::", "--port", str(PORT)]
        if args.size.backend == "railway" else (),
        sidecars=tuple(args.sidecars),
    )


class Engine(pulumi.ComponentResource):
    endpoint: Endpoint
    image: pulumi.Output[str]
    tenant_keys: dict[str, TenantKeys]

    def __init__(self, name: str, args: EngineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:api:Engine", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.tenant_keys = {}
        for tenant in args.tenants:
            api = random.RandomPassword(f"{name}-key-{tenant.slug}-api", length=40, special=False, opts=child)
            admin = random.RandomPassword(f"{name}-key-{tenant.slug}-admin", length=40, special=False, opts=child)
            self.tenant_keys[tenant.slug] = TenantKeys(pulumi.Output.secret(api.result),
                                                       pulumi.Output.secret(admin.result))
        keys = list(self.tenant_keys.values())
        documents = pulumi.Output.all(
            pulumi.Output.all(*[k.api_key for k in keys]), pulumi.Output.all(*[k.admin_key for k in keys]),
        ).apply(lambda pair: tenant_registry_shards(args.tenants, pair[0], pair[1]))
        count = len(range(0, max(len(args.tenants), 1), TENANTS_PER_SHARD))
        shards = [pulumi.Output.secret(documents.apply(lambda docs, i=i: docs[i])) for i in range(count)]

        self.image = (pulumi.Output.from_input(args.prebuilt_image) if args.prebuilt_image is not None else
                      build_image(f"{name}-image", COMPONENTS_DIR / "engine", "commission-engine", args.registry, self))
        spec = engine_spec(args, self.image, shards)
        self.endpoint = deploy(name, spec, args.targets, self)
        self.register_outputs({})
