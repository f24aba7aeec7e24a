"""The order store on PostgreSQL (#26), over asyncpg with a pool, as the engine's own role.

The tables are migrations/0001_initial.sql's, applied by `python -m engine migrate` as the schema's owner
(engine/migrate.py); the engine's role holds SELECT/INSERT and the column UPDATEs it makes, nothing else.

- Every query names the tenant: a row of another tenant is "not there", whatever id the caller sends.
- A status change is one statement, so one transaction (TRANSITION): `INSERT INTO order_transitions` (primary key
  (order_id, from_status)), then `UPDATE orders ... WHERE id AND tenant AND status = <from>`: of changes racing from
  one status the primary key lets one commit; the others wait for it, then fail with unique_violation (SQLSTATE
  23505), NotUnique. (https://www.postgresql.org/docs/15/index-unique-checks.html: "if a conflicting row has been
  inserted by an as-yet-uncommitted transaction, the would-be inserter must wait to see if that transaction
  commits".) A new order and its affiliate's summary version are one statement too (CREATE_ORDER): a request's
  write is one round trip, and the pool adds none on release (_keep_session).
- Money is bigint cents; a month's sum is SUM(bigint), which PostgreSQL computes as numeric
  (https://www.postgresql.org/docs/15/functions-aggregate.html: sum(bigint) -> numeric), read by asyncpg as a
  Decimal and turned into an int: exact at any size.
- TLS: with POSTGRES_CA_CERT the server's chain is verified against that CA alone and the host name is not
  (libpq's sslmode=verify-ca, https://www.postgresql.org/docs/15/libpq-ssl.html, which Cloud SQL's private IP
  needs: its server certificate names the instance, not the address, https://cloud.google.com/sql/docs/postgres/
  configure-ssl-instance); without it, plain TCP to a loopback host or a unix socket only (settings.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import ssl
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import asyncpg

from engine.domain.model import CommissionRules, CommissionStatus, Product
from engine.settings import Settings, local_host
from engine.storage.port import NewOrder, NotUnique, Record, StoreUnavailable, WritesPaused

Row = Mapping[str, Any]


class Connection(Protocol):
    """What the store uses of asyncpg's Connection (its own annotations leave the rows' types unknown)."""

    async def fetch(self, query: str, *args: object) -> list[Row]: ...
    async def fetchrow(self, query: str, *args: object) -> Row | None: ...
    async def fetchval(self, query: str, *args: object) -> Any: ...
    async def execute(self, query: str, *args: object) -> str: ...
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...
    async def close(self) -> None: ...


async def connect(**options: Any) -> Connection:
    """One connection outside the pool (the migration step, the local server's setup)."""
    return cast(Connection, await asyncpg.connect(**options))  # pyright: ignore[reportUnknownMemberType]


class Pool(Protocol):
    def acquire(self) -> AbstractAsyncContextManager[Connection]: ...
    async def close(self) -> None: ...

T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_FILE = re.compile(r"([0-9]{4})_[a-z0-9_]+\.sql")
ID_ALPHABET = string.ascii_lowercase + string.digits
ORDER_COLUMNS = ("id, tenant, idempotency_key, request_hash, affiliate_id, status, commission_status, currency, "
                 "created_month, total_cents, commission_cents, lines, created")


CREATE_ORDER = f"""
WITH created AS (
    INSERT INTO orders (id, tenant, idempotency_key, request_hash, affiliate_id, status, commission_status, currency,
                        created_month, total_cents, commission_cents, lines)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {ORDER_COLUMNS}
), summary AS (
    UPDATE affiliates SET summary_version = $14 WHERE tenant = $2 AND affiliate_id = $13
)
SELECT {ORDER_COLUMNS} FROM created"""
"""A new order, and its affiliate's new summary version ($13: the affiliate's id, NULL: none to change)."""

ORDER_FOR_CHANGE = f"""
SELECT {", ".join(f"o.{column}" for column in ORDER_COLUMNS.split(", "))}, a.affiliate_id AS affiliate_ref
FROM orders o LEFT JOIN affiliates a ON a.tenant = o.tenant AND a.affiliate_id = o.affiliate_id
WHERE o.id = $1 AND o.tenant = $2"""

TRANSITION = f"""
WITH moved AS (
    INSERT INTO order_transitions (tenant, order_id, from_status, to_status)
    SELECT tenant, id, status, $4 FROM orders WHERE id = $1 AND tenant = $2 AND status = $3
    RETURNING order_id
), changed AS (
    UPDATE orders SET status = $4, commission_status = $5, updated = now()
    FROM moved WHERE orders.id = moved.order_id AND orders.tenant = $2 AND orders.status = $3
    RETURNING {", ".join(f"orders.{column}" for column in ORDER_COLUMNS.split(", "))}
), unchanged AS (
    INSERT INTO order_transitions (tenant, order_id, from_status, to_status)
    SELECT $2, order_id, $3, $4 FROM moved WHERE NOT EXISTS (SELECT 1 FROM changed)
), summary AS (
    UPDATE affiliates SET summary_version = $7
    WHERE tenant = $2 AND affiliate_id = $6 AND EXISTS (SELECT 1 FROM changed)
)
SELECT {ORDER_COLUMNS} FROM changed"""
"""A status change in one statement: the row saying the order left status $3 for $4 (order_transitions' primary key
(order_id, from_status) lets one of racing changes in: the others wait for it to commit, then fail with
unique_violation, NotUnique), the order's new status, its affiliate's new summary version ($6: NULL, none).

- The transition row is written only for an order of tenant $2 in status $3 (else no row at all: nothing changed,
  the caller's NotUnique, as a stale read is).
- 0002's trigger on the order's update finds the transition row: queries in a row-level BEFORE trigger "see the
  effects of data changes for rows previously processed in the same outer command" when the function is VOLATILE
  (plpgsql's default; https://www.postgresql.org/docs/15/trigger-datachanges.html), the update joins `moved` so
  reads its row first, and the row's xmin is this transaction, no savepoint (test_postgres_round_trips.py).
- `unchanged` keeps a transition row from staying without its change: should the order leave $3 between this
  statement's snapshot and its update without a transition row (only the schema's owner, the trigger disabled,
  can), the update finds nothing, and a second row with the same key makes the whole statement fail with
  unique_violation, as a lost race does."""


def migrations() -> list[tuple[int, Path]]:
    """The numbered migration files the engine ships, in order."""
    return sorted((int(m.group(1)), path) for path in MIGRATIONS.iterdir()
                  if (m := MIGRATION_FILE.fullmatch(path.name)))


def schema_version() -> int:
    """The schema version this engine needs: its newest migration's number."""
    return max(number for number, _ in migrations())


class PostgresError(StoreUnavailable):
    """PostgreSQL is unreachable, refused the engine's role, failed, or lacks the schema: 503."""


def tls_context(ca_cert: str | None) -> ssl.SSLContext | bool:
    """verify-ca with `ca_cert` (the only trust anchor; the chain is checked, the host name is not, as libpq's
    sslmode=verify-ca); without it False: no TLS (loopback or a unix socket only, settings.py refuses others)."""
    if not (ca_cert or "").strip():
        return False
    context = ssl.create_default_context(cadata=ca_cert)  # given cadata, no system CA is loaded
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def pocketbase_time(value: dt.datetime) -> str:
    """A timestamp as PocketBase writes one ("2026-01-31 12:00:00.123Z"), so both stores answer alike."""
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _order(row: Any) -> Record:
    """An order row as the port's Record, answered as PocketBase answers it: each line's keys sorted (PocketBase's
    json field is read back into a Go map, and Go's encoding/json writes a map's keys sorted, https://pkg.go.dev/
    encoding/json#Marshal; jsonb keeps its own order, by length), created as text."""
    lines: Any = json.loads(row["lines"])
    ordered = [dict(sorted(line.items())) for line in lines]
    return {"id": row["id"], "tenant": row["tenant"], "idempotency_key": row["idempotency_key"],
            "request_hash": row["request_hash"], "affiliate_id": row["affiliate_id"], "status": row["status"],
            "commission_status": row["commission_status"], "currency": row["currency"],
            "created_month": row["created_month"], "total_cents": int(row["total_cents"]),
            "commission_cents": int(row["commission_cents"]), "lines": ordered,
            "created": pocketbase_time(row["created"])}


async def _keep_session(_: object) -> None:
    """The pool's reset of a connection going back, beyond asyncpg's own rollback: nothing, which spares a round trip
    per pooled call (12 % of the engine's CPU on the mix, bench/README.md #26).

    asyncpg 0.32.0's pool, on release (pool.py `PoolConnectionHolder.release`): with a `reset` given it awaits
    `Connection._reset()` and then `reset(connection)`; without one, `Connection.reset()`, which is `_reset()` and
    then the query of `get_reset_query()`: `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`
    (connection.py `reset`, `get_reset_query`). `_reset()` itself clears the listener callbacks and sends ROLLBACK
    when a transaction is still open, so that stays. The query undoes session state, and the store makes none: no
    advisory lock (the migration step's lock is on its own connection, migrate.py), no cursor (fetch, fetchrow,
    fetchval), no LISTEN, no SET or set_config. The statement cache is the connection's, kept by either (RESET ALL
    does not deallocate prepared statements)."""


def _constraint(err: Exception) -> str:
    """The constraint a PostgreSQL error names (asyncpg sets it from the server's error fields)."""
    return str(getattr(err, "constraint_name", "") or "")


def _new_id() -> str:
    """15 characters of [a-z0-9], as PocketBase makes record ids (orders.id keeps PocketBase's on a migration)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(15))


class PostgresStore:
    """services.Engine's store on PostgreSQL (storage/port.py `Store`)."""

    name = "postgres"
    SCHEMA_RECHECK_S = 1.0
    READINESS_WAIT_S = 2.0

    def __init__(self, host: str, port: int, database: str, user: str, password: str, ca_cert: str | None = None,
                 pool_size: int = 10, timeout_s: float = 5.0) -> None:
        if not (ca_cert or "").strip() and not local_host(host):
            raise ValueError(f"PostgreSQL at {host!r} over plain TCP: set POSTGRES_CA_CERT (TLS, verify-ca)")
        self._connect: dict[str, Any] = {"host": host, "port": port, "database": database, "user": user,
                                         "password": password, "ssl": tls_context(ca_cert)}
        self._where = f"{user}@{host}:{port}/{database}"
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._pool: Pool | None = None
        self._opening = asyncio.Lock()
        self._needs = schema_version()
        self._schema_ok = False
        self._schema_problem: tuple[float, str] | None = None
        self._schema_check: asyncio.Future[str | None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresStore:
        return cls(settings.postgres_host or "", settings.postgres_port, settings.postgres_db or "",
                   settings.postgres_user or "", settings.postgres_password or "", settings.postgres_ca_cert,
                   settings.postgres_pool_size, settings.pocketbase_timeout_seconds)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def _open(self) -> Pool:
        """The pool, made at the first call (no connection until one is needed: the engine starts whatever
        PostgreSQL does, and /readyz says why it does not serve)."""
        async with self._opening:
            if self._pool is None:
                pool: Any = await asyncpg.create_pool(min_size=0, max_size=self._pool_size,  # pyright: ignore[reportUnknownMemberType]
                                                      command_timeout=self._timeout_s, reset=_keep_session,
                                                      **self._connect)
                self._pool = cast(Pool, pool)
        return self._pool

    # -- calls -------------------------------------------------------------------------------------

    async def _call(self, operation: str, work: Callable[[Connection], Awaitable[T]], *,
                    transaction: bool = False, checked: bool = True) -> T:
        """`work` on a pooled connection (in one transaction if asked), bounded by the timeout as a whole (a free
        connection included); every failure of PostgreSQL or the network is PostgresError, a unique key NotUnique."""
        if checked and not self._schema_ok and (problem := await self.schema_problem()) is not None:
            raise PostgresError(problem)
        try:
            async with asyncio.timeout(self._timeout_s):
                pool = await self._open()
                async with pool.acquire() as connection:
                    if not transaction:
                        return await work(connection)
                    async with connection.transaction():
                        return await work(connection)
        except asyncpg.UniqueViolationError as err:
            raise NotUnique(f"PostgreSQL {operation}: {_constraint(err)}") from None
        except asyncpg.ReadOnlySQLTransactionError as err:
            # SQLSTATE 25006: a write in a read-only transaction, which is what a cut-over makes the database
            # (ALTER DATABASE ... SET default_transaction_read_only = on, or a replica not yet promoted).
            raise WritesPaused(f"PostgreSQL {operation}: the database refuses writes for now ({err})") from err
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError, asyncpg.InsufficientPrivilegeError) as err:
            self._schema_ok, self._schema_problem = False, None  # check again before serving
            raise PostgresError(f"PostgreSQL {operation}: {type(err).__name__}: {str(err)[:120]}") from err
        except TimeoutError as err:
            raise PostgresError(f"PostgreSQL {operation}: no answer within {self._timeout_s:g} s") from err
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as err:
            raise PostgresError(f"PostgreSQL {operation}: {type(err).__name__}: {str(err)[:120]}") from err

    # -- readiness ---------------------------------------------------------------------------------

    async def schema_problem(self, wait_s: float | None = None) -> str | None:
        """None once PostgreSQL accepts the engine's role and its schema_migrations holds the version this engine
        needs (schema_version()); else why not. Rechecked at most once a SCHEMA_RECHECK_S, one check shared."""
        if self._schema_ok:
            return None
        last = self._schema_problem
        if last is not None and time.monotonic() - last[0] < self.SCHEMA_RECHECK_S:
            return last[1]
        if self._schema_check is None or self._schema_check.done():
            self._schema_check = asyncio.ensure_future(self._check_schema())
        try:
            async with asyncio.timeout(wait_s):
                return await asyncio.shield(self._schema_check)
        except TimeoutError:
            if last is not None:
                return last[1]
            return f"PostgreSQL schema check: no answer within {wait_s or 0.0:g} s"

    async def _check_schema(self) -> str | None:
        async def version(connection: Connection) -> int | None:
            if await connection.fetchval("SELECT to_regclass('schema_migrations')") is None:
                return None
            return await connection.fetchval("SELECT max(version) FROM schema_migrations")

        try:
            found = await self._call("schema", version, checked=False)
            if found is None:
                problem = (f"PostgreSQL {self._where} has no schema_migrations: its schema is applied by "
                           "`python -m engine migrate` (as the migrator account)")
            elif found < self._needs:
                problem = (f"PostgreSQL's schema is at version {found:04d}, this engine needs {self._needs:04d}: "
                           "run `python -m engine migrate`")
            else:
                problem = None
        except (PostgresError, NotUnique) as err:
            problem = str(err)
        if problem is None:
            self._schema_ok, self._schema_problem = True, None
        else:
            self._schema_problem = (time.monotonic(), problem)
        return problem

    async def unready(self) -> str | None:
        wait_s = min(self._timeout_s, self.READINESS_WAIT_S)
        started = time.monotonic()
        if (problem := await self.schema_problem(wait_s)) is not None:
            return problem
        wait_s = max(0.1, wait_s - (time.monotonic() - started))
        try:
            async with asyncio.timeout(wait_s):
                await self._call("readiness", lambda c: c.fetchval("SELECT 1 FROM orders LIMIT 1"))
        except TimeoutError:
            return f"PostgreSQL readiness: no answer within {wait_s:.1f} s"
        except PostgresError as err:
            return str(err)
        return None

    async def encrypted(self) -> bool:
        """Whether this connection to PostgreSQL is TLS (pg_stat_ssl, as the server sees it)."""
        return bool(await self._call("tls", lambda c: c.fetchval(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")))

    # -- documents -----------------------------------------------------------------------------------

    async def catalog_version(self, tenant: str) -> str:
        found = await self._call("catalog_version", lambda c: c.fetchval(
            "SELECT catalog_version FROM catalog_versions WHERE tenant = $1", tenant))
        return "" if found is None else str(found)

    async def products(self, tenant: str) -> list[Product]:
        # COLLATE "C": by bytes, as PocketBase's SQLite sorts text (BINARY), whatever the database's locale.
        rows = await self._call("catalog", lambda c: c.fetch(
            "SELECT sku, name, category, price_cents FROM products WHERE tenant = $1 AND active "
            'ORDER BY sku COLLATE "C"', tenant))
        return [Product(r["sku"], r["name"], r["category"], int(r["price_cents"])) for r in rows]

    async def rules(self, tenant: str) -> CommissionRules | None:
        row = await self._call("rules", lambda c: c.fetchrow(
            "SELECT default_rate_bps, category_rates_bps, product_rates_bps, order_cap_cents FROM commission_rules "
            "WHERE tenant = $1", tenant))
        return None if row is None else _rules(row)

    async def affiliates(self, tenant: str) -> dict[str, str]:
        rows = await self._call("affiliates", lambda c: c.fetch(
            "SELECT affiliate_id FROM affiliates WHERE tenant = $1", tenant))
        return {r["affiliate_id"]: r["affiliate_id"] for r in rows}

    async def affiliate_ref(self, tenant: str, affiliate_id: str) -> str | None:
        """The affiliate's id itself: (tenant, affiliate_id) is the table's key."""
        return await self._call("affiliates", lambda c: c.fetchval(
            "SELECT affiliate_id FROM affiliates WHERE tenant = $1 AND affiliate_id = $2", tenant, affiliate_id))

    # -- admin writes ----------------------------------------------------------------------------------

    async def _admin_write(self, operation: str, tenant: str, select: str, insert: str, update: str,
                           key: tuple[Any, ...], values: tuple[Any, ...]) -> Any:
        """The row as it was (None: created), then the write, and a new catalog version for the tenant, in one
        transaction. Two first writes at once: the second's INSERT finds the first's row (ON CONFLICT DO NOTHING
        waits for it, then inserts nothing), reads it locked, and updates it."""
        async def write(connection: Connection) -> Any:
            while True:
                before = await connection.fetchrow(select + " FOR UPDATE", *key)
                if before is not None:
                    await connection.execute(update, *key, *values)
                    break
                if await connection.fetchval(insert + " ON CONFLICT DO NOTHING RETURNING true", *key, *values):
                    break
            await connection.execute(
                "INSERT INTO catalog_versions (tenant, catalog_version) VALUES ($1, $2) "
                "ON CONFLICT (tenant) DO UPDATE SET catalog_version = EXCLUDED.catalog_version",
                tenant, secrets.token_hex(8))
            return before

        return await self._call(operation, write, transaction=True)

    async def upsert_rules(self, tenant: str, rules: CommissionRules) -> CommissionRules | None:
        before = await self._admin_write(
            "rules", tenant,
            "SELECT default_rate_bps, category_rates_bps, product_rates_bps, order_cap_cents FROM commission_rules "
            "WHERE tenant = $1",
            "INSERT INTO commission_rules (tenant, default_rate_bps, category_rates_bps, product_rates_bps, "
            "order_cap_cents) VALUES ($1, $2, $3, $4, $5)",
            "UPDATE commission_rules SET default_rate_bps = $2, category_rates_bps = $3, product_rates_bps = $4, "
            "order_cap_cents = $5 WHERE tenant = $1",
            (tenant,), (rules.default_rate_bps, json.dumps(dict(rules.category_rates_bps)),
                        json.dumps(dict(rules.product_rates_bps)), rules.order_cap_cents))
        return None if before is None else _rules(before)

    async def upsert_product(self, tenant: str, product: Product) -> dict[str, Any] | None:
        before = await self._admin_write(
            "products", tenant,
            "SELECT sku, name, category, price_cents, active FROM products WHERE tenant = $1 AND sku = $2",
            "INSERT INTO products (tenant, sku, name, category, price_cents, active) VALUES ($1, $2, $3, $4, $5, $6)",
            "UPDATE products SET name = $3, category = $4, price_cents = $5, active = $6 "
            "WHERE tenant = $1 AND sku = $2",
            (tenant, product.sku), (product.name, product.category, product.price_cents, product.active))
        return None if before is None else {"sku": before["sku"], "name": before["name"],
                                            "category": before["category"],
                                            "price_cents": int(before["price_cents"]), "active": before["active"]}

    async def upsert_affiliate(self, tenant: str, affiliate_id: str, name: str) -> dict[str, Any] | None:
        before = await self._admin_write(
            "affiliates", tenant,
            "SELECT affiliate_id, name FROM affiliates WHERE tenant = $1 AND affiliate_id = $2",
            "INSERT INTO affiliates (tenant, affiliate_id, name) VALUES ($1, $2, $3)",
            "UPDATE affiliates SET name = $3 WHERE tenant = $1 AND affiliate_id = $2",
            (tenant, affiliate_id), (name,))
        return None if before is None else {"affiliate_id": before["affiliate_id"], "name": before["name"]}

    # -- orders -------------------------------------------------------------------------------------------

    async def create_order(self, tenant: str, order: NewOrder, affiliate_ref: str | None) -> Record:
        """The order and its affiliate's new summary version in one statement (CREATE_ORDER), so one round trip and
        one transaction: a statement outside BEGIN is a transaction of its own, whole or not at all
        (https://www.postgresql.org/docs/15/tutorial-transactions.html: "every SQL statement is executed within a
        transaction ... a group of statements surrounded by BEGIN and COMMIT"). An id already taken fails the whole
        statement (nothing kept) and is tried again with another."""
        async def create(connection: Connection) -> Record:
            for _ in range(3):
                try:
                    row = await connection.fetchrow(
                        CREATE_ORDER, _new_id(), tenant, order.idempotency_key, order.request_hash, order.affiliate_id,
                        order.status, order.commission_status, order.currency, order.created_month,
                        order.total_cents, order.commission_cents, json.dumps(order.lines), affiliate_ref,
                        secrets.token_hex(8))
                except asyncpg.UniqueViolationError as err:
                    if _constraint(err) == "orders_pkey":
                        continue
                    raise
                return _order(row)
            raise PostgresError("PostgreSQL create_order: three random order ids were all taken")

        return await self._call("create_order", create)

    async def order_by_key(self, tenant: str, idempotency_key: str) -> Record | None:
        row = await self._call("idempotency", lambda c: c.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE tenant = $1 AND idempotency_key = $2", tenant, idempotency_key))
        return None if row is None else _order(row)

    async def order(self, tenant: str, order_id: str) -> Record | None:
        row = await self._call("get_order", lambda c: c.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND tenant = $2", order_id, tenant))
        return None if row is None else _order(row)

    async def order_for_change(self, tenant: str, order_id: str) -> tuple[Record, str | None] | None:
        """The order and its affiliate's id if that affiliate exists (affiliate_ref's answer), in one query."""
        row = await self._call("get_order", lambda c: c.fetchrow(ORDER_FOR_CHANGE, order_id, tenant))
        return None if row is None else (_order(row), row["affiliate_ref"])

    async def transition(self, tenant: str, order: Record, from_status: str, to_status: str,
                         commission_status: str, affiliate_ref: str | None) -> Record:
        """One statement (TRANSITION), so one round trip and one transaction: see there."""
        row = await self._call("transition", lambda c: c.fetchrow(
            TRANSITION, order["id"], tenant, from_status, to_status, commission_status, affiliate_ref,
            secrets.token_hex(8)))
        if row is None:  # the order is no longer in that status: nothing written
            raise NotUnique(f"PostgreSQL transition: the order is no longer {from_status}")
        return _order(row)

    # -- summaries -------------------------------------------------------------------------------------------

    async def summary_version(self, tenant: str, affiliate_id: str) -> str | None:
        return await self._call("summary_version", lambda c: c.fetchval(
            "SELECT summary_version FROM affiliates WHERE tenant = $1 AND affiliate_id = $2", tenant, affiliate_id))

    async def summary_groups(self, tenant: str, affiliate_id: str, month: str
                             ) -> list[tuple[CommissionStatus, int, int]]:
        rows = await self._call("summary", lambda c: c.fetch(
            "SELECT commission_status, sum(commission_cents) AS cents, count(*) AS orders FROM orders "
            "WHERE tenant = $1 AND affiliate_id = $2 AND created_month = $3 GROUP BY commission_status",
            tenant, affiliate_id, month))
        try:
            return [(CommissionStatus(r["commission_status"]), int(r["cents"]), int(r["orders"])) for r in rows]
        except ValueError as err:
            raise PostgresError(f"PostgreSQL summary: {err}") from err


def _rules(row: Any) -> CommissionRules:
    cap = row["order_cap_cents"]
    # keys sorted, as PocketBase answers a json field (see _order)
    categories, products = json.loads(row["category_rates_bps"]), json.loads(row["product_rates_bps"])
    return CommissionRules(int(row["default_rate_bps"]), dict(sorted(categories.items())),
                           dict(sorted(products.items())), None if cap is None else int(cap))
