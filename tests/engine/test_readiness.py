"""#20.1: an engine whose PocketBase is not serving starts, answers liveness, and says why it is not ready.

prod's `engine-standby` points POCKETBASE_URL at the standby PocketBase, stopped by design, and Cloud Run's
startup probe reads `/healthz` (components/backends/cloudrun.py): `python -m engine serve`, as the image's
ENTRYPOINT and CMD run it (components/engine/Dockerfile), must listen promptly whatever PocketBase does, and
`/readyz` must tell the truth, then turn ready on its own once PocketBase serves the engine's schema.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine.dev import LocalStack, free_port

from tests.engine.conftest import EDGE_HEADERS, TenantKeys, engine_env, make_tenant

LIVENESS_BUDGET_S = 15.0
"""Well inside Cloud Run's startup probe (3 s period, 60 failures) and the Dockerfile's 15 s start period;
the engine imports FastAPI and pydantic on a loaded two-core machine in 2 to 5 s."""


def _serve(stack: LocalStack, env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m engine serve` (the image's ENTRYPOINT + CMD) on the stack's engine port."""
    return subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port",
                             str(stack.engine_port)], env={**stack.env, **engine_env(), **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _first_answer(url: str, process: subprocess.Popen[str], budget_s: float) -> httpx.Response:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"`engine serve` exited with {process.returncode} instead of serving: {stderr[-400:]}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {budget_s:.0f} s")


@pytest.fixture
def unstarted(tmp_path: Path) -> Iterator[tuple[LocalStack, TenantKeys]]:
    entry, keys = make_tenant("acme")
    stack = LocalStack(tmp_path, [entry])
    try:
        yield stack, keys
    finally:
        stack.close()


def _order_is_a_503_problem(stack: LocalStack, keys: TenantKeys) -> None:
    """A request that needs the database: the documented 503 problem, never a 500 or a 404."""
    order = httpx.post(f"{stack.url}/v1/orders", timeout=10, headers={**keys.headers(), **EDGE_HEADERS, "Idempotency-Key": "while-down"},
                       json={"lines": [{"sku": "MUG", "quantity": 1}]})
    assert order.status_code == 503, order.text
    assert _problem(order)["title"] == "Storage unavailable"


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_engine_whose_pocketbase_is_down_serves_liveness_and_becomes_ready_on_its_own(
        unstarted: tuple[LocalStack, TenantKeys]) -> None:
    stack, keys = unstarted
    stack.start_redis()  # only PocketBase is down: the standby engine's case
    engine = _serve(stack, {"POCKETBASE_START_WAIT_SECONDS": "150"})  # prod's wait (#20.1)
    stack.processes["engine"] = engine  # type: ignore[assignment]

    live = _first_answer(f"{stack.url}/healthz", engine, LIVENESS_BUDGET_S)
    assert live.status_code == 200, live.text

    not_ready = httpx.get(f"{stack.url}/readyz", timeout=5)
    assert not_ready.status_code == 503
    problem = _problem(not_ready)
    assert problem["status"] == 503 and problem["checks"] == {"pocketbase": False, "redis": True}
    assert "pocketbase" in problem["detail"].lower() and "refused" in problem["detail"].lower(), problem["detail"]

    _order_is_a_503_problem(stack, keys)

    stack.start_pocketbase()  # the standby promoted: PocketBase serves, its image applies the schema
    deadline, ready = time.monotonic() + 20, None
    while time.monotonic() < deadline:
        ready = httpx.get(f"{stack.url}/readyz", timeout=5)
        if ready.status_code == 200:
            break
        time.sleep(0.2)
    assert ready is not None and ready.status_code == 200, f"never ready: {ready.text if ready else None}"
    assert ready.json() == {"ready": True, "checks": {"pocketbase": True, "redis": True}}
    assert engine.poll() is None, "the same process, never restarted"


def test_a_pocketbase_without_the_engines_schema_or_account_is_named_as_such(
        unstarted: tuple[LocalStack, TenantKeys]) -> None:
    """A PocketBase that serves but was not started by the engine's image (no hooks: no schema, no account)."""
    stack, keys = unstarted
    stack.start_redis()
    (stack.data / "bare").mkdir()
    from engine.dev import pocketbase_binary, wait_http

    port = free_port()
    stack.processes["pocketbase"] = subprocess.Popen(
        [pocketbase_binary(), "serve", f"--http=127.0.0.1:{port}", f"--dir={stack.data / 'bare'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/api/health")
    engine = _serve(stack, {"POCKETBASE_URL": f"http://127.0.0.1:{port}"})
    stack.processes["engine"] = engine  # type: ignore[assignment]

    assert _first_answer(f"{stack.url}/healthz", engine, LIVENESS_BUDGET_S).status_code == 200
    not_ready = httpx.get(f"{stack.url}/readyz", timeout=5)
    assert not_ready.status_code == 503
    detail = _problem(not_ready)["detail"]
    assert "pocketbase" in detail.lower() and "account" in detail.lower(), detail
    _order_is_a_503_problem(stack, keys)
