"""What a request costs PostgreSQL in round trips (#26 item 4), counted, not timed: every query asyncpg sends on the
store's pooled connections is logged by asyncpg's own query logger (`Connection.add_query_logger`, one entry per
exchange with the server, the pool's reset query on release included), against a real PostgreSQL.

The bench (bench/README.md, #26) found the engine's CPU on PostgreSQL in asyncpg's own code, per round trip: a new
order was BEGIN, SAVEPOINT, INSERT, RELEASE, UPDATE, COMMIT and the pool's reset; a payment an order read, an
affiliate read, BEGIN, three statements, COMMIT, and a reset after each of the three. And that the one-statement forms
keep what the transactions guaranteed: 0002's trigger admits the change, exactly one of racing changes wins, and no
transition row stays without its change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, cast

import asyncpg
import pytest
from engine.adapters.cache import Cache
from engine.registry import Tenant
from engine.services import Engine
from engine.storage import NewOrder, NotUnique
from engine.storage import postgres as postgres_module
from engine.storage.postgres import PostgresStore

from tests.engine.postgres_server import Database, LocalPostgres, migrated

ORDER = NewOrder("key-0000001", "h", "ana", "created", "pending", "BRL", "2026-12", 1000, 100,
                 [{"sku": "sku1", "quantity": 1, "unit_price_cents": 1000}])


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    server = LocalPostgres().start()
    try:
        yield migrated(server)
    finally:
        server.close()


class Counted:
    """The queries sent on the pool's connections (asyncpg calls the loggers soon after each query: read after a
    pause of the loop)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.queries: list[str] = []
        real = cast(Any, asyncpg.create_pool)  # pyright: ignore[reportUnknownMemberType]

        def create_pool(*args: Any, **kwargs: Any) -> Any:
            def log(record: Any) -> None:
                self.queries.append(" ".join(str(record.query).split()))

            async def init(connection: Any) -> None:
                connection.add_query_logger(log)
            return real(*args, init=init, **kwargs)

        monkeypatch.setattr(postgres_module.asyncpg, "create_pool", create_pool)

    async def during(self, work: Callable[[], Any]) -> list[str]:
        await asyncio.sleep(0)
        start = len(self.queries)
        await work()
        for _ in range(3):
            await asyncio.sleep(0)
        return self.queries[start:]


def _store(database: Database) -> PostgresStore:
    return PostgresStore(database.host, database.port, database.name, database.engine, database.engine_password)


async def _seed(store: PostgresStore, tenant: str) -> None:
    await store.upsert_affiliate(tenant, "ana", "Ana")


def test_a_new_order_and_a_payment_cost_one_round_trip_each_after_the_order_read(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(monkeypatch)

    async def scenario() -> dict[str, list[str]]:
        store = _store(database)
        engine = Engine(store, cast(Cache, None), summary_ttl_s=300, catalog_ttl_s=300)  # neither uses Redis
        tenant = Tenant("acme", "BRL")
        try:
            await _seed(store, "acme")
            # warm: each statement prepared once per connection (asyncpg's statement cache), then counted
            first = await store.create_order("acme", ORDER, "ana")
            await engine.transition(tenant, first["id"], "pay")
            await store.summary_version("acme", "ana")
            second: dict[str, Any] = {}

            async def create() -> None:
                second.update(await store.create_order("acme", replace(ORDER, idempotency_key="key-0000002"), "ana"))
            created = await counted.during(create)
            paid = await counted.during(lambda: engine.transition(tenant, second["id"], "pay"))
            version = await counted.during(lambda: store.summary_version("acme", "ana"))
            return {"create": created, "pay": paid, "summary version": version}
        finally:
            await store.close()

    trips = asyncio.run(scenario())
    assert {name: len(queries) for name, queries in trips.items()} == {"create": 1, "pay": 2, "summary version": 1}, \
        trips


def test_the_one_statement_change_is_admitted_by_the_trigger_and_races_keep_one_winner(
        database: Database) -> None:
    """0002's trigger refuses a status change without its transition row from the same transaction: the statement
    passes it (the change lands, with its row), and of ten changes racing from `created` exactly one wins."""
    async def scenario() -> tuple[int, int, list[tuple[str, str]]]:
        store = _store(database)
        try:
            await _seed(store, "race")
            order = await store.create_order("race", replace(ORDER, idempotency_key="key-race001"),
                                             "ana")
            outcomes = await asyncio.gather(*(store.transition("race", order, "created", "paid", "approved", "ana")
                                              for _ in range(10)), return_exceptions=True)
            connection = await database.connect(as_engine=False)
            try:
                rows = await connection.fetch("SELECT from_status, to_status FROM order_transitions "
                                              "WHERE order_id = $1", order["id"])
            finally:
                await connection.close()
            won = sum(isinstance(o, dict) and o["status"] == "paid" for o in outcomes)
            lost = sum(isinstance(o, NotUnique) for o in outcomes)
            return won, lost, [(r["from_status"], r["to_status"]) for r in rows]
        finally:
            await store.close()

    assert asyncio.run(scenario()) == (1, 9, [("created", "paid")])


def test_no_transition_row_stays_when_the_order_left_its_status_without_one(
        database: Database) -> None:
    """Only the schema's owner can change a status without a transition row (the trigger disabled): should it do so
    while a change is under way (after the change's snapshot, before its update), the change fails whole as a lost
    race (NotUnique) and leaves no transition row claiming a change that did not happen."""
    db = database

    async def scenario() -> tuple[object, list[Any], str]:
        store = _store(db)
        owner = await db.connect(as_engine=False)
        try:
            await _seed(store, "owner")
            order = await store.create_order("owner", replace(ORDER, idempotency_key="key-owner01"),
                                             "ana")
            await owner.execute("ALTER TABLE orders DISABLE TRIGGER orders_status_transition")
            try:
                transaction: Any = owner.transaction()
                await transaction.start()
                await owner.execute("UPDATE orders SET status = 'cancelled', commission_status = 'reversed' WHERE id = $1",
                                    order["id"])  # the commission its status gives (0003's check)
                change = asyncio.ensure_future(store.transition("owner", order, "created", "paid", "approved", "ana"))
                # the change waits for the owner's row lock (its snapshot still saw `created`)
                while not await owner.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                    await asyncio.sleep(0.05)
                await transaction.commit()
                outcome: object = await asyncio.gather(change, return_exceptions=True)
            finally:
                await owner.execute("ALTER TABLE orders ENABLE TRIGGER orders_status_transition")
            rows = await owner.fetch("SELECT from_status FROM order_transitions WHERE order_id = $1", order["id"])
            status = await owner.fetchval("SELECT status FROM orders WHERE id = $1", order["id"])
            return outcome, list(rows), status
        finally:
            await owner.close()
            await store.close()

    (outcome,), rows, status = cast(tuple[list[object], list[Any], str], asyncio.run(scenario()))
    assert isinstance(outcome, NotUnique), outcome
    assert rows == [] and status == "cancelled"
