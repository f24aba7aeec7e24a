"""Issue #15, class 1: status changes and order creation under concurrency, against a real PocketBase,
with two engine workers (so no lock inside one process could pass for atomicity) and 50 or more
callers at once. Exactly one change wins; every other caller gets 409 with the status the order is in."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from engine.dev import LocalStack, local_stack

from tests.engine.conftest import EDGE_HEADERS, TenantKeys, engine_env, make_tenant

MONTH = dt.datetime.now(dt.UTC).strftime("%Y-%m")
CALLERS = 50


@dataclass
class Racing:
    stack: LocalStack
    client: httpx.Client
    tenant: TenantKeys

    def new_order(self, affiliate: str = "ana") -> dict[str, Any]:
        response = self.client.post("/v1/orders", json={"affiliate_id": affiliate, "lines": [{"sku": "MUG",
                                                                                               "quantity": 1}]},
                                    headers=self.tenant.headers() | {"Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code == 201
        order: dict[str, Any] = response.json()
        return order

    def status(self, order_id: str) -> str:
        status: str = self.client.get(f"/v1/orders/{order_id}", headers=self.tenant.headers()).json()["status"]
        return status

    def summary(self, affiliate: str) -> dict[str, Any]:
        summary: dict[str, Any] = self.client.get(f"/v1/affiliates/{affiliate}/commissions?month={MONTH}",
                                                  headers=self.tenant.headers()).json()
        return summary


@pytest.fixture(scope="module")
def racing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Racing]:
    entry, tenant = make_tenant("acme")
    with local_stack(tmp_path_factory.mktemp("racing"), [entry], workers=2, env=engine_env()) as stack, \
            httpx.Client(base_url=stack.url, timeout=30, headers=EDGE_HEADERS) as client:
        admin = tenant.headers(admin=True)
        assert client.put("/v1/products/MUG", headers=admin, json={"name": "Mug", "price_cents": 4500}
                          ).status_code == 200
        for affiliate in ("ana", "bia", "caio", "duda"):
            assert client.put(f"/v1/affiliates/{affiliate}", headers=admin, json={}).status_code == 200
        assert client.put("/v1/commission-rules", headers=admin, json={"default_rate_bps": 1000}).status_code == 200
        yield Racing(stack, client, tenant)


def race(racing: Racing, calls: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]]) -> list[httpx.Response]:
    """All the calls at once, each on its own connection, released together."""
    async def scenario() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(calls) + 10, max_keepalive_connections=len(calls) + 10)
        async with httpx.AsyncClient(base_url=racing.stack.url, timeout=60, limits=limits, headers=EDGE_HEADERS) as client:
            # Open every connection first, so the calls themselves leave together.
            await asyncio.gather(*(client.get("/healthz") for _ in calls))
            start = asyncio.Event()

            async def one(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
                          ) -> httpx.Response:
                await start.wait()
                return await client.request(method, path, json=body, headers=headers)

            tasks = [asyncio.ensure_future(one(*call)) for call in calls]
            await asyncio.sleep(0.05)
            start.set()
            return await asyncio.gather(*tasks)

    return asyncio.run(scenario())


def _outcomes(responses: list[httpx.Response]) -> Counter[int]:
    for response in responses:
        assert response.status_code in (200, 409), response.text
        if response.status_code == 409:
            assert response.headers["content-type"] == "application/problem+json"
    return Counter(r.status_code for r in responses)


def test_fifty_concurrent_pays_one_wins_and_the_others_are_told_it_is_paid(racing: Racing) -> None:
    order = racing.new_order()
    headers = racing.tenant.headers()

    responses = race(racing, [("POST", f"/v1/orders/{order['id']}/pay", None, headers)] * CALLERS)

    assert _outcomes(responses) == {200: 1, 409: CALLERS - 1}
    assert {r.json()["current_status"] for r in responses if r.status_code == 409} == {"paid"}
    assert [r.json()["status"] for r in responses if r.status_code == 200] == ["paid"]
    assert racing.status(order["id"]) == "paid"


def test_pays_and_cancels_racing_one_wins_and_every_caller_is_told_where_the_order_ends(racing: Racing) -> None:
    order = racing.new_order(affiliate="bia")
    headers = racing.tenant.headers()
    calls = [("POST", f"/v1/orders/{order['id']}/{action}", None, headers)
             for action in ("pay", "cancel") * (CALLERS // 2)]

    responses = race(racing, calls)

    assert _outcomes(responses) == {200: 1, 409: CALLERS - 1}
    final = racing.status(order["id"])
    assert final in ("paid", "cancelled")
    assert [r.json()["status"] for r in responses if r.status_code == 200] == [final]
    assert {r.json()["current_status"] for r in responses if r.status_code == 409} == {final}
    summary = racing.summary("bia")
    assert summary["order_count"] == 1
    assert (summary["approved_cents"], summary["reversed_cents"]) == ((450, 0) if final == "paid" else (0, 450))


def test_fifty_concurrent_refunds_one_wins(racing: Racing) -> None:
    order = racing.new_order(affiliate="caio")
    assert racing.client.post(f"/v1/orders/{order['id']}/pay", headers=racing.tenant.headers()).status_code == 200

    responses = race(racing, [("POST", f"/v1/orders/{order['id']}/refund", None, racing.tenant.headers())] * CALLERS)

    assert _outcomes(responses) == {200: 1, 409: CALLERS - 1}
    assert {r.json()["current_status"] for r in responses if r.status_code == 409} == {"refunded"}
    assert racing.status(order["id"]) == "refunded"
    assert racing.summary("caio")["reversed_cents"] == 450


def test_fifty_concurrent_creates_with_one_idempotency_key_store_one_order(racing: Racing) -> None:
    headers = racing.tenant.headers() | {"Idempotency-Key": f"race-{uuid.uuid4().hex}"}
    body = {"affiliate_id": "duda", "lines": [{"sku": "MUG", "quantity": 2}]}

    responses = race(racing, [("POST", "/v1/orders", body, headers)] * CALLERS)

    assert Counter(r.status_code for r in responses) == {201: 1, 200: CALLERS - 1}, [r.text for r in responses
                                                                                      if r.status_code >= 400][:3]
    assert len({r.json()["id"] for r in responses}) == 1
    summary = racing.summary("duda")
    assert (summary["order_count"], summary["pending_cents"]) == (1, 900), "the commission is counted once"
