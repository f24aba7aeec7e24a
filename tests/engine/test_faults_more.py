"""#23 (second audit) and #20.1: more faults with a real PocketBase and a real Redis behind fault proxies
(infra/ops/chaos_proxy.FaultProxy, through test_faults.FaultStack).

The rules, from the issues and the engine's README: no order is judged against data older than the last
acknowledged admin write (rules, affiliates, products), whatever Redis did; /readyz says not ready while the
engine cannot serve from PocketBase (its account refused, a collection or a field it needs missing) and answers
within the probe's 2 s; only PocketBase's own record-not-found is "not found"; every other dependency failure is
the documented 503 problem, never a 500 and never a false 201; a request on a connection is answered, then a
parse error after it, and nothing hangs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engine.dev
import httpx
import pytest
from engine.dev import pocketbase_binary, wait_http

from tests.engine.conftest import EDGE_HEADERS, ORIGIN_AUTH_SECRET, TenantKeys, make_tenant
from tests.engine.test_faults import LINES, MONTH, FaultStack
from tests.engine.test_faults import _redis_fault as redis_fault  # pyright: ignore[reportPrivateUsage]
from tests.engine.test_faults import _responses as responses  # pyright: ignore[reportPrivateUsage]

PAUSE_S = 2.2
"""Past the engine's 2 s pause of Redis after an error (adapters/cache.py): Redis is asked again."""


@dataclass
class Stack:
    stack: FaultStack
    client: httpx.Client
    tenant: TenantKeys

    @property
    def admin(self) -> dict[str, str]:
        return self.tenant.headers(admin=True)

    def order(self, affiliate: str | None = None, sku: str = "MUG", headers: dict[str, str] | None = None
              ) -> httpx.Response:
        body: dict[str, Any] = {"lines": [{"sku": sku, "quantity": 1}]} | (
            {"affiliate_id": affiliate} if affiliate else {})
        return self.client.post("/v1/orders", json=body, headers=(headers or self.tenant.headers()) | {
            "Idempotency-Key": uuid.uuid4().hex})


def _started(data: Path, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """The engine, PocketBase and Redis behind fault proxies, with `env` over the engine's settings, once ready:
    a product, commission rules and an affiliate in place."""
    entry, tenant = make_tenant("acme")
    stack = FaultStack(data, [entry])
    stack.env |= env or {}
    try:
        stack.start()
        with httpx.Client(base_url=stack.url, timeout=15, headers=EDGE_HEADERS) as client:
            running = Stack(stack, client, tenant)
            deadline = time.monotonic() + 15  # start() waits for /healthz; the schema check may still be under way
            while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            client.put("/v1/products/MUG", headers=running.admin,
                       json={"name": "Mug", "category": "home", "price_cents": 4500}).raise_for_status()
            client.put("/v1/commission-rules", headers=running.admin, json={"default_rate_bps": 1000}).raise_for_status()
            client.put("/v1/affiliates/ana", headers=running.admin, json={"name": "ana"}).raise_for_status()
            yield running
    finally:
        stack.close()


started = contextlib.contextmanager(_started)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _started(tmp_path_factory.mktemp("faults-more"))


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Stack]:
    """For a test that restarts PocketBase or the engine."""
    yield from _started(tmp_path)


# -- 1. an admin write while Redis fails -----------------------------------------------------------------


@pytest.mark.parametrize("fault", ["-OOM", "cut reply", "1 s late"])
def test_an_admin_write_while_redis_fails_is_used_by_every_order_after_it(shared: Stack, fault: str) -> None:
    sku, affiliate = f"OLD{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    shared.client.put(f"/v1/products/{sku}", headers=shared.admin,
                      json={"name": "Old", "category": "home", "price_cents": 1000}).raise_for_status()
    warm = shared.order("ana", sku)  # rules, affiliates and catalog cached with the product active
    assert warm.status_code == 201 and warm.json()["commission_cents"] == 100, warm.text  # 10 % of 1000
    redis_fault(shared.stack.redis, fault)
    try:
        writes = [shared.client.put("/v1/commission-rules", headers=shared.admin, json={"default_rate_bps": 2000}),
                  shared.client.put(f"/v1/affiliates/{affiliate}", headers=shared.admin, json={"name": "New"}),
                  shared.client.put(f"/v1/products/{sku}", headers=shared.admin,
                                    json={"name": "Old", "category": "home", "price_cents": 1000, "active": False})]
    finally:
        shared.stack.redis.heal()
    try:
        time.sleep(PAUSE_S)
        acknowledged = [w.status_code for w in writes]
        new_rules = shared.order("ana")
        new_affiliate = shared.order(affiliate)
        inactive = shared.order("ana", sku)
    finally:
        shared.client.put("/v1/commission-rules", headers=shared.admin, json={"default_rate_bps": 1000})

    if acknowledged != [200, 200, 200]:  # refusing the write is sound too: then nothing changed
        assert all(code == 503 for code in acknowledged if code != 200), acknowledged
        return
    assert new_rules.status_code == 201 and new_rules.json()["commission_cents"] == 900, \
        f"20 % of 4500 after the rules changed: {new_rules.text}"
    assert new_affiliate.status_code == 201, f"the new affiliate is one: {new_affiliate.text}"
    assert inactive.status_code == 422, f"the deactivated product is not orderable: {inactive.text}"


# -- 2. a PocketBase whose schema lacks a field the engine needs -------------------------------------------


def _hooks_without(tmp: Path, collection: str, field: str) -> Path:
    """PocketBase's image's hooks, with the engine's schema lacking one field (an image of before it)."""
    hooks = tmp / "old-hooks"
    shutil.copytree(engine.dev.pocketbase_hooks(), hooks)
    document = json.loads((hooks / "engine_schema.json").read_text())
    for entry in document["collections"]:
        if entry["name"] == collection:
            entry["fields"] = [f for f in entry["fields"] if f["name"] != field]
    (hooks / "engine_schema.json").write_text(json.dumps(document))
    return hooks


def test_a_pocketbase_without_a_field_the_engine_needs_is_not_ready_and_named(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.dev, "POCKETBASE_HOOKS", _hooks_without(tmp_path, "affiliates", "summary_version"))
    entry, _ = make_tenant("acme")
    stack = FaultStack(tmp_path / "stack", [entry])
    stack.wait_ready = False  # its PocketBase lacks a field: the engine is never ready, which is the point
    (tmp_path / "stack").mkdir()
    try:
        stack.start()
        # The private path (loopback, no edge header): the reasons are served there, not through the edge.
        with httpx.Client(base_url=stack.url, timeout=15) as client:
            deadline = time.monotonic() + 3
            while (ready := client.get("/readyz")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.3)
    finally:
        stack.close()

    assert ready.status_code == 503, f"ready against a schema without affiliates.summary_version: {ready.text}"
    assert "affiliates.summary_version" in ready.json()["detail"], ready.text


# -- 3. PocketBase restarted under the engine: a rotated password, no schema -------------------------------


def _ready_and_get(running: Stack, order: str) -> tuple[int, int]:
    deadline = time.monotonic() + 3  # the engine rechecks at most once a second
    while True:
        ready = running.client.get("/readyz").status_code
        got = running.client.get(f"/v1/orders/{order}", headers=running.tenant.headers()).status_code
        if (ready, got) != (200, 200) or time.monotonic() > deadline:
            return ready, got
        time.sleep(0.3)


def test_pocketbase_restarted_with_a_rotated_password_or_no_schema_is_not_ready_and_not_a_404(own: Stack) -> None:
    order = own.order().json()["id"]
    stack = own.stack
    assert _ready_and_get(own, order)[0] == 200

    stack.stop("pocketbase")
    stack.engine_password = "rotated-" + stack.engine_password  # applied to PocketBase, not to the engine
    stack.start_pocketbase()
    rotated = _ready_and_get(own, order)

    stack.stop("pocketbase")
    empty = stack.data / "pb-empty"
    empty.mkdir()
    stack.processes["pocketbase"] = subprocess.Popen(
        [pocketbase_binary(), "serve", f"--http=127.0.0.1:{stack.pb_port}", f"--dir={empty}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{stack.pb_port}/api/health")
    no_schema = _ready_and_get(own, order)

    # (readyz, GET order) with the account refused, then with no collections: not ready, and never "no order"
    assert {"rotated password": rotated, "no schema": no_schema} == {"rotated password": (503, 503),
                                                                     "no schema": (503, 503)}


# -- 4. a 200 whose JSON has another shape ------------------------------------------------------------------


SHAPES = ['{"code":500,"message":"upstream error","data":{}}', '{"items":[{"x":1}]}', "[]", "[{}]"]


@pytest.mark.parametrize("body", SHAPES)
def test_a_200_of_json_of_another_shape_is_the_documented_503(shared: Stack, body: str) -> None:
    order = shared.order("ana").json()["id"]
    headers = shared.tenant.headers() | {"Connection": "close"}
    shared.stack.pocketbase.http(200, body, "application/json")
    try:
        answers = {
            "get order": shared.client.get(f"/v1/orders/{order}", headers=headers),
            "pay": shared.client.post(f"/v1/orders/{order}/pay", headers=headers),
            "create": shared.order(None, headers=headers),
            "create with affiliate": shared.order("ana", headers=headers),
            "summary": shared.client.get("/v1/affiliates/ana/commissions?month=1999-02", headers=headers),
            "put affiliate": shared.client.put("/v1/affiliates/zed", json={"name": "z"},
                                               headers=shared.admin | {"Connection": "close"}),
        }
    finally:
        shared.stack.pocketbase.heal()

    wrong = {name: f"{r.status_code} {r.text[:100]}" for name, r in answers.items()
             if not (r.status_code == 503 and r.json().get("title") == "Storage unavailable")}
    assert wrong == {}


# -- 5. a chunked body that turns invalid partway ------------------------------------------------------------


def _exchange(port: int, parts: list[bytes], wait_s: float = 5.0) -> tuple[list[int], bool]:
    """The status codes answered, and whether the engine closed the connection within `wait_s`."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        for part in parts:
            sock.sendall(part)
            time.sleep(0.05)
        raw, closed = b"", False
        try:
            while chunk := sock.recv(65536):
                raw += chunk
            closed = True
        except TimeoutError:
            pass
    return responses(raw), closed


def _post(tenant: TenantKeys, extra: str = "") -> bytes:
    body = json.dumps({"lines": LINES}).encode()
    return (f"POST /v1/orders HTTP/1.1\r\nHost: engine\r\nX-Origin-Auth: {ORIGIN_AUTH_SECRET}\r\nAuthorization: Bearer {tenant.api}\r\n"
            f"Idempotency-Key: {uuid.uuid4().hex}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_a_chunked_body_that_turns_invalid_is_answered_400_and_closed(shared: Stack) -> None:
    head = (f"POST /v1/orders HTTP/1.1\r\nHost: engine\r\nX-Origin-Auth: {ORIGIN_AUTH_SECRET}\r\nAuthorization: Bearer {shared.tenant.api}\r\n"
            f"Idempotency-Key: {uuid.uuid4().hex}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"li\r\n").encode()

    codes, closed = _exchange(shared.stack.engine_port, [head, b"ZZZZ not a chunk size\r\n\r\n"])

    assert (codes, closed) == ([400], True)


def test_two_orders_then_garbage_in_one_write_are_answered_201_201_400(shared: Stack) -> None:
    codes, closed = _exchange(shared.stack.engine_port,
                              [_post(shared.tenant) + _post(shared.tenant) + b"\x16\x03\x01garbage\r\n\r\n"])

    assert (codes, closed) == ([201, 201, 400], True)


# -- 6. Redis replies of the wrong type ----------------------------------------------------------------------


@pytest.mark.parametrize("reply", ["+OK", ":1", "*0", "*2\r\n$1\r\na\r\n$1\r\nb"])
def test_a_redis_reply_of_the_wrong_type_is_a_cache_failure_not_a_500(shared: Stack, reply: str) -> None:
    shared.stack.redis.error(reply)
    try:
        answers = {"summary": shared.client.get(f"/v1/affiliates/ana/commissions?month={MONTH}",
                                                headers=shared.tenant.headers() | {"Connection": "close"}),
                   "order": shared.order("ana", headers=shared.tenant.headers() | {"Connection": "close"}),
                   "catalog": shared.client.get("/v1/catalog/acme", headers={"Connection": "close"})}
    finally:
        shared.stack.redis.heal()
    time.sleep(PAUSE_S)

    assert {name: r.status_code for name, r in answers.items()} == {"summary": 200, "order": 201, "catalog": 200}


# -- 7. /readyz while the first schema check waits on a blackholed PocketBase ---------------------------------


def test_readyz_answers_within_the_probe_timeout_while_pocketbase_is_blackholed(own: Stack) -> None:
    stack = own.stack
    stack.pocketbase.blackhole()
    stack.stop("engine")
    stack.processes["engine"] = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port", str(stack.engine_port)],
        env=stack.env | {"POCKETBASE_TIMEOUT_SECONDS": "5"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"{stack.url}/healthz")
    answers: list[int | str] = []
    try:
        # /readyz's own budget for PocketBase (2 s, PocketBase.unready), with 1 s of slack for this loaded
        # machine; PocketBase's call timeout (5 s) must not be what answers.
        with httpx.Client(base_url=stack.url, timeout=3.0, headers=EDGE_HEADERS) as probe:
            for _ in range(4):
                try:
                    answers.append(probe.get("/readyz").status_code)
                except httpx.TimeoutException:
                    answers.append("no answer within 3 s")
    finally:
        stack.pocketbase.heal()

    assert answers == [503] * 4


# -- 2, the rollout: an older revision's writes do not replace the versions ------------------------------------


def _old_revision_order(stack: FaultStack, tenant: str, affiliate: str) -> None:
    """An order as an engine of before `summary_version` writes it: the record alone, no version replaced."""
    pocketbase = f"http://127.0.0.1:{stack.pb_port}"
    token = httpx.post(f"{pocketbase}/api/collections/_superusers/auth-with-password", timeout=10,
                       json={"identity": stack.email, "password": stack.password}).json()["token"]
    httpx.post(f"{pocketbase}/api/collections/orders/records", headers={"Authorization": token}, timeout=10, json={
        "tenant": tenant, "idempotency_key": uuid.uuid4().hex, "request_hash": "old", "affiliate_id": affiliate,
        "status": "created", "commission_status": "pending", "currency": "BRL", "created_month": MONTH,
        "total_cents": 4500, "commission_cents": 450, "lines": []}).raise_for_status()


@pytest.mark.parametrize("summary_cache_s", ["300", "0"])
def test_during_a_rollout_the_summary_cache_off_sees_an_older_revisions_orders(tmp_path: Path,
                                                                              summary_cache_s: str) -> None:
    """The README's rollout rule: with SUMMARY_CACHE_SECONDS=0 on the new revision, an order an older revision
    writes (without replacing summary_version) is in the next summary; with the cache on it is not (why the
    rule exists)."""
    with started(tmp_path, {"SUMMARY_CACHE_SECONDS": summary_cache_s}) as running:
        client, tenant = running.client, running.tenant
        assert running.order("ana").status_code == 201
        summary = f"/v1/affiliates/ana/commissions?month={MONTH}"
        before = [client.get(summary, headers=tenant.headers()).json()["order_count"] for _ in range(2)]
        _old_revision_order(running.stack, "acme", "ana")
        after = client.get(summary, headers=tenant.headers()).json()["order_count"]

    assert before == [1, 1]
    assert after == (2 if summary_cache_s == "0" else 1)
