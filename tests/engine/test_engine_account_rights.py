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


# -- #22 item 8, second part: an order moves only along the lifecycle, and only with its transition recorded --------
# The domain's moves (engine.domain.model TRANSITIONS / COMMISSION_FOR, written out here as the issue states them):
# created -> paid (approved), created -> cancelled (reversed), paid -> refunded (reversed). The engine makes each in one
# batch: POST the transition (order_id, from_status = the order's status), then PATCH the order's status and
# commission_status. PocketBase's rules, not only the engine, must admit exactly that.


def _new_order(engine: Running, pay: bool = False) -> str:
    client, tenant = engine.client, engine.a
    admin = tenant.headers(admin=True)
    assert client.put("/v1/products/MOVES", headers=admin,
                      json={"name": "Moves", "category": "misc", "price_cents": 1000}).status_code == 200
    assert client.put("/v1/affiliates/moves", headers=admin, json={"name": "moves"}).status_code == 200
    created = client.post("/v1/orders", headers=tenant.headers() | {"Idempotency-Key": uuid.uuid4().hex},
                          json={"lines": [{"sku": "MOVES", "quantity": 1}], "affiliate_id": "moves"})
    assert created.status_code == 201, created.text
    order_id = str(created.json()["id"])
    if pay:
        paid = client.post(f"/v1/orders/{order_id}/pay", headers=tenant.headers())
        assert paid.status_code == 200, paid.text
    return order_id


def _state(pb: httpx.Client, order_id: str) -> tuple[str, str, list[tuple[str, str]]]:
    order = pb.get(f"/api/collections/orders/records/{order_id}")
    assert order.status_code == 200, order.text
    found = pb.get("/api/collections/order_transitions/records",
                   params={"filter": f'order_id="{order_id}"', "sort": "created"}).json()["items"]
    return order.json()["status"], order.json()["commission_status"], [(t["from_status"], t["to_status"]) for t in found]


def _batch(pb: httpx.Client, order_id: str, transition: dict[str, str] | None, patch: dict[str, str],
           tenant: str = "acme") -> httpx.Response:
    """What the engine sends for a transition (services.Engine.transition), with the parts a test chooses."""
    requests: list[dict[str, object]] = []
    if transition is not None:
        requests.append({"method": "POST", "url": "/api/collections/order_transitions/records",
                         "body": {"tenant": tenant, **transition}})
    requests.append({"method": "PATCH", "url": f"/api/collections/orders/records/{order_id}", "body": patch})
    return pb.post("/api/batch", json={"requests": requests})


@pytest.mark.parametrize("body", [
    {"status": "refunded", "commission_status": "reversed"},   # created -> refunded skips paid
    {"status": "paid", "commission_status": "approved"},       # the right move, but no transition recorded
    {"status": "cancelled", "commission_status": "reversed"},  # idem
    {"commission_status": "approved"},                         # an approved commission on an unpaid order
    {"status": "paid", "commission_status": "reversed"},       # the move with another commission status
    {"status": "paid"},                                        # the move without its commission status
    {"status": "created", "commission_status": "pending"},     # no move at all
    {"status": "shipped", "commission_status": "approved"},    # no status of the domain
])
def test_a_created_order_cannot_be_patched_outside_the_lifecycle(engine: Running, body: dict[str, str]) -> None:
    order_id = _new_order(engine)
    with _engine_session(engine) as pb:
        response = pb.patch(f"/api/collections/orders/records/{order_id}", json=body)
        assert response.status_code in REFUSED, (body, response.status_code, response.text)
        assert _state(pb, order_id) == ("created", "pending", [])


@pytest.mark.parametrize("body", [
    {"status": "created", "commission_status": "pending"},     # paid -> created: back
    {"status": "cancelled", "commission_status": "reversed"},  # paid -> cancelled: only a created order cancels
    {"status": "refunded", "commission_status": "reversed"},   # the right move, but no transition recorded
    {"commission_status": "pending"},
    {"commission_status": "reversed"},
    {"status": "paid", "commission_status": "approved"},       # paid again
])
def test_a_paid_order_cannot_be_patched_outside_the_lifecycle(engine: Running, body: dict[str, str]) -> None:
    order_id = _new_order(engine, pay=True)
    with _engine_session(engine) as pb:
        response = pb.patch(f"/api/collections/orders/records/{order_id}", json=body)
        assert response.status_code in REFUSED, (body, response.status_code, response.text)
        assert _state(pb, order_id) == ("paid", "approved", [("created", "paid")])


def test_a_transition_of_another_order_or_status_does_not_admit_the_move(engine: Running) -> None:
    """The transition that admits a move is this order's, out of its current status: not another order's record
    out of that status, nor this order's record out of another status (one joined row must match all three)."""
    order_id = _new_order(engine, pay=True)       # holds (created -> paid)
    other = _new_order(engine, pay=True)
    refunded = engine.client.post(f"/v1/orders/{other}/refund", headers=engine.a.headers())
    assert refunded.status_code == 200, refunded.text  # `other` holds (paid -> refunded)
    with _engine_session(engine) as pb:
        response = pb.patch(f"/api/collections/orders/records/{order_id}",
                            json={"status": "refunded", "commission_status": "reversed"})
        assert response.status_code in REFUSED, (response.status_code, response.text)
        assert _state(pb, order_id) == ("paid", "approved", [("created", "paid")])


@pytest.mark.parametrize(("transition", "patch"), [
    # A transition recorded as the engine would, with an order update that is not that move.
    ({"from_status": "created", "to_status": "paid"}, {"status": "refunded", "commission_status": "reversed"}),
    ({"from_status": "created", "to_status": "paid"}, {"status": "cancelled", "commission_status": "reversed"}),
    ({"from_status": "created", "to_status": "paid"}, {"status": "paid", "commission_status": "pending"}),
    # A transition out of a status the order is not in.
    ({"from_status": "paid", "to_status": "refunded"}, {"status": "refunded", "commission_status": "reversed"}),
    # A transition the lifecycle has no move for.
    ({"from_status": "created", "to_status": "refunded"}, {"status": "refunded", "commission_status": "reversed"}),
])
def test_a_batch_with_a_transition_admits_only_that_move(engine: Running, transition: dict[str, str],
                                                         patch: dict[str, str]) -> None:
    order_id = _new_order(engine)
    with _engine_session(engine) as pb:
        response = _batch(pb, order_id, {"order_id": order_id, **transition}, patch)
        assert response.status_code >= 400, (transition, patch, response.status_code, response.text)
        assert _state(pb, order_id) == ("created", "pending", [])  # the transaction rolled back whole


def test_a_transition_of_another_order_in_the_batch_does_not_admit_the_move(engine: Running) -> None:
    order_id, other = _new_order(engine), _new_order(engine)
    with _engine_session(engine) as pb:
        response = _batch(pb, order_id, {"order_id": other, "from_status": "created", "to_status": "paid"},
                          {"status": "paid", "commission_status": "approved"})
        assert response.status_code >= 400, (response.status_code, response.text)
        assert _state(pb, order_id) == ("created", "pending", [])
        assert _state(pb, other) == ("created", "pending", [])


def test_a_transition_is_recorded_only_for_a_move_of_an_order_of_its_tenant(engine: Running) -> None:
    """A transition the lifecycle has no move for, or of an order of another tenant, or of no order, is refused when
    written. (One out of a status the order has not reached yet is not: see engine.schema.create_rule.)"""
    order_id = _new_order(engine)
    with _engine_session(engine) as pb:
        for transition in ({"from_status": "created", "to_status": "refunded"},
                           {"from_status": "created", "to_status": "created"},
                           {"from_status": "paid", "to_status": "cancelled"},
                           {"from_status": "refunded", "to_status": "paid"}):
            response = pb.post("/api/collections/order_transitions/records",
                               json={"tenant": "acme", "order_id": order_id, **transition})
            assert response.status_code >= 400, (transition, response.status_code, response.text)
        response = pb.post("/api/collections/order_transitions/records",
                           json={"tenant": "bravo", "order_id": order_id, "from_status": "created",
                                 "to_status": "paid"})
        assert response.status_code >= 400, (response.status_code, response.text)
        response = pb.post("/api/collections/order_transitions/records",
                           json={"tenant": "acme", "order_id": "nosuchorder0001", "from_status": "created",
                                 "to_status": "paid"})
        assert response.status_code >= 400, (response.status_code, response.text)
        assert _state(pb, order_id) == ("created", "pending", [])


@pytest.mark.parametrize("body", [{"status": "paid", "commission_status": "approved"},
                                  {"status": "created", "commission_status": "approved"},
                                  {"status": "refunded", "commission_status": "reversed"}])
def test_an_order_is_created_only_as_created_and_pending(engine: Running, body: dict[str, str]) -> None:
    with _engine_session(engine) as pb:
        response = pb.post("/api/collections/orders/records", json={
            "tenant": "acme", "idempotency_key": uuid.uuid4().hex, "request_hash": "h", "affiliate_id": "",
            "currency": "BRL", "created_month": "2026-12", "total_cents": 1000, "commission_cents": 0,
            "lines": [], **body})
        assert response.status_code >= 400, (body, response.status_code, response.text)


@pytest.mark.parametrize(("start_paid", "transition", "patch"), [
    (False, {"from_status": "created", "to_status": "paid"}, {"status": "paid", "commission_status": "approved"}),
    (False, {"from_status": "created", "to_status": "cancelled"},
     {"status": "cancelled", "commission_status": "reversed"}),
    (True, {"from_status": "paid", "to_status": "refunded"}, {"status": "refunded", "commission_status": "reversed"}),
])
def test_the_batch_engines_send_is_admitted(engine: Running, start_paid: bool, transition: dict[str, str],
                                            patch: dict[str, str]) -> None:
    """Exactly the bodies the engine sends (services.Engine.transition, unchanged since the batch: an engine of the
    previous version in a rollout sends the same), straight to PocketBase as the engine's account."""
    order_id = _new_order(engine, pay=start_paid)
    with _engine_session(engine) as pb:
        before = _state(pb, order_id)
        response = _batch(pb, order_id, {"order_id": order_id, **transition}, patch)
        assert response.status_code == 200, response.text
        assert _state(pb, order_id) == (patch["status"], patch["commission_status"],
                                        [*before[2], (transition["from_status"], transition["to_status"])])
