"""An origin only the edge can reach (#22.2), over real HTTP against `python -m engine serve`.

The load balancer routes every Host to the engine and Cloud Armor admits every Cloudflare address, so any
Cloudflare customer can point a zone at our origin and send any Host: api.<zone> with a trailing dot, in
another case, with a port, or a name of their own. With ORIGIN_AUTH_SECRET set, the engine refuses every
request without the edge's secret, whatever its Host; the private paths (/metrics, /healthz, /readyz) answer
without it only on the private listener (INTERNAL_PORT: no load balancer, tunnel or public domain forwards to
it) or from a loopback peer that came through no proxy; /metrics never to a request that came through the edge.

A caller on the network is played by connecting to this machine's own non-loopback address (the socket's peer
is then that address, as a load balancer's or a proxy's would be); the container's own HEALTHCHECK or a sidecar
in the same network namespace by connecting to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from engine.dev import free_port, wait_tcp
from engine.registry import key_hash

SECRET = "s" * 48
ZONE_HOST = "api.acme-commerce.com"
HOSTS = [ZONE_HOST, f"{ZONE_HOST}.", "API.ACME-COMMERCE.COM", f"{ZONE_HOST}:443", "Api.Acme-Commerce.Com.:8443",
         "attacker.example", "commission-engine:8000", "localhost", "127.0.0.1"]


def _network_address() -> str:
    """An address of this machine other than loopback: a peer connecting to it is not 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: a UDP connect only picks the route's source address
        address = probe.getsockname()[0]
    assert not address.startswith("127."), "the test needs an interface other than loopback"
    return address


@dataclass(frozen=True)
class Engine:
    network: str
    public: int
    private: int

    def get(self, address: str, port: int, path: str, host: str, **headers: str) -> httpx.Response:
        with httpx.Client(timeout=10) as client:
            return client.get(f"http://{address}:{port}{path}", headers={"Host": host, **headers})


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    tenants = {"version": 1, "tenants": [{"slug": "acme", "currency": "BRL", "api_key_hashes": [key_hash("k" * 32)],
                                          "admin_key_hashes": [key_hash("a" * 32)]}]}
    public, private = free_port(), free_port()
    env = {**os.environ, "POCKETBASE_URL": "http://127.0.0.1:9", "POCKETBASE_EMAIL": "engine@example.com",
           "POCKETBASE_PASSWORD": "p" * 24, "REDIS_URL": "redis://127.0.0.1:9/0", "TENANTS_JSON": json.dumps(tenants),
           "ORIGIN_AUTH_SECRET": SECRET, "PUBLIC_HOSTNAME": ZONE_HOST, "INTERNAL_PORT": str(private),
           "WEB_CONCURRENCY": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if source := os.environ.get("ENGINE_UNDER_TEST_SRC"):  # an older engine (tests/engine/conftest.py engine_env)
        env["PYTHONPATH"] = source
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", "0.0.0.0", "--port", str(public)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_tcp(public, process)  # both listeners start together (engine.__main__.serve_both)
        yield Engine(_network_address(), public, private)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("path", ["/v1/catalog/acme", "/healthz", "/readyz", "/metrics", "/nothing-here"])
def test_a_request_from_the_network_without_the_secret_is_refused_whatever_its_host(
        engine: Engine, host: str, path: str) -> None:
    response = engine.get(engine.network, engine.public, path, host)

    assert response.status_code == 403, (host, path, response.status_code, response.text[:200])
    assert "http_requests_total" not in response.text and "acme" not in response.text


@pytest.mark.parametrize("host", HOSTS)
def test_a_wrong_secret_is_refused(engine: Engine, host: str) -> None:
    for wrong in ("guess", SECRET[:-1], SECRET + "s", SECRET.upper(), ""):
        assert engine.get(engine.network, engine.public, "/healthz", host,
                          **{"X-Origin-Auth": wrong}).status_code == 403, wrong


@pytest.mark.parametrize("host", HOSTS)
def test_what_came_through_the_edge_is_served_but_never_metrics(engine: Engine, host: str) -> None:
    through_edge = {"X-Origin-Auth": SECRET, "CF-Connecting-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.9"}

    assert engine.get(engine.network, engine.public, "/healthz", host, **through_edge).status_code == 200
    metrics = engine.get(engine.network, engine.public, "/metrics", host, **through_edge)
    assert metrics.status_code == 404 and "http_requests_total" not in metrics.text
    # Even from loopback: the secret says the edge forwarded it.
    assert engine.get("127.0.0.1", engine.public, "/metrics", host, **through_edge).status_code == 404


def test_the_private_listener_serves_the_scrape_and_the_probes_and_nothing_else(engine: Engine) -> None:
    metrics = engine.get(engine.network, engine.private, "/metrics", "commission-engine.railway.internal:9100")

    assert metrics.status_code == 200 and "http_requests_total" in metrics.text
    assert engine.get(engine.network, engine.private, "/healthz", "localhost").status_code == 200
    assert engine.get(engine.network, engine.private, "/readyz", "localhost").status_code == 503  # no PocketBase
    for path in ("/v1/catalog/acme", "/v1/orders", "/docs"):
        assert engine.get(engine.network, engine.private, path, ZONE_HOST,
                          **{"X-Origin-Auth": SECRET}).status_code == 404, path


def test_loopback_reaches_the_private_paths_unless_a_proxy_forwarded_it(engine: Engine) -> None:
    assert engine.get("127.0.0.1", engine.public, "/healthz", "127.0.0.1:8000").status_code == 200
    assert engine.get("127.0.0.1", engine.public, "/metrics", "localhost").status_code == 200
    assert engine.get("127.0.0.1", engine.public, "/v1/catalog/acme", "localhost").status_code == 403
    for header in ("X-Forwarded-For", "Forwarded", "Via", "CF-Connecting-IP", "X-Real-IP"):
        assert engine.get("127.0.0.1", engine.public, "/metrics", "localhost",
                          **{header: "203.0.113.9"}).status_code == 403, header


def test_x_forwarded_for_grants_nothing(engine: Engine) -> None:
    for claimed in ("127.0.0.1", "10.0.0.5", "::1"):
        response = engine.get(engine.network, engine.public, "/metrics", "localhost", **{"X-Forwarded-For": claimed,
                                                                                         "X-Real-IP": claimed})
        assert response.status_code == 403, claimed
