"""What the origin gives away to a caller (#22.2 audit), over real sockets against `python -m engine serve`.

- A WebSocket handshake without the edge's secret is refused by the edge guard like any HTTP request: the ASGI
  `websocket` scope is not an HTTP one, and a guard that checks only `http` scopes lets it reach the application.
  The refusal is the guard's 403 problem, sent as an ASGI WebSocket denial response ("websocket.http.response",
  https://asgi.readthedocs.io/en/latest/extensions.html#websocket-denial-response).
- `/openapi.json` (the whole API's map) is served only with API_DOCS on (`engine dev`), as `/docs` is.
- `/readyz` through the edge says which dependency is down (the rollout pauses on it: infra/ops/rollout.py
  `dependencies_down` reads `checks` at https://api.<zone>/readyz) but not why: the reasons (addresses, hosts,
  exception text) stay on the private listener, where operators and the platform's probes read them.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from engine.api import EdgeGuard
from engine.dev import free_port, wait_tcp
from engine.registry import key_hash

SECRET = "s" * 48
HOST = "api.acme-commerce.com"
PB_URL = "http://127.0.0.1:9"  # nothing listens: PocketBase is down, and the reason names this address


def _network_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    assert not address.startswith("127.")
    return address


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[str, int, int]]:
    tenants = {"version": 1, "tenants": [{"slug": "acme", "currency": "BRL", "api_key_hashes": [key_hash("k" * 32)],
                                          "admin_key_hashes": [key_hash("a" * 32)]}]}
    public, private = free_port(), free_port()
    env = {**os.environ, "POCKETBASE_URL": PB_URL, "POCKETBASE_EMAIL": "engine@example.com",
           "POCKETBASE_PASSWORD": "p" * 24, "REDIS_URL": "redis://127.0.0.1:9/0", "TENANTS_JSON": json.dumps(tenants),
           "ORIGIN_AUTH_SECRET": SECRET, "PUBLIC_HOSTNAME": HOST, "INTERNAL_PORT": str(private),
           "WEB_CONCURRENCY": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("API_DOCS", None)
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", "0.0.0.0", "--port", str(public)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_tcp(public, process)
        yield _network_address(), public, private
    finally:
        process.terminate()
        process.wait(timeout=10)


def _handshake(address: str, port: int, path: str, **headers: str) -> tuple[int, str]:
    """An RFC 6455 opening handshake over a raw socket; the status line's code and the body that followed."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((address, port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if b" 101 " in head.split(b"\r\n")[0]:
                break
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if _ and length and len(body) >= length[0]:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode("latin-1")


@pytest.mark.parametrize("path", ["/", "/v1/catalog/acme", "/ws", "/healthz"])
def test_a_websocket_without_the_secret_is_refused_by_the_guard(engine: tuple[str, int, int], path: str) -> None:
    network, public, _ = engine

    status, body = _handshake(network, public, path)

    assert status == 403, (path, status, body)
    assert json.loads(body)["detail"] == "forbidden", "the guard's refusal, not the application's"


def test_the_guard_never_hands_a_websocket_without_the_secret_to_the_application() -> None:
    """In-process: an application that would accept every WebSocket is never called without the secret."""
    import asyncio

    reached: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "websocket.accept"})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = EdgeGuard(app, SECRET)
    no_extension: dict[str, Any] = {}
    for extensions in ({"websocket.http.response": no_extension}, no_extension):
        scope: dict[str, Any] = {"type": "websocket", "path": "/x", "headers": [(b"host", HOST.encode())], "client": ("203.0.113.9", 1),
                 "server": ("10.0.0.2", 8000), "extensions": extensions}
        asyncio.run(guard(scope, receive, send))
    assert reached == []
    assert "websocket.accept" not in [m["type"] for m in sent]
    through_edge = {"type": "websocket", "path": "/x", "client": ("203.0.113.9", 1), "server": ("10.0.0.2", 8000),
                    "headers": [(b"host", HOST.encode()), (b"x-origin-auth", SECRET.encode())]}
    asyncio.run(guard(through_edge, receive, send))
    assert reached == ["/x"]


def test_the_openapi_document_is_not_served_without_api_docs(engine: tuple[str, int, int]) -> None:
    network, public, _ = engine
    response = httpx.get(f"http://{network}:{public}/openapi.json", headers={"Host": HOST, "X-Origin-Auth": SECRET})

    assert response.status_code == 404, response.text[:200]
    assert "/v1/" not in response.text


def test_readyz_through_the_edge_names_what_is_down_but_not_why(engine: tuple[str, int, int]) -> None:
    network, public, private = engine
    edge = httpx.get(f"http://{network}:{public}/readyz", headers={"Host": HOST, "X-Origin-Auth": SECRET})
    internal = httpx.get(f"http://{network}:{private}/readyz", headers={"Host": "localhost"})

    assert edge.status_code == internal.status_code == 503
    assert edge.json()["checks"] == internal.json()["checks"] == {"pocketbase": False, "redis": False}
    assert "127.0.0.1" in internal.text and "reasons" in internal.json(), "operators still read why"
    assert "127.0.0.1" not in edge.text and ":9" not in edge.text and "reasons" not in edge.json(), edge.text
