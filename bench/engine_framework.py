#!/usr/bin/env python3
"""The engine's framework CPU per request, in process: its ASGI app (middleware, routing, FastAPI's dependencies and
validation, the response) called directly with a stub in place of the use cases, so neither a socket nor a store is
counted; beside a bare FastAPI endpoint. With `--tracing` the app exports traces over OTLP/HTTP to a sink in another
process, as deployed engines do (OTEL_EXPORTER_OTLP_ENDPOINT), so what tracing costs per request is seen too.

    .venv/bin/python bench/engine_framework.py [--requests 3000] [--tracing]

CPU is this process's (its exporter thread included), the minimum of 3 rounds per case.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from engine.dev import free_port, wait_tcp
from engine.registry import Tenant, key_hash
from fastapi import FastAPI

ORDER = {"id": "abc123def456ghi", "status": "created", "commission_status": "pending", "currency": "BRL",
         "total_cents": 12345, "commission_cents": 617, "created": "2026-12-07 10:00:00.000Z", "affiliate_id": "aff-01",
         "lines": [{"sku": "SKU-001", "quantity": 2, "unit_price_cents": 537, "discount_cents": 0, "net_cents": 1074,
                    "commission_cents": 53}] * 2}

SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""


class StubEngine:
    """What the endpoints await, answered at once: only the framework around them is measured."""

    async def catalog_with_etag(self, tenant: Tenant) -> tuple[str, str]:
        return '{"currency":"BRL","products":[]}', '"0123456789abcdef"'

    async def create_order(self, *args: object) -> tuple[dict[str, Any], bool]:
        return dict(ORDER), True

    async def transition(self, *args: object) -> dict[str, Any]:
        return dict(ORDER)

    async def summary(self, *args: object) -> str:
        return '{"affiliate_id":"aff-01","month":"2026-12"}'


ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def scope(method: str, path: str, headers: dict[str, str], query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()], "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000)}


async def one(app: ASGI, request: dict[str, Any], body: bytes) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(request, state={}), receive, send)
    if sent[0]["status"] not in (200, 201):
        raise RuntimeError(f"{request['path']}: {sent}")


async def measure(cases: dict[str, tuple[ASGI, dict[str, Any], bytes]], requests: int) -> None:
    print(f"  {'request':<36} {'CPU µs/request':>14}")
    for name, (app, request, body) in cases.items():
        for _ in range(200):
            await one(app, request, body)
        rounds: list[float] = []
        for _ in range(3):
            start = time.process_time()
            for _ in range(requests):
                await one(app, request, body)
            rounds.append((time.process_time() - start) / requests * 1e6)
        print(f"  {name:<36} {min(rounds):>14.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--tracing", action="store_true", help="export traces over OTLP/HTTP to a local sink")
    args = parser.parse_args()

    import uvloop
    from engine.api import create_app
    from engine.settings import Settings

    api_key = secrets.token_urlsafe(30)
    tenants = {"version": 1, "tenants": [{"slug": "demo", "currency": "BRL", "api_key_hashes": [key_hash(api_key)],
                                          "admin_key_hashes": []}]}
    sink = None
    endpoint: str | None = None
    if args.tracing:
        port = free_port()
        sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
        wait_tcp(port, sink)
        endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as metrics:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics  # as the engine's workers count (more than one worker)
        try:
            settings = Settings(pocketbase_url="http://127.0.0.1:9", pocketbase_email="e@engine.local",  # pyright: ignore[reportCallIssue]
                                pocketbase_password="p" * 24, redis_url="redis://127.0.0.1:9/0",
                                tenants_json=json.dumps(tenants), otel_exporter_otlp_endpoint=endpoint)
            app = create_app(settings)
            app.state.engine = StubEngine()
            bare = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

            @bare.get("/hello")
            async def hello() -> dict[str, str]:  # pyright: ignore[reportUnusedFunction]
                return {"hello": "world"}

            auth = {"host": "127.0.0.1:8000", "authorization": f"Bearer {api_key}", "accept": "*/*"}
            order = json.dumps({"affiliate_id": "aff-01", "lines": [{"sku": "SKU-001", "quantity": 2},
                                                                    {"sku": "SKU-002", "quantity": 1}]}).encode()
            cases: dict[str, tuple[ASGI, dict[str, Any], bytes]] = {
                "bare FastAPI hello": (bare, scope("GET", "/hello", {"host": "x"}), b""),
                "GET /healthz (middleware)": (app, scope("GET", "/healthz", {"host": "x"}), b""),
                "GET /v1/catalog": (app, scope("GET", "/v1/catalog", auth), b""),
                "GET /v1/affiliates/{id}/commissions": (
                    app, scope("GET", "/v1/affiliates/aff-01/commissions", auth, b"month=2026-12"), b""),
                "POST /v1/orders": (app, scope("POST", "/v1/orders", auth | {
                    "content-type": "application/json", "content-length": str(len(order)),
                    "idempotency-key": "k" * 32}), order),
                "POST /v1/orders/{id}/pay": (app, scope("POST", "/v1/orders/abc123def456ghi/pay", auth), b""),
            }
            print(f"in process, tracing {'on (OTLP/HTTP to a local sink)' if args.tracing else 'off'}")
            uvloop.run(measure(cases, args.requests))
        finally:
            if sink is not None:
                sink.terminate()
                sink.wait(timeout=10)


if __name__ == "__main__":
    main()
