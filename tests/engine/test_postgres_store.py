"""The PostgreSQL store's settings and readiness (#26), against a real PostgreSQL (tests/engine/postgres_server.py).

- Plain TCP only to a loopback host or a unix socket: the engine's password and the orders never cross a network in
  clear (PG.md: POSTGRES_CA_CERT unset is for local development).
- With POSTGRES_CA_CERT, TLS verified against that CA alone (libpq's sslmode=verify-ca): a server whose certificate
  another CA signed is refused.
- /readyz's reasons, in PocketBase's style: PostgreSQL down, no schema, a schema behind the engine's.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import astuple
from pathlib import Path

import httpx
import pytest
import trustme
from engine.dev import local_stack, wait_http
from engine.migrate import migrate
from engine.settings import Settings
from engine.storage import NewOrder, StoreUnavailable, WritesPaused
from engine.storage.postgres import PostgresStore, migrations, schema_version
from pydantic import ValidationError

from tests.engine.conftest import engine_env, make_tenant, readyz
from tests.engine.postgres_server import Database, LocalPostgres

BASE = {"STORAGE": "postgres", "POSTGRES_DB": "engine", "POSTGRES_USER": "engine", "POSTGRES_PASSWORD": "s3cr3t-pw",
        "REDIS_URL": "redis://127.0.0.1:6379/0", "TENANTS_JSON": '{"version": 1, "tenants": []}'}


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in [n for n in os.environ if n.startswith(("POSTGRES_", "POCKETBASE_", "STORAGE"))]:
        monkeypatch.delenv(name)
    for name, value in {**BASE, **env}.items():
        monkeypatch.setenv(name, value)
    return Settings()  # pyright: ignore[reportCallIssue]


def test_plain_tcp_to_another_host_is_refused_with_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(monkeypatch, POSTGRES_HOST="10.20.0.3")
    assert "POSTGRES_HOST='10.20.0.3'" in str(refused.value) and "POSTGRES_CA_CERT" in str(refused.value)
    assert "s3cr3t-pw" not in str(refused.value)
    with pytest.raises(ValueError, match="POSTGRES_CA_CERT"):
        PostgresStore("db.internal", 5432, "engine", "engine", "pw")


def test_loopback_a_socket_or_a_ca_are_accepted_and_pocketbase_is_not_required(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "/run/postgresql"):
        assert _settings(monkeypatch, POSTGRES_HOST=host).postgres_host == host
    ca = trustme.CA().cert_pem.bytes().decode()
    assert _settings(monkeypatch, POSTGRES_HOST="10.20.0.3", POSTGRES_CA_CERT=ca).storage == "postgres"


def test_each_store_names_the_settings_it_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="STORAGE=postgres needs POSTGRES_HOST"):
        _settings(monkeypatch)
    with pytest.raises(ValidationError, match="STORAGE=pocketbase needs POCKETBASE_URL, POCKETBASE_EMAIL"):
        _settings(monkeypatch, STORAGE="pocketbase")


def _unready(database: Database, **overrides: object) -> str | None:
    async def ask() -> str | None:
        store = PostgresStore(database.host, int(str(overrides.get("port", database.port))), database.name,
                              database.engine, database.engine_password, timeout_s=2.0)
        try:
            return await store.unready()
        finally:
            await store.close()
    return asyncio.run(ask())


def test_readiness_names_a_missing_or_older_schema_and_a_server_down(postgres: LocalPostgres) -> None:
    database = postgres.database()
    assert "has no schema_migrations" in (_unready(database) or "")
    # 0001 only, as a migration step of an older engine left it
    first = migrations()[0][1].read_text()
    postgres.superuser(f"SET ROLE {database.migrator}", first,
                       "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL)",
                       "INSERT INTO schema_migrations VALUES (1, '0001_initial.sql')",
                       f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {database.engine}", database=database.name)
    behind = _unready(database) or ""
    assert f"schema is at version 0001, this engine needs {schema_version():04d}" in behind, behind
    assert "python -m engine migrate" in behind
    refused = _unready(database, port=1) or ""
    assert refused.startswith("PostgreSQL schema:") and "Error" in refused, refused


def test_readyz_reasons_when_postgres_stops_and_ready_again_when_it_is_back(tmp_path: Path) -> None:
    entry, keys = make_tenant("acme")
    with local_stack(tmp_path, [entry], env=engine_env(), storage="postgres") as stack:
        ready = readyz(httpx.Client(base_url=stack.url))
        assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": True, "redis": True}
        assert stack.postgres is not None
        stack.postgres.stop()
        down = readyz(httpx.Client(base_url=stack.url))
        assert down.status_code == 503
        assert down.json()["checks"] == {"postgres": False, "redis": True}
        assert down.json()["reasons"]["postgres"].startswith("PostgreSQL readiness:"), down.json()
        headers = {**keys.headers(admin=True), "X-Origin-Auth": engine_env()["ORIGIN_AUTH_SECRET"]}
        product = httpx.put(f"{stack.url}/v1/products/x", headers=headers, json={"name": "X", "price_cents": 10},
                            timeout=15)
        assert product.status_code == 503 and product.json()["title"] == "Storage unavailable"
        # PostgreSQL back (the same data and port): the pool's dead connections are replaced, ready without a restart
        stack.postgres.start()
        wait_http(f"{stack.url}/readyz", timeout_s=30)
        product = httpx.put(f"{stack.url}/v1/products/x", headers=headers, json={"name": "X", "price_cents": 10},
                            timeout=15)
        assert product.status_code == 200, product.text


def test_a_read_only_database_is_writes_paused_and_reads_still_serve(postgres_database: Database) -> None:
    """A cut-over makes the database read-only: the store says WritesPaused (a StoreUnavailable: 503 by default,
    which the API may answer as writes_paused), not a generic failure, and reads go on."""
    db = postgres_database
    order = NewOrder("key-0000001", "h", None, "created", "pending", "BRL", "2026-12", 10, 1, [])

    async def scenario(stage: str) -> object:
        store = PostgresStore(db.host, db.port, db.name, db.engine, db.engine_password)
        try:
            if stage == "write":
                return await store.create_order("acme", order, None)
            with pytest.raises(WritesPaused):
                await store.create_order("acme", NewOrder("key-0000002", *astuple(order)[1:]), None)
            with pytest.raises(WritesPaused):
                await store.upsert_affiliate("acme", "ana", "Ana")
            return await store.order_by_key("acme", "key-0000001")
        finally:
            await store.close()

    written = asyncio.run(scenario("write"))
    postgres_sql = f"ALTER DATABASE {db.name} SET default_transaction_read_only = on"

    async def pause() -> None:
        connection = await db.connect(as_engine=False)
        try:
            await connection.execute(postgres_sql)
        finally:
            await connection.close()

    asyncio.run(pause())
    assert asyncio.run(scenario("read")) == written
    assert issubclass(WritesPaused, StoreUnavailable)


def test_tls_is_verified_against_the_given_ca_alone(tmp_path: Path) -> None:
    """verify-ca: with the server's CA the engine connects over TLS (the host name, an address here, is not checked,
    as libpq's verify-ca); with another CA's certificate (a server impersonated) it is refused, and not ready."""
    ours, other = trustme.CA(), trustme.CA()
    server = ours.issue_cert("db.internal")  # not 127.0.0.1: verify-ca checks the chain, not the name
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    tls = LocalPostgres(tls=(cert, key)).start()
    try:
        database = tls.database()
        asyncio.run(migrate(database.host, database.port, database.name, database.migrator,
                            database.migrator_password, database.engine, ca_cert=ours.cert_pem.bytes().decode()))

        async def ask(ca: trustme.CA) -> tuple[str | None, bool]:
            store = PostgresStore(database.host, database.port, database.name, database.engine,
                                  database.engine_password, ca_cert=ca.cert_pem.bytes().decode(), timeout_s=3.0)
            try:
                problem = await store.unready()
                encrypted = problem is None and await store.encrypted()
                return problem, encrypted
            finally:
                await store.close()

        assert asyncio.run(ask(ours)) == (None, True)
        refused, _ = asyncio.run(ask(other))
        assert refused is not None and "CERTIFICATE_VERIFY_FAILED" in refused, refused
    finally:
        tls.close()
