"""What the engine's PostgreSQL role may do, and what only the migrator may (#26), on a real server: the schema is
applied by `python -m engine migrate` as its owner, which then grants the engine's role SELECT/INSERT, UPDATE on the
columns it changes, INSERT+SELECT on order_transitions, and nothing else; the trigger of 0002 refuses an order's
status change without its order_transitions row written by the same transaction. PostgreSQL answers a refused
privilege with SQLSTATE 42501 insufficient_privilege (https://www.postgresql.org/docs/15/errcodes-appendix.html)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from engine.domain.model import COMMISSION_FOR, TRANSITIONS, CommissionStatus, OrderStatus
from engine.migrate import migrate
from engine.storage.postgres import Connection

from tests.engine.postgres_server import Database, LocalPostgres


def _run(database: Database, as_engine: bool, work: Callable[[Connection], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        connection = await database.connect(as_engine)
        try:
            return await work(connection)
        finally:
            await connection.close()
    return asyncio.run(main())


async def _order(connection: Connection, order_id: str = "o1", tenant: str = "acme") -> None:
    await connection.execute(
        "INSERT INTO orders (id, tenant, idempotency_key, request_hash, status, commission_status, currency, "
        "created_month, total_cents, commission_cents, lines) VALUES ($1, $2, $1, 'h', 'created', 'pending', 'BRL', "
        "'2026-12', 1000, 100, '[]')", order_id, tenant)


REFUSED_TO_THE_ENGINE = {
    "DELETE an order": "DELETE FROM orders WHERE id = 'o1'",
    "UPDATE orders.total_cents": "UPDATE orders SET total_cents = 1 WHERE id = 'o1'",
    "UPDATE orders.tenant": "UPDATE orders SET tenant = 'bravo' WHERE id = 'o1'",
    "CREATE TABLE": "CREATE TABLE mine (x int)",
    "UPDATE order_transitions": "UPDATE order_transitions SET to_status = 'cancelled'",  # a move of the lifecycle
    "DELETE order_transitions": "DELETE FROM order_transitions",
    "TRUNCATE orders": "TRUNCATE orders",
    "DROP TABLE": "DROP TABLE products",
    "ALTER TABLE": "ALTER TABLE orders ADD COLUMN x int",
    "DISABLE TRIGGER": "ALTER TABLE orders DISABLE TRIGGER orders_status_transition",
    "DELETE schema_migrations": "DELETE FROM schema_migrations",
}


@pytest.mark.parametrize("what", REFUSED_TO_THE_ENGINE)
def test_the_engine_role_is_refused(postgres_database: Database, what: str) -> None:
    async def work(connection: Connection) -> None:
        await _order(connection)
        await connection.execute("INSERT INTO order_transitions (tenant, order_id, from_status, to_status) "
                                 "VALUES ('acme', 'o1', 'created', 'paid')")
        with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.exceptions.InvalidSchemaNameError)):
            await connection.execute(REFUSED_TO_THE_ENGINE[what])

    _run(postgres_database, True, work)


def test_the_migrator_can_what_the_engine_cannot(postgres_database: Database) -> None:
    async def work(connection: Connection) -> None:
        await _order(connection)
        await connection.execute("INSERT INTO order_transitions (tenant, order_id, from_status, to_status) "
                                 "VALUES ('acme', 'o1', 'created', 'paid')")
        for what in ("UPDATE orders.total_cents", "CREATE TABLE", "UPDATE order_transitions",
                     "DELETE order_transitions", "DELETE an order"):
            await connection.execute(REFUSED_TO_THE_ENGINE[what])
        assert await connection.fetchval("SELECT count(*) FROM orders") == 0

    _run(postgres_database, False, work)


def test_a_status_changes_only_with_its_transition_row_in_the_same_transaction(postgres_database: Database) -> None:
    refused = asyncpg.IntegrityConstraintViolationError

    async def work(connection: Connection) -> None:
        await _order(connection)
        with pytest.raises(refused, match="without its order_transitions row"):
            await connection.execute("UPDATE orders SET status = 'paid' WHERE id = 'o1'")
        # a row from an earlier transaction does not count: the history would say one change for two
        await connection.execute("INSERT INTO order_transitions (tenant, order_id, from_status, to_status) "
                                 "VALUES ('acme', 'o1', 'created', 'paid')")
        with pytest.raises(refused):
            await connection.execute("UPDATE orders SET status = 'paid' WHERE id = 'o1'")
        # nor one to another status
        await _order(connection, "o2")
        with pytest.raises(refused):
            async with connection.transaction():
                await connection.execute("INSERT INTO order_transitions (tenant, order_id, from_status, to_status) "
                                         "VALUES ('acme', 'o2', 'created', 'cancelled')")
                await connection.execute("UPDATE orders SET status = 'paid' WHERE id = 'o2'")
        # the engine's way: both in one transaction
        async with connection.transaction():
            await connection.execute("INSERT INTO order_transitions (tenant, order_id, from_status, to_status) "
                                     "VALUES ('acme', 'o2', 'created', 'paid')")
            await connection.execute("UPDATE orders SET status = 'paid', commission_status = 'approved', "
                                     "updated = now() WHERE id = 'o2'")
        assert await connection.fetchval("SELECT status FROM orders WHERE id = 'o2'") == "paid"
        # a change of the other columns it may update needs no row
        await connection.execute("UPDATE orders SET updated = now() WHERE id = 'o1'")

    for as_engine in (True, False):  # the migrator too: the history is the schema's rule, not a grant
        _run(postgres_database, as_engine, work)
        _run(postgres_database, False, lambda c: c.execute("DELETE FROM order_transitions; DELETE FROM orders"))


def test_migrate_is_idempotent_and_takes_back_a_stray_grant(postgres_database: Database) -> None:
    db = postgres_database
    _run(db, False, lambda c: c.execute(f"GRANT DELETE, TRUNCATE ON orders TO {db.engine}"))
    assert asyncio.run(migrate(db.host, db.port, db.name, db.migrator, db.migrator_password, db.engine)) == []

    async def work(connection: Connection) -> None:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("DELETE FROM orders")

    _run(db, True, work)


def test_python_m_engine_migrate(postgres_database: Database) -> None:
    """The command the engine's image runs: the applied versions (none: the fixture migrated), or the variable it
    lacks, named, without a traceback."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")}
    done = subprocess.run([sys.executable, "-m", "engine", "migrate"], capture_output=True, text=True, timeout=60,
                          env={**clean, **postgres_database.migrate_env()})
    assert done.returncode == 0, done.stderr
    assert "migrations applied: none" in done.stdout and postgres_database.engine in done.stdout
    assert postgres_database.migrator_password not in done.stdout + done.stderr
    missing = {k: v for k, v in postgres_database.migrate_env().items() if k != "POSTGRES_MIGRATOR_PASSWORD"}
    failed = subprocess.run([sys.executable, "-m", "engine", "migrate"], capture_output=True, text=True, timeout=60,
                            env={**clean, **missing})
    assert failed.returncode == 2 and "postgres_migrator_password" in failed.stderr.lower(), failed.stderr
    assert "Traceback" not in failed.stderr


# --- The engine's role as Cloud SQL would create it (#26 item 1: "the engine's account holds only what it uses") ---
# "All users you create using Cloud SQL are created as part of the cloudsqlsuperuser role, and have the same set of
# attributes as the postgres user: CREATEROLE, CREATEDB, and LOGIN" (https://cloud.google.com/sql/docs/postgres/users,
# "Other PostgreSQL users"). On PostgreSQL 15 "a role with CREATEROLE privilege can alter and drop other roles, too, as
# well as grant or revoke membership in them" but superusers (https://www.postgresql.org/docs/15/role-attributes.html):
# such an engine role grants itself the migrator, the schema's owner, and the grants of `engine migrate` are moot.
# PostgreSQL 16 narrows CREATEROLE to roles held WITH ADMIN OPTION (commit cf5eb37, "Restrict the privileges of
# CREATEROLE users"; https://www.postgresql.org/docs/16/role-attributes.html), yet still lets it CREATE ROLE, and
# CREATEDB still creates databases: so `engine migrate` strips both whatever the server's version.

def _like_cloud_sql(server: LocalPostgres, database: Database) -> None:
    """The engine's role as `gcp.sql.User` leaves it: CREATEROLE CREATEDB, a member of cloudsqlsuperuser (as the
    migrator, Cloud SQL's other user, is)."""
    server.superuser("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cloudsqlsuperuser') THEN "
                     "CREATE ROLE cloudsqlsuperuser NOLOGIN CREATEROLE CREATEDB; END IF; END $$",
                     f"ALTER ROLE {database.engine} CREATEROLE CREATEDB",
                     f"ALTER ROLE {database.migrator} CREATEROLE CREATEDB",
                     f"GRANT cloudsqlsuperuser TO {database.engine}, {database.migrator}")


def _escalations(database: Database) -> dict[str, str]:
    stray = secrets.token_hex(4)
    return {  # in this order: a GRANT that succeeds makes the later ones succeed through inheritance
        "GRANT the migrator to itself": f"GRANT {database.migrator} TO {database.engine}",
        "SET ROLE the migrator": f"SET ROLE {database.migrator}",
        "SET ROLE cloudsqlsuperuser": "SET ROLE cloudsqlsuperuser",
        "take the migrator's password": f"ALTER ROLE {database.migrator} PASSWORD 'stolen-{stray}'",
        "CREATE ROLE": f"CREATE ROLE stray_{stray} LOGIN PASSWORD 'x'",
        "CREATE DATABASE": f"CREATE DATABASE stray_{stray}",
        "CREATE TABLE": "CREATE TABLE mine (x int)",
        "DROP TABLE": "DROP TABLE products",
        "DELETE an order": "DELETE FROM orders",
        "DELETE order_transitions": "DELETE FROM order_transitions",
    }


def _went_through(database: Database) -> list[str]:
    """What of `_escalations` the engine's role did: each attempt on its own, the role reset after each."""
    async def work(connection: Connection) -> list[str]:
        done: list[str] = []
        for what, statement in _escalations(database).items():
            try:
                await connection.execute(statement)
                done.append(what)
            except asyncpg.PostgresError:
                pass
            await connection.execute("RESET ROLE")
        return done

    return _run(database, True, work)


def _python_m_engine_migrate(database: Database, **extra: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")}
    return subprocess.run([sys.executable, "-m", "engine", "migrate"], capture_output=True, text=True, timeout=60,
                          env={**clean, **database.migrate_env(), **extra})


def test_migrate_strips_an_engine_role_cloud_sql_created(postgres: LocalPostgres) -> None:
    database = postgres.database()
    _like_cloud_sql(postgres, database)
    done = _python_m_engine_migrate(database)
    assert done.returncode == 0, done.stderr
    assert _went_through(database) == []
    assert database.engine_password not in done.stdout + done.stderr

    async def attributes(connection: Connection) -> Any:
        return await connection.fetchrow(
            "SELECT rolcreaterole, rolcreatedb, rolinherit, rolsuper, rolreplication, rolbypassrls, "
            "(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) AS memberships "
            "FROM pg_roles r WHERE rolname = $1", database.engine)

    assert dict(_run(database, False, attributes)) == {
        "rolcreaterole": False, "rolcreatedb": False, "rolinherit": False, "rolsuper": False,
        "rolreplication": False, "rolbypassrls": False, "memberships": 0}


def test_migrate_creates_the_engine_role_when_missing_and_sets_its_password(postgres: LocalPostgres) -> None:
    """The platform declares no engine user any more: the first `engine-migrate` creates it (NOCREATEROLE
    NOCREATEDB NOINHERIT, CONNECT on its database) with POSTGRES_ENGINE_PASSWORD; a later run with another password
    (a rotation) sets that one and the old one is refused."""
    database = postgres.database()
    postgres.superuser(f"REVOKE CONNECT ON DATABASE {database.name} FROM {database.engine}",
                       f"DROP ROLE {database.engine}")
    done = _python_m_engine_migrate(database)
    assert done.returncode == 0, done.stderr
    assert database.engine_password not in done.stdout + done.stderr
    _run(database, True, _order)  # it signs in with that password and does its work
    assert _went_through(database) == []
    rotated = dataclasses.replace(database, engine_password=secrets.token_hex(16))
    assert _python_m_engine_migrate(rotated).returncode == 0
    with pytest.raises(asyncpg.InvalidPasswordError):
        _run(database, True, _order)
    assert _run(rotated, True, lambda c: c.fetchval("SELECT count(*) FROM orders")) == 1


@pytest.mark.parametrize(("superuser_did", "kept"), [
    ("GRANT postgres TO {engine}", "membership in postgres"),  # a superuser's role: CREATEROLE cannot revoke it
    ("ALTER ROLE {engine} SUPERUSER", "SUPERUSER"),
    ("ALTER ROLE {engine} BYPASSRLS", "BYPASSRLS"),
])
def test_migrate_fails_naming_what_the_engine_role_keeps(postgres: LocalPostgres, superuser_did: str,
                                                         kept: str) -> None:
    """What the migrator cannot take back stops the step (exit 1), the role and what it keeps named: the grants are
    not renewed over a role that could undo them, and the engine is not rolled out (docs/runbooks/postgres.md)."""
    database = postgres.database()
    _like_cloud_sql(postgres, database)
    postgres.superuser(superuser_did.format(engine=database.engine))
    done = _python_m_engine_migrate(database)
    assert done.returncode == 1, done.stdout
    assert f"the engine's role '{database.engine}' (POSTGRES_USER) keeps" in done.stderr, done.stderr
    assert kept in done.stderr and "Traceback" not in done.stderr
    assert database.engine_password not in done.stdout + done.stderr
    assert "renewed" not in done.stdout


def test_migrate_refuses_the_migrator_as_the_engine_role(postgres_database: Database) -> None:
    done = _python_m_engine_migrate(postgres_database, POSTGRES_USER=postgres_database.migrator)
    assert done.returncode == 1 and "is the migrator" in done.stderr, done.stderr


# -- #26 outside audit: the history and the money columns cannot be forged by the engine's role -----------------
# The database keeps PostgreSQL's defaults for PUBLIC (CONNECT and TEMPORARY), as a database created through Cloud
# SQL's API does (engine/localpg.py Database): "PostgreSQL grants privileges on some types of objects to PUBLIC by
# default ... CONNECT and TEMPORARY (create temporary tables) privileges for databases"
# (https://www.postgresql.org/docs/15/ddl-priv.html).

_STATUS_FOR_SQL = ("INSERT INTO order_transitions (tenant, order_id, from_status, to_status) "
                   "VALUES ($1, $2, $3, $4)")


def test_the_engine_role_cannot_create_a_temporary_table(postgres_database: Database) -> None:
    """A temporary table `order_transitions` would come first in the session's search_path ("the current
    session's temporary-table schema ... is searched first", ddl-schemas.html#DDL-SCHEMAS-PATH)."""
    async def work(connection: Connection) -> None:
        assert not await connection.fetchval("SELECT has_database_privilege('public', current_database(), 'TEMP')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CREATE TEMP TABLE order_transitions (order_id text, from_status text, "
                                     "to_status text)")

    _run(postgres_database, True, work)


def test_a_temporary_order_transitions_does_not_satisfy_the_trigger(postgres_database: Database) -> None:
    """Whoever may create a temporary table (the migrator does, for migrate-db's staging tables): the trigger reads
    public.order_transitions, not the session's shadow."""
    async def work(connection: Connection) -> None:
        await _order(connection)
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="without its order_transitions row"):
            async with connection.transaction():
                await connection.execute("CREATE TEMP TABLE order_transitions (tenant text, order_id text, "
                                         "from_status text, to_status text) ON COMMIT DROP")
                await connection.execute("INSERT INTO order_transitions VALUES ('acme', 'o1', 'created', 'paid')")
                await connection.execute("UPDATE orders SET status = 'paid', commission_status = 'approved' "
                                         "WHERE id = 'o1'")
        assert await connection.fetchval("SELECT status FROM orders WHERE id = 'o1'") == "created"

    _run(postgres_database, False, work)


@pytest.mark.parametrize("status", [s.value for s in OrderStatus if s is not OrderStatus.CREATED])
def test_an_order_is_inserted_only_as_created(postgres_database: Database, status: str) -> None:
    async def work(connection: Connection) -> None:
        with pytest.raises(asyncpg.PostgresError, match="inserted as created"):
            await connection.execute(
                "INSERT INTO orders (id, tenant, idempotency_key, request_hash, status, commission_status, currency, "
                "created_month, total_cents, commission_cents, lines) VALUES ('o9', 'acme', 'k', 'h', $1, $2, 'BRL', "
                "'2020-01', 100, 10, '[]')", status, COMMISSION_FOR[OrderStatus(status)].value)

    for as_engine in (True, False):
        _run(postgres_database, as_engine, work)


@pytest.mark.parametrize("commission", [c.value for c in CommissionStatus if c is not CommissionStatus.PENDING])
def test_a_new_order_has_its_commission_pending(postgres_database: Database, commission: str) -> None:
    async def work(connection: Connection) -> None:
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO orders (id, tenant, idempotency_key, request_hash, status, commission_status, currency, "
                "created_month, total_cents, commission_cents, lines) VALUES ('o9', 'acme', 'k', 'h', 'created', $1, "
                "'BRL', '2020-01', 100, 10, '[]')", commission)

    _run(postgres_database, True, work)


@pytest.mark.parametrize("column", ["created", "updated"])
def test_the_engine_role_cannot_choose_an_order_s_timestamps(postgres_database: Database, column: str) -> None:
    async def work(connection: Connection) -> None:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(
                f"INSERT INTO orders (id, tenant, idempotency_key, request_hash, status, commission_status, currency, "
                f"created_month, total_cents, commission_cents, lines, {column}) VALUES ('o9', 'acme', 'k', 'h', "
                f"'created', 'pending', 'BRL', '2020-01', 100, 10, '[]', '2020-01-01')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("INSERT INTO order_transitions (tenant, order_id, from_status, to_status, created) "
                                     "VALUES ('acme', 'o1', 'created', 'paid', '2020-01-01')")

    _run(postgres_database, True, work)


def test_commission_status_changes_only_with_its_status(postgres_database: Database) -> None:
    async def work(connection: Connection) -> None:
        await _order(connection)
        for commission in ("approved", "reversed", "paid_out"):
            with pytest.raises(asyncpg.CheckViolationError):
                await connection.execute("UPDATE orders SET commission_status = $1 WHERE id = 'o1'", commission)
        # along a transition, only to the commission the domain gives the new status
        with pytest.raises(asyncpg.CheckViolationError):
            async with connection.transaction():
                await connection.execute(_STATUS_FOR_SQL, "acme", "o1", "created", "paid")
                await connection.execute("UPDATE orders SET status = 'paid', commission_status = 'reversed' "
                                         "WHERE id = 'o1'")
        async with connection.transaction():
            await connection.execute(_STATUS_FOR_SQL, "acme", "o1", "created", "paid")
            await connection.execute("UPDATE orders SET status = 'paid', commission_status = 'approved' "
                                     "WHERE id = 'o1'")
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute("UPDATE orders SET commission_status = 'pending' WHERE id = 'o1'")
        assert await connection.fetchval("SELECT commission_status FROM orders WHERE id = 'o1'") == "approved"

    _run(postgres_database, True, work)


@pytest.mark.parametrize("status", list(OrderStatus))
def test_the_schema_s_commission_per_status_is_the_domain_s(postgres_database: Database, status: OrderStatus) -> None:
    """The rule in SQL against domain.model COMMISSION_FOR and TRANSITIONS: each status reached along the lifecycle
    takes exactly its commission, no other."""
    path = {OrderStatus.CREATED: [], OrderStatus.PAID: ["pay"], OrderStatus.CANCELLED: ["cancel"],
            OrderStatus.REFUNDED: ["pay", "refund"]}[status]

    async def work(connection: Connection) -> None:
        for other in CommissionStatus:
            oid = f"o{other.value}"
            await _order(connection, oid)
            async with connection.transaction():
                for action in path:
                    old, new = TRANSITIONS[action]
                    await connection.execute(_STATUS_FOR_SQL, "acme", oid, old.value, new.value)
                    await connection.execute("UPDATE orders SET status = $2, commission_status = $3 WHERE id = $1",
                                             oid, new.value, COMMISSION_FOR[new].value)
            if other is COMMISSION_FOR[status]:
                continue
            with pytest.raises(asyncpg.CheckViolationError):
                await connection.execute("UPDATE orders SET commission_status = $2 WHERE id = $1", oid, other.value)

    _run(postgres_database, True, work)


def test_a_transition_row_carries_its_order_s_tenant(postgres_database: Database) -> None:
    async def work(connection: Connection) -> None:
        await _order(connection, "o1", "acme")
        await _order(connection, "o2", "bravo")
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with connection.transaction():
                await connection.execute(_STATUS_FOR_SQL, "bravo", "o1", "created", "paid")
                await connection.execute("UPDATE orders SET status = 'paid', commission_status = 'approved' "
                                         "WHERE id = 'o1'")
        assert await connection.fetchval("SELECT count(*) FROM order_transitions") == 0

    _run(postgres_database, True, work)


@pytest.mark.parametrize(("old", "new"), [(a.value, b.value) for a in OrderStatus for b in OrderStatus
                                          if a is not b and (a, b) not in TRANSITIONS.values()])
def test_a_transition_row_follows_the_lifecycle(postgres_database: Database, old: str, new: str) -> None:
    """Only domain.model TRANSITIONS' moves: a refunded order does not go back to created."""
    async def work(connection: Connection) -> None:
        await _order(connection)
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(_STATUS_FOR_SQL, "acme", "o1", old, new)

    _run(postgres_database, True, work)
