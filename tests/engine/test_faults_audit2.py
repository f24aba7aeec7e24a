"""#23, the engine's second outside audit (f2): a real PocketBase and a real Redis behind fault proxies
(test_faults.FaultStack), for what it found.

The rules, from the issues and the engine's README: an admin write, an order or a status change is acknowledged
only once its version token is stored as sent (else the cache check is off and old rules apply again), and
/readyz names a version field of another type; the schema check signs the engine in once, not once per
collection; a cache TTL of 0 means "no copy", costs Redis nothing and pauses it for nobody, and is not counted
as a miss (the cache-miss alert, components/observability/slos.yaml, reads `result=~"hit|miss"`); the edge
keeps the catalog for its own setting; two simultaneous first writes of the same record both succeed.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine import schema
from engine.adapters.pocketbase import PocketBase

from tests.engine.conftest import EDGE_HEADERS, readyz, scrape
from tests.engine.test_faults import MONTH, FaultStack
from tests.engine.test_faults_more import Stack, own, shared, started

__all__ = ["own", "shared"]  # the stacks of test_faults_more: module-scoped here too, one per module


def _superuser(stack: FaultStack) -> httpx.Client:
    client = httpx.Client(base_url=f"http://127.0.0.1:{stack.pb_port}", timeout=15)
    client.headers["Authorization"] = client.post("/api/collections/_superusers/auth-with-password", json={
        "identity": stack.email, "password": stack.password}).json()["token"]
    return client


def _retype(stack: FaultStack, collection: str, field: str, kind: str) -> None:
    """The field replaced by one of `kind` (a PocketBase whose schema someone changed by hand)."""
    su = _superuser(stack)
    try:
        fields = [f for f in su.get(f"/api/collections/{collection}").json()["fields"] if f["name"] != field]
        su.patch(f"/api/collections/{collection}", json={
            "fields": [*fields, {"name": field, "type": kind}]}).raise_for_status()
    finally:
        su.close()


def _metric(client: httpx.Client, series: str) -> float:
    for line in scrape(client).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


# -- 1. a version field of another type -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["number", "bool"])
def test_a_catalog_version_of_another_type_refuses_the_admin_write_and_readyz_names_it(own: Stack, kind: str) -> None:
    _retype(own.stack, "catalog_versions", "catalog_version", kind)  # PocketBase now stores a constant
    write = own.client.put("/v1/commission-rules", headers=own.admin, json={"default_rate_bps": 2000})
    ready = readyz(own.client)  # the private path: with the reasons

    assert write.status_code == 503, f"acknowledged without its version stored: {write.status_code} {write.text}"
    assert ready.status_code == 503 and "catalog_versions.catalog_version" in ready.text, ready.text


def test_a_summary_version_of_another_type_refuses_the_order_and_readyz_names_it(own: Stack) -> None:
    _retype(own.stack, "affiliates", "summary_version", "number")
    placed = own.order("ana")
    ready = readyz(own.client)  # the private path: with the reasons

    assert placed.status_code == 503, f"acknowledged without its summary version: {placed.status_code} {placed.text}"
    assert ready.status_code == 503 and "affiliates.summary_version" in ready.text, ready.text


# -- 2. the schema check signs in once ---------------------------------------------------------------------


def test_the_schema_check_signs_the_engine_in_once(shared: Stack) -> None:
    stack = shared.stack
    sign_ins: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path.endswith("/auth-with-password"):
            sign_ins.append(request.url.path)

    async def check() -> str | None:
        pocketbase = PocketBase(f"http://127.0.0.1:{stack.pb_port}", schema.ACCOUNTS, stack.engine_email,
                                stack.engine_password, required=schema.required())
        pocketbase._http.event_hooks["request"].append(count)  # pyright: ignore[reportPrivateUsage]
        try:
            return await pocketbase.unready()
        finally:
            await pocketbase.close()

    assert asyncio.run(check()) is None
    assert len(sign_ins) == 1, f"{len(sign_ins)} sign-ins for one schema check of {len(schema.required())} collections"


# -- 3 and 4. a cache TTL of 0 ---------------------------------------------------------------------------------


def test_cache_ttls_of_zero_keep_no_copy_fail_nothing_and_count_no_miss(tmp_path: Path) -> None:
    ttls = {"CATALOG_CACHE_SECONDS": "0", "SUMMARY_CACHE_SECONDS": "0", "CATALOG_EDGE_SECONDS": "86400"}
    with started(tmp_path, ttls) as running:
        client, tenant = running.client, running.tenant
        placed = [running.order("ana").status_code for _ in range(2)]
        version_reads = 'pocketbase_request_duration_seconds_count{operation="summary_version"}'
        before = {series: _metric(client, series) for series in (
            'cache_requests_total{cache="summary",result="miss"}', version_reads)}
        summaries = [client.get(f"/v1/affiliates/ana/commissions?month={MONTH}", headers=tenant.headers())
                     for _ in range(2)]
        after = {series: _metric(client, series) for series in before}
        catalog = client.get("/v1/catalog", headers=tenant.headers())
        errors = {cache: _metric(client, f'cache_requests_total{{cache="{cache}",result="error"}}')
                  for cache in ("catalog", "rules", "affiliates", "summary")}
        skipped = {cache: _metric(client, f'cache_requests_total{{cache="{cache}",result="skipped"}}')
                   for cache in ("catalog", "summary")}

    assert placed == [201, 201] and [s.json()["order_count"] for s in summaries] == [2, 2]
    assert errors == dict.fromkeys(errors, 0.0), f"a TTL of 0 made Redis fail: {errors}"
    assert after == before, f"no copy is neither a miss nor a version read: {before} -> {after}"
    assert skipped["catalog"] > 0 and skipped["summary"] >= 2, skipped
    assert "s-maxage=86400" in catalog.headers["Cache-Control"], catalog.headers["Cache-Control"]


# -- 5. two simultaneous first writes of the same record ---------------------------------------------------------


def test_simultaneous_first_writes_of_the_same_record_are_all_acknowledged(shared: Stack) -> None:
    sku, affiliate = f"NEW{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"

    def put(i: int) -> tuple[int, int]:
        with httpx.Client(base_url=shared.stack.url, timeout=15, headers=EDGE_HEADERS) as client:  # one connection each: at once
            product = client.put(f"/v1/products/{sku}", headers=shared.admin,
                                 json={"name": "New", "price_cents": 100 + i})
            member = client.put(f"/v1/affiliates/{affiliate}", headers=shared.admin, json={"name": f"n{i}"})
        return product.status_code, member.status_code

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(put, range(6)))

    assert answers == [(200, 200)] * 6


# -- 6. readiness messages in rounded seconds -----------------------------------------------------------------


class _SlowPocketBase(BaseHTTPRequestHandler):
    """Signs in, answers the schema check's filtered reads after 0.3 s and never the readiness read (no filter):
    /readyz then waits what is left of its 2 s, a number of seconds that is not round."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(b'{"token":"t"}')

    def do_GET(self) -> None:
        time.sleep(0.3 if "filter=" in self.path else 5)
        self._answer(b'{"items":[]}')


def test_readiness_says_its_wait_in_rounded_seconds() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowPocketBase)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def unready() -> str | None:
        pocketbase = PocketBase(f"http://127.0.0.1:{server.server_address[1]}", schema.ACCOUNTS, "e@x", "p",
                                required={"orders": ("tenant",)})
        try:
            return await pocketbase.unready()
        finally:
            await pocketbase.close()

    try:
        problem = asyncio.run(unready())
    finally:
        server.shutdown()
        server.server_close()

    assert problem is not None and re.search(r"within \d+(\.\d)? s", problem), problem
