"""A real PostgreSQL for the tests (#26): Debian's binaries from /usr/lib/postgresql/<version>/bin, initdb and the
server run as the `postgres` system user when the tests run as root (initdb refuses root), data directory and unix
socket in a temporary directory, TCP on a free loopback port, torn down at the end (engine/localpg.py).

Use the fixtures `postgres` (the server, one per session) and `postgres_database` (a fresh database, its migrator
and engine roles, migrated by `engine.migrate.migrate`, the grants applied), or `LocalPostgres` directly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from engine.localpg import Database, LocalPostgres
from engine.migrate import migrate

__all__ = ["Database", "LocalPostgres", "migrated", "postgres", "postgres_database"]


def migrated(server: LocalPostgres) -> Database:
    """A new database with the engine's schema applied by its migrator and the engine role's grants."""
    database = server.database()
    asyncio.run(migrate(database.host, database.port, database.name, database.migrator, database.migrator_password,
                        database.engine, engine_password=database.engine_password))
    return database


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    server = LocalPostgres().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_database(postgres: LocalPostgres) -> Database:
    return migrated(postgres)
