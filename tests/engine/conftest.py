"""A real PocketBase and a real Redis (Debian's redis-server) with the engine in front, on loopback."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from engine.dev import LocalStack, local_stack
from engine.registry import key_hash

from tests.engine.postgres_server import (  # noqa: F401 (fixtures: a real PostgreSQL)
    postgres,  # pyright: ignore[reportUnusedImport]
    postgres_database,  # pyright: ignore[reportUnusedImport]
)


@dataclass(frozen=True)
class TenantKeys:
    slug: str
    api: str
    admin: str

    def headers(self, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin if admin else self.api}"}


def make_tenant(slug: str) -> tuple[dict[str, object], TenantKeys]:
    api, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    entry = {"slug": slug, "currency": "BRL", "api_key_hashes": [key_hash(api)], "admin_key_hashes": [key_hash(admin)]}
    return entry, TenantKeys(slug, api, admin)


@dataclass
class Running:
    stack: LocalStack
    client: httpx.Client
    a: TenantKeys
    b: TenantKeys


# What the edge adds to every request it forwards (components/edge.py): tests that play a browser
# behind Cloudflare send it with CF-Connecting-IP, as Cloudflare does.
ORIGIN_AUTH_SECRET = "edge-origin-secret-for-the-tests-0123456789"
EDGE_HEADERS = {"X-Origin-Auth": ORIGIN_AUTH_SECRET}


def scrape(client: httpx.Client) -> httpx.Response:
    """/metrics as the telemetry agent reads it: from loopback, without the edge's header (engine.api.EdgeGuard
    never serves it to a request that came through the edge, which `client` plays)."""
    return httpx.get(str(client.base_url.join("/metrics")), timeout=10)


def readyz(client: httpx.Client) -> httpx.Response:
    """/readyz as an operator or the probes read it, on the private path (loopback, no edge header): with the
    reasons a dependency is not serving, which a request through the edge does not get (engine.api)."""
    return httpx.get(str(client.base_url.join("/readyz")), timeout=10)


def engine_env() -> dict[str, str]:
    """The engine's processes import `engine` from ENGINE_UNDER_TEST_SRC when it is set: how a new test is
    run against an older engine (e.g. the parent commit's `components/engine/src`, exported with git archive)."""
    source = os.environ.get("ENGINE_UNDER_TEST_SRC")
    return {"ORIGIN_AUTH_SECRET": ORIGIN_AUTH_SECRET, **({"PYTHONPATH": source} if source else {})}


def _start(tmp: Path) -> Iterator[Running]:
    entry_a, a = make_tenant("acme")
    entry_b, b = make_tenant("bravo")
    with local_stack(tmp, [entry_a, entry_b], env=engine_env()) as stack, httpx.Client(base_url=stack.url, timeout=10, headers=EDGE_HEADERS) as client:
        yield Running(stack, client, a, b)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Shared by the tests that leave the services running."""
    yield from _start(tmp_path_factory.mktemp("engine"))


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[Running]:
    """For a test that kills or restarts a service."""
    yield from _start(tmp_path)
