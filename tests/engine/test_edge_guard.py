"""Only the edge reaches the engine (#11.3, #22.2): a request, whatever its Host, must carry the
header Cloudflare adds to every request it proxies (a secret the stack shares with the engine alone);
the public host never serves `/metrics`, which the telemetry agent scrapes on the private network; and
`CF-Connecting-IP` is believed only from the edge, so a caller cannot pick its own rate-limit key."""

from __future__ import annotations

import asyncio
import json

import httpx
from engine.api import create_app
from engine.registry import key_hash
from engine.settings import Settings

PUBLIC = "api.acme-commerce.com"
SECRET = "o" * 48


def _app() -> object:
    tenants = {"version": 1, "tenants": [{"slug": "acme", "currency": "BRL", "api_key_hashes": [key_hash("k")],
                                          "admin_key_hashes": [key_hash("a")]}]}
    return create_app(Settings(pocketbase_url="http://127.0.0.1:9", pocketbase_email="a@b.co",  # pyright: ignore[reportCallIssue]
                               pocketbase_password="x" * 20, redis_url="redis://127.0.0.1:9/0",
                               tenants_json=json.dumps(tenants), public_hostname=PUBLIC, origin_auth_secret=SECRET))


def _get(path: str, host: str, peer: str = "198.51.100.7", **headers: str) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app(), client=(peer, 50000))  # pyright: ignore[reportArgumentType]
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(run())


def test_the_public_host_answers_only_requests_that_came_through_the_edge() -> None:
    refused = _get("/healthz", PUBLIC)
    wrong = _get("/healthz", PUBLIC, **{"X-Origin-Auth": "guess"})
    through_edge = _get("/healthz", PUBLIC, **{"X-Origin-Auth": SECRET})

    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 403
    assert through_edge.status_code == 200


def test_a_private_host_name_is_no_pass_but_a_loopback_peer_is() -> None:
    """Host is the caller's word (#22.2): the private paths go by the socket (tests/engine/test_origin_only_edge.py
    covers the private listener over real HTTP)."""
    assert _get("/healthz", "commission-engine.railway.internal:8000").status_code == 403
    assert _get("/metrics", "localhost:8000").status_code == 403
    assert _get("/metrics", "localhost:8000", peer="127.0.0.1").status_code == 200


def test_the_public_host_never_serves_metrics() -> None:
    response = _get("/metrics", PUBLIC, **{"X-Origin-Auth": SECRET})

    assert response.status_code == 404
    assert "http_requests_total" not in response.text


def test_a_client_cannot_choose_its_rate_limit_key_with_cf_connecting_ip() -> None:
    app = _app()
    beacon = json.dumps({"tenant": "acme", "route": "/", "metrics": [{"name": "LCP", "value": 1.2}]})

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 50000))  # pyright: ignore[reportArgumentType]
        async with httpx.AsyncClient(transport=transport, base_url="http://commission-engine:8000") as client:
            claimed = [(await client.post("/v1/vitals", content=beacon, headers={
                "Content-Type": "text/plain", "CF-Connecting-IP": f"203.0.113.{i % 250}"})).status_code
                for i in range(3)]
            # Through the edge (the secret), CF-Connecting-IP is Cloudflare's word: one shopper, one key.
            edge = [(await client.post("/v1/vitals", content=beacon, headers={
                "Content-Type": "text/plain", "X-Origin-Auth": SECRET, "CF-Connecting-IP": "203.0.113.1"})).status_code
                for _ in range(130)]
            return claimed + edge

    statuses = asyncio.run(run())
    assert statuses[:3] == [403] * 3, "around the edge, no address is believed: nothing is served"
    assert statuses[3:123] == [204] * 120
    assert set(statuses[123:]) == {429}
