"""One contract, both stores (#26): the use cases (services.Engine) over a real PocketBase (with the image's hooks,
as the engine's own account) and over a real PostgreSQL (migrated by its migrator, used as the engine's role),
with a real Redis. What must hold on either: idempotency, exactly one winner of racing status changes, tenant
isolation, exact money past 2^53 cents, equal summaries; and the same scripted scenario through the HTTP API gives
the same answers on both (`test_the_two_stores_answer_alike`)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
from engine.adapters.cache import Cache
from engine.adapters.pocketbase import PocketBase
from engine.dev import LocalStack, local_stack
from engine.domain.model import CommissionRules, LineRequest, OrderStatus, Product, TransitionError
from engine.registry import Tenant
from engine.schema import ACCOUNTS, required, version_fields
from engine.services import Engine, IdempotencyConflict, NotFound
from engine.storage import NotUnique, Store
from engine.storage.pocketbase import PocketBaseStore
from engine.storage.postgres import PostgresStore

from tests.engine.conftest import EDGE_HEADERS, engine_env, make_tenant
from tests.engine.postgres_server import Database, LocalPostgres, migrated

T = TypeVar("T")
STORES = ("pocketbase", "postgres")
BIG = 2**53 - 1
"""The largest amount the API accepts (domain.model.MAX_EXACT); three of them sum past 2^53."""


class Servers:
    """PocketBase and Redis (as the local stack starts them), PostgreSQL (tests/engine/postgres_server.py)."""

    def __init__(self, root: Path) -> None:
        self.stack = LocalStack(root, [])
        self.stack.start_pocketbase()
        self.stack.start_redis()
        self.postgres = LocalPostgres().start()
        self.database: Database = migrated(self.postgres)

    def store(self, kind: str) -> Store:
        if kind == "pocketbase":
            return PocketBaseStore(PocketBase(f"http://127.0.0.1:{self.stack.pb_port}", ACCOUNTS,
                                              self.stack.engine_email, self.stack.engine_password, 5.0, required(),
                                              version_fields()))
        db = self.database
        return PostgresStore(db.host, db.port, db.name, db.engine, db.engine_password, pool_size=20)

    def close(self) -> None:
        self.stack.close()
        self.postgres.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("contract"))
    try:
        yield running
    finally:
        running.close()


Scenario = Callable[[Engine, Store], Awaitable[T]]


def run(servers: Servers, kind: str, scenario: Scenario[T]) -> T:
    """`scenario` on an Engine over the `kind` store and the real Redis, in one event loop."""
    async def main() -> T:
        store = servers.store(kind)
        cache = Cache(f"redis://:{servers.stack.redis_password}@127.0.0.1:{servers.stack.redis_port}/0")
        try:
            return await scenario(Engine(store, cache, summary_ttl_s=300, catalog_ttl_s=86_400), store)
        finally:
            await store.close()
            await cache.close()
    return asyncio.run(main())


def tenant() -> Tenant:
    return Tenant(f"t{secrets.token_hex(5)}", "BRL")


async def seed(engine: Engine, who: Tenant, price: int = 1000, rate_bps: int = 1000) -> None:
    await engine.put_product(who, Product("sku1", "Camiseta", "roupas", price))
    await engine.put_affiliate(who, "ana", "Ana")
    await engine.put_rules(who, CommissionRules(default_rate_bps=rate_bps))


@pytest.mark.parametrize("kind", STORES)
def test_idempotency(servers: Servers, kind: str) -> None:
    async def scenario(engine: Engine, _: Store) -> None:
        a, b = tenant(), tenant()
        await seed(engine, a)
        await seed(engine, b)
        first, created = await engine.create_order(a, "key-00000001", "ana", [LineRequest("sku1", 2)])
        again, created_again = await engine.create_order(a, "key-00000001", "ana", [LineRequest("sku1", 2)])
        assert (created, created_again) == (True, False)
        assert again == first
        with pytest.raises(IdempotencyConflict):
            await engine.create_order(a, "key-00000001", "ana", [LineRequest("sku1", 3)])
        other, created_other = await engine.create_order(b, "key-00000001", "ana", [LineRequest("sku1", 2)])
        assert created_other and other["id"] != first["id"]
        # racing first requests with one key: one order, every caller answered with it
        racing = await asyncio.gather(*(engine.create_order(a, "key-racing01", None, [LineRequest("sku1", 1)])
                                        for _ in range(8)))
        assert len({order["id"] for order, _ in racing}) == 1
        assert sum(created for _, created in racing) == 1

    run(servers, kind, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_exactly_one_of_racing_status_changes_wins(servers: Servers, kind: str) -> None:
    async def scenario(engine: Engine, store: Store) -> None:
        a = tenant()
        await seed(engine, a)
        order, _ = await engine.create_order(a, "key-00000002", "ana", [LineRequest("sku1", 1)])
        outcomes = await asyncio.gather(*(engine.transition(a, order["id"], "pay") for _ in range(10)),
                                        return_exceptions=True)
        won = [o for o in outcomes if isinstance(o, dict)]
        lost = [o for o in outcomes if isinstance(o, TransitionError)]
        assert len(won) == 1 and len(lost) == 9, outcomes
        assert won[0]["status"] == "paid" and won[0]["commission_status"] == "approved"
        assert {err.current for err in lost} == {OrderStatus.PAID}, "the losers are told the winner's status"
        # pay and cancel racing from `created`: one of them, never both
        second, _ = await engine.create_order(a, "key-00000003", "ana", [LineRequest("sku1", 1)])
        mixed = await asyncio.gather(*(engine.transition(a, second["id"], action) for action in ("pay", "cancel") * 4),
                                     return_exceptions=True)
        assert len([o for o in mixed if isinstance(o, dict)]) == 1, mixed
        final = await engine.order(a, second["id"])
        assert all(err.current.value == final["status"] for err in mixed if isinstance(err, TransitionError))
        # the store itself: the same change applied twice from the same status is refused the second time
        record = await store.order(a.slug, order["id"])
        assert record is not None
        with pytest.raises(NotUnique):
            await store.transition(a.slug, record | {"status": "created"}, "created", "paid", "approved", None)

    run(servers, kind, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_tenant_isolation(servers: Servers, kind: str) -> None:
    async def scenario(engine: Engine, store: Store) -> None:
        a, b = tenant(), tenant()
        await seed(engine, a, price=1000)
        await seed(engine, b, price=7000)
        order, _ = await engine.create_order(a, "key-00000004", "ana", [LineRequest("sku1", 1)])
        await engine.create_order(b, "key-00000004", "ana", [LineRequest("sku1", 1)])
        with pytest.raises(NotFound):
            await engine.order(b, order["id"])
        with pytest.raises(NotFound):
            await engine.transition(b, order["id"], "pay")
        assert (await engine.order(a, order["id"]))["status"] == "created", "b's attempt changed nothing"
        assert await store.order(b.slug, order["id"]) is None
        assert await store.order_by_key(b.slug, "key-00000004") != await store.order_by_key(a.slug, "key-00000004")
        month = order["created"][:7]
        summary_a = json.loads(await engine.summary(a, "ana", month))
        summary_b = json.loads(await engine.summary(b, "ana", month))
        assert (summary_a["pending_cents"], summary_b["pending_cents"]) == (100, 700)
        assert (summary_a["order_count"], summary_b["order_count"]) == (1, 1)
        assert json.loads(await engine.catalog(b))["products"][0]["price_cents"] == 7000

    run(servers, kind, scenario)


@pytest.mark.parametrize("kind", STORES)
def test_money_is_exact_past_2_to_the_53(servers: Servers, kind: str) -> None:
    async def scenario(engine: Engine, _: Store) -> dict[str, Any]:
        a = tenant()
        await seed(engine, a, price=BIG, rate_bps=10_000)
        orders = [(await engine.create_order(a, f"key-big-{n:04d}", "ana", [LineRequest("sku1", 1)]))[0]
                  for n in range(3)]
        assert all(order["commission_cents"] == BIG for order in orders)
        await engine.transition(a, orders[0]["id"], "pay")
        summary = json.loads(await engine.summary(a, "ana", orders[0]["created"][:7]))
        assert summary["pending_cents"] == 2 * BIG
        assert summary["approved_cents"] == BIG
        assert summary["pending_cents"] + summary["approved_cents"] == 3 * BIG > 2**53
        return summary

    run(servers, kind, scenario)


def test_summaries_are_equal_on_both(servers: Servers) -> None:
    """The same orders and changes on each store: the same month, cent for cent (a cached copy included)."""
    async def scenario(engine: Engine, _: Store) -> list[Any]:
        a = tenant()
        await seed(engine, a, price=1999, rate_bps=725)
        await engine.put_rules(a, CommissionRules(725, {"roupas": 1234}, {}, 5000))
        ids = [(await engine.create_order(a, f"key-sum-{n:04d}", "ana", [LineRequest("sku1", n + 1, n)]))[0]["id"]
               for n in range(6)]
        for order_id, action in zip(ids, ("pay", "cancel", "pay", "pay", "cancel", "pay"), strict=True):
            await engine.transition(a, order_id, action)
        await engine.transition(a, ids[2], "refund")
        month = (await engine.order(a, ids[0]))["created"][:7]
        return [json.loads(await engine.summary(a, "ana", month)) for _ in range(2)]

    pocketbase, postgres = (run(servers, kind, scenario) for kind in STORES)
    assert pocketbase == postgres
    assert pocketbase[0]["order_count"] == 6 and pocketbase[0]["approved_cents"] > 0


# -- the same scenario through the API, on an engine over each store ---------------------------------------------

def _scenario(client: httpx.Client, admin: dict[str, str], api: dict[str, str]) -> list[tuple[str, int, Any]]:
    """Admin writes, orders (one replayed, one conflicting), status changes legal and not, another tenant's view, a
    summary: every answer, in order."""
    answers: list[tuple[str, int, Any]] = []

    def call(method: str, path: str, headers: dict[str, str], body: Any = None, key: str | None = None) -> Any:
        extra = {"Idempotency-Key": key} if key else {}
        response = client.request(method, path, headers={**headers, **extra}, json=body)
        answers.append((f"{method} {path}", response.status_code, response.json() if response.content else None))
        return response.json() if response.content else None

    call("PUT", "/v1/products/camiseta", admin, {"name": "Camiseta", "category": "roupas", "price_cents": 5990})
    call("PUT", "/v1/products/bone", admin, {"name": "Boné", "category": "acessorios", "price_cents": 2500})
    call("PUT", "/v1/products/bone", admin, {"name": "Boné", "category": "acessorios", "price_cents": 2790})
    call("PUT", "/v1/products/velho", admin, {"name": "Velho", "price_cents": 100, "active": False})
    call("PUT", "/v1/affiliates/ana", admin, {"name": "Ana"})
    call("PUT", "/v1/commission-rules", admin, {"default_rate_bps": 1000, "category_rates_bps": {"roupas": 1500},
                                                "order_cap_cents": 0})
    call("PUT", "/v1/commission-rules", admin, {"default_rate_bps": 1000, "category_rates_bps": {
        "roupas": 1500, "acessorios": 900, "tenis": 1200}, "product_rates_bps": {"camiseta": 1600, "bone": 1100}})
    call("GET", "/v1/commission-rules", admin)
    call("GET", "/v1/catalog", api)
    first = call("POST", "/v1/orders", api, {"affiliate_id": "ana", "lines": [
        {"sku": "camiseta", "quantity": 2, "discount_cents": 90}, {"sku": "bone", "quantity": 1}]}, "order-0000001")
    call("POST", "/v1/orders", api, {"affiliate_id": "ana", "lines": [
        {"sku": "camiseta", "quantity": 2, "discount_cents": 90}, {"sku": "bone", "quantity": 1}]}, "order-0000001")
    call("POST", "/v1/orders", api, {"affiliate_id": "ana", "lines": [{"sku": "bone", "quantity": 1}]}, "order-0000001")
    second = call("POST", "/v1/orders", api, {"affiliate_id": "ana", "lines": [{"sku": "bone", "quantity": 3}]},
                  "order-0000002")
    call("POST", "/v1/orders", api, {"lines": [{"sku": "camiseta", "quantity": 1}]}, "order-0000003")
    call("POST", "/v1/orders", api, {"lines": [{"sku": "velho", "quantity": 1}]}, "order-0000004")
    call("POST", "/v1/orders", api, {"affiliate_id": "bruno", "lines": [{"sku": "bone", "quantity": 1}]},
         "order-0000005")
    call("POST", f"/v1/orders/{first['id']}/pay", api)
    call("POST", f"/v1/orders/{first['id']}/pay", api)
    call("POST", f"/v1/orders/{first['id']}/cancel", api)
    call("POST", f"/v1/orders/{first['id']}/refund", api)
    call("POST", f"/v1/orders/{second['id']}/cancel", api)
    call("GET", f"/v1/orders/{second['id']}", api)
    call("GET", "/v1/orders/doesnotexist0000", api)
    call("GET", f"/v1/affiliates/ana/commissions?month={first['created'][:7]}", api)
    call("GET", f"/v1/affiliates/ana/commissions?month={first['created'][:7]}", api)
    call("GET", "/v1/affiliates/nobody/commissions?month=2020-01", api)
    return answers


def test_the_two_stores_answer_alike(tmp_path: Path) -> None:
    """The same scripted scenario through the API of an engine on PocketBase and of one on PostgreSQL: the same
    statuses and bodies, byte for byte once ids and times are blanked (the ids are random on both)."""
    entry, keys = make_tenant("acme")
    results: dict[str, list[tuple[str, int, Any]]] = {}
    for kind in STORES:
        with local_stack(tmp_path / kind, [entry], env=engine_env(), storage=kind) as stack, \
                httpx.Client(base_url=stack.url, timeout=10, headers=EDGE_HEADERS) as client:
            results[kind] = _scenario(client, keys.headers(admin=True), keys.headers())
    pocketbase, postgres = (_blanked(results[kind]) for kind in STORES)
    assert [(name, status) for name, status, _ in postgres] == [(name, status) for name, status, _ in pocketbase]
    for on_pocketbase, on_postgres in zip(pocketbase, postgres, strict=True):
        assert on_postgres == on_pocketbase, f"\npocketbase: {on_pocketbase}\npostgres:   {on_postgres}"


def _blanked(answers: list[tuple[str, int, Any]]) -> list[tuple[str, int, Any]]:
    """The answers with what must differ between two stores blanked: order ids (random on both, numbered here by
    first appearance) and creation times; compared as the JSON text each store's engine sent, key order included."""
    seen: list[str] = []
    for name, _, body in answers:
        found = cast(dict[str, Any], body).get("id") if isinstance(body, dict) else None
        for candidate in [found, *name.split("/")]:
            if isinstance(candidate, str) and len(candidate) == 15 and candidate not in seen:
                seen.append(candidate)
    blanked: list[tuple[str, int, Any]] = []
    for name, status, body in answers:
        raw = json.dumps([name, body])
        for n, order_id in enumerate(seen):
            raw = raw.replace(order_id, f"<order {n}>")
        for _, _, other in answers:
            created = cast(dict[str, Any], other).get("created") if isinstance(other, dict) else None
            if isinstance(created, str):
                raw = raw.replace(created, "<created>")
        named, text = json.loads(raw)
        blanked.append((named, status, json.dumps(text)))
    return blanked
