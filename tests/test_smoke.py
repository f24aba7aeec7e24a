"""The deploy gate's smoke (`python -m engine smoke`, components/engine/src/engine/smoke.py) against the
engine for real (PocketBase, Redis and the engine as `python -m engine dev` runs them): it passes end
to end; it fails, naming the step, when the edge keeps serving a catalog the engine changed (a purge
that never landed) or when paying fails; and it always cleans up what it made."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine.dev import demo_tenant, local_stack
from engine.smoke import AFFILIATE, SKU, Smoke


class Engine:
    def __init__(self, url: str, tenant: str, api_key: str, admin_key: str) -> None:
        self.url, self.tenant, self.api_key, self.admin_key = url, tenant, api_key, admin_key

    def get(self, path: str, **kwargs: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=10,
                             **kwargs)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tenant, api_key, admin_key = demo_tenant()
    with local_stack(tmp_path_factory.mktemp("smoke"), [tenant]) as stack:
        # The tenant pays its affiliates 10 %, so the summary has a commission to count.
        httpx.put(f"{stack.url}/v1/commission-rules", json={"default_rate_bps": 1000}, timeout=10,
                  headers={"Authorization": f"Bearer {admin_key}"}).raise_for_status()
        yield Engine(stack.url, "demo", api_key, admin_key)


class Edge:
    """A reverse proxy in front of the engine, as the edge is; `intercept` may answer a request itself."""

    def __init__(self, origin: str, intercept: Callable[[str, str], tuple[int, bytes] | None]) -> None:
        self.origin = origin
        self.intercept = intercept
        edge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = edge.intercept(self.command, self.path)
                if answer is None:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    response = httpx.request(self.command, f"{edge.origin}{self.path}", content=body, headers=headers,
                                             timeout=10)
                    answer = (response.status_code, response.content)
                self.send_response(answer[0])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer[1])))
                self.end_headers()
                self.wfile.write(answer[1])

            do_GET = do_POST = do_PUT = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _smoke(url: str, engine: Engine, lines: list[str], **kwargs: Any) -> bool:
    smoke = Smoke(url, engine.tenant, engine.admin_key, engine.api_key, write=lines.append, **kwargs)
    passed = smoke.run()
    print("\n".join(lines))
    return passed


def _smoke_product(engine: Engine) -> dict[str, Any] | None:
    catalog = engine.get(f"/v1/catalog/{engine.tenant}")
    return next((p for p in catalog["products"] if p["sku"] == SKU), None)


def test_the_smoke_command_passes_against_the_engine_and_leaves_nothing_behind(engine: Engine, tmp_path: Path) -> None:
    env = {**os.environ, "SMOKE_ADMIN_KEY": engine.admin_key}
    # `--api-key=KEY`, one word: a urlsafe key starts with "-" one time in 64, and argparse reads a separate
    # "-..." word as an option (the fresh-clone run of 2026-11-29 failed so: "expected one argument").
    result = subprocess.run([sys.executable, "-m", "engine", "smoke", "--url", engine.url, "--tenant", engine.tenant,
                             "--admin-key", "-", f"--api-key={engine.api_key}"], capture_output=True, text=True,
                            env=env, timeout=120, cwd=tmp_path)
    print(result.stdout, result.stderr)

    assert result.returncode == 0
    steps = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith(("ok ", "FAIL"))]
    assert steps == ["ok    put product", "ok    catalog through the edge", "ok    put affiliate", "ok    create order",
                     "ok    pay order", "ok    affiliate summary", "ok    clean up the order",
                     "ok    clean up the product"]
    assert engine.admin_key not in result.stdout + result.stderr
    assert _smoke_product(engine) is None, "the product is inactive again"
    assert "commission 199 cents" in result.stdout and "199 cents approved" in result.stdout
    month = re.search(r"cents approved in (\d{4}-\d{2})", result.stdout).group(1)  # type: ignore[union-attr]
    summary = engine.get(f"/v1/affiliates/{AFFILIATE}/commissions", params={"month": month})
    assert (summary["approved_cents"], summary["reversed_cents"]) == (0, 199), "the order was refunded"


def test_the_smoke_fails_when_the_edge_serves_a_catalog_the_engine_changed(engine: Engine) -> None:
    stale = httpx.get(f"{engine.url}/v1/catalog/{engine.tenant}", timeout=10).content
    edge = Edge(engine.url, lambda method, path: (200, stale) if path.startswith("/v1/catalog/") else None)
    lines: list[str] = []
    try:
        passed = _smoke(edge.url, engine, lines, catalog_wait_s=2.0, poll_s=0.5)
    finally:
        edge.close()

    assert not passed
    assert any(line.startswith("FAIL  catalog through the edge") and "was not purged" in line for line in lines)
    assert lines[-1].startswith("smoke: FAILED at catalog through the edge")
    assert not any(line.startswith("ok    create order") for line in lines), "it stops at the first failure"
    assert _smoke_product(engine) is None, "the product it wrote is inactive again"


def test_a_failed_payment_fails_the_smoke_and_the_order_is_cancelled(engine: Engine) -> None:
    problem = b'{"type":"about:blank","title":"Storage unavailable","status":503,"detail":"injected"}'
    edge = Edge(engine.url, lambda method, path: (503, problem) if path.endswith("/pay") else None)
    lines: list[str] = []
    try:
        passed = _smoke(edge.url, engine, lines, poll_s=0.2)
    finally:
        edge.close()

    assert not passed
    assert any(line.startswith("FAIL  pay order") and "HTTP 503" in line for line in lines)
    created = next(line for line in lines if line.startswith("ok    create order"))
    order_id = re.search(r"order (\w+):", created).group(1)  # type: ignore[union-attr]
    assert engine.get(f"/v1/orders/{order_id}")["status"] == "cancelled"
    assert _smoke_product(engine) is None
