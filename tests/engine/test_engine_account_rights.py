"""The engine's PocketBase account may do what the engine does and nothing more (#22 item 8): against the real
PocketBase binary with the image's hooks (engine_schema.pb.js importing engine_schema.json), signed in as the
engine's account exactly as the engine signs in.

The engine creates and updates records (services.Engine: `_admin_write` POST/PATCH, `create_order` POST,
`transition` POST of a transition + PATCH of the order's status and commission_status, PUT upserts of
catalog_versions, PATCH of affiliates' summary_version) and never deletes one; a transition, once written, is
history: never updated. PocketBase answers a request its collection's rule refuses with 403 when the rule is
null ("Only superusers can perform this action") and 404 when a non-null rule does not match the record
(https://pocketbase.io/docs/api-rules-and-filters/: "null ... only authorized superusers can perform";
apis/record_crud.go: a failed update/delete rule is `NewNotFoundError`).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from contextlib import contextmanager

import httpx
import pytest

from tests.engine.conftest import Running

REFUSED = {403, 404}


@contextmanager
def _engine_session(running: Running) -> Generator[httpx.Client, None, None]:
    """A client of PocketBase itself signed in as the engine's account (what POCKETBASE_EMAIL/PASSWORD give it)."""
    stack = running.stack
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.pb_port}", timeout=10) as client:
        response = client.post("/api/collections/engine_accounts/auth-with-password",
                               json={"identity": stack.engine_email, "password": stack.engine_password})
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = response.json()["token"]
        yield client


@pytest.fixture
def paid_order(engine: Running) -> dict[str, str]:
    """An order created and paid through the engine's API: its normal flow, which must keep working."""
    client, tenant = engine.client, engine.a
    admin = tenant.headers(admin=True)
    # A fresh order per test: one test's refusal that did not happen (a deleted order) hides nothing from another.
    assert client.put("/v1/products/RIGHTS", headers=admin,
                      json={"name": "Rights", "category": "misc", "price_cents": 1000}).status_code == 200
    assert client.put("/v1/affiliates/rights", headers=admin, json={"name": "rights"}).status_code == 200
    assert client.put("/v1/commission-rules", headers=admin, json={"default_rate_bps": 500}).status_code == 200
    created = client.post("/v1/orders", headers=tenant.headers() | {"Idempotency-Key": uuid.uuid4().hex},
                          json={"lines": [{"sku": "RIGHTS", "quantity": 1}], "affiliate_id": "rights"})
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    paid = client.post(f"/v1/orders/{order_id}/pay", headers=tenant.headers())
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    return {"order": order_id}


def _transition(pb: httpx.Client, order_id: str) -> dict[str, str]:
    found = pb.get("/api/collections/order_transitions/records", params={"filter": f'order_id="{order_id}"'})
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert len(items) == 1, items
    return items[0]


def test_the_engine_account_cannot_delete_an_order(engine: Running, paid_order: dict[str, str]) -> None:
    with _engine_session(engine) as pb:
        response = pb.delete(f"/api/collections/orders/records/{paid_order['order']}")
        assert response.status_code in REFUSED, (response.status_code, response.text)
        assert pb.get(f"/api/collections/orders/records/{paid_order['order']}").status_code == 200


def test_the_engine_account_cannot_rewrite_an_orders_amounts_lines_or_tenant(
        engine: Running, paid_order: dict[str, str]) -> None:
    with _engine_session(engine) as pb:
        url = f"/api/collections/orders/records/{paid_order['order']}"
        before = pb.get(url).json()
        bodies: tuple[dict[str, object], ...] = (
            {"total_cents": 1}, {"commission_cents": 999999}, {"lines": []}, {"tenant": "bravo"},
            {"affiliate_id": "someone-else"}, {"idempotency_key": "x"}, {"request_hash": "x"},
            {"created_month": "1999-01"}, {"currency": "USD"}, {"status": "paid", "total_cents": 1})
        for body in bodies:
            response = pb.patch(url, json=body)
            assert response.status_code in REFUSED, (body, response.status_code, response.text)
        assert {k: v for k, v in pb.get(url).json().items() if k != "updated"} == \
            {k: v for k, v in before.items() if k != "updated"}


def test_the_engine_account_cannot_update_or_delete_a_transition(engine: Running,
                                                                 paid_order: dict[str, str]) -> None:
    with _engine_session(engine) as pb:
        transition = _transition(pb, paid_order["order"])
        url = f"/api/collections/order_transitions/records/{transition['id']}"
        response = pb.patch(url, json={"to_status": "refunded"})
        assert response.status_code in REFUSED, (response.status_code, response.text)
        response = pb.delete(url)
        assert response.status_code in REFUSED, (response.status_code, response.text)
        assert _transition(pb, paid_order["order"])["to_status"] == "paid"


@pytest.mark.parametrize("collection", ["products", "affiliates", "commission_rules", "catalog_versions"])
def test_the_engine_account_deletes_nothing(engine: Running, paid_order: dict[str, str], collection: str) -> None:
    with _engine_session(engine) as pb:
        records = pb.get(f"/api/collections/{collection}/records", params={"perPage": 1}).json()["items"]
        assert records, collection
        response = pb.delete(f"/api/collections/{collection}/records/{records[0]['id']}")
        assert response.status_code in REFUSED, (collection, response.status_code, response.text)


def test_after_the_refusals_the_engines_flow_still_changes_status(engine: Running,
                                                                  paid_order: dict[str, str]) -> None:
    refunded = engine.client.post(f"/v1/orders/{paid_order['order']}/refund", headers=engine.a.headers())
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    with _engine_session(engine) as pb:
        found = pb.get("/api/collections/order_transitions/records",
                       params={"filter": f'order_id="{paid_order["order"]}"', "sort": "created"}).json()["items"]
        assert [(t["from_status"], t["to_status"]) for t in found] == [("created", "paid"), ("paid", "refunded")]
