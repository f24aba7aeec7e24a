"""`python -m engine migrate`: the engine's PostgreSQL schema, applied as its own step with its own account (#26).

Signs in as the schema's owner (POSTGRES_MIGRATOR_USER / POSTGRES_MIGRATOR_PASSWORD, same POSTGRES_HOST, _PORT,
_DB, _CA_CERT as the engine), applies each numbered file of engine/migrations not yet in `schema_migrations`, each
in one transaction with its row there, then (re)grants the engine's role (POSTGRES_USER) exactly what it uses
(`GRANTS`): SELECT and INSERT, UPDATE on the columns it changes, nothing on order_transitions but INSERT and
SELECT, no DELETE, no TRUNCATE, no DDL (it owns nothing). A session-level advisory lock serialises two runs.

The engine's role itself is this step's too (`engine_role`): created by the migrator if missing, with the password
POSTGRES_ENGINE_PASSWORD, and on every run stripped of what Cloud SQL gives the users its API creates ("All users you
create using Cloud SQL are created as part of the cloudsqlsuperuser role, and have the same set of attributes as the
postgres user: CREATEROLE, CREATEDB, and LOGIN", https://cloud.google.com/sql/docs/postgres/users): on PostgreSQL 15
"a role with CREATEROLE privilege can alter and drop other roles, too, as well as grant or revoke membership in them"
(https://www.postgresql.org/docs/15/role-attributes.html), so such an engine role could GRANT itself the migrator and
with it DDL and DELETE, whatever the grants say. PostgreSQL 16 limits that to roles held WITH ADMIN OPTION (which the
creator of a role gets: https://www.postgresql.org/docs/16/role-attributes.html, commit cf5eb37 "Restrict the
privileges of CREATEROLE users") but CREATEROLE still creates roles and CREATEDB databases. So: NOCREATEROLE NOCREATEDB
NOINHERIT, every role membership it holds revoked, and if any of that is refused (or it is SUPERUSER, REPLICATION or
BYPASSRLS, which only a superuser may change), the step fails naming the role and what it keeps; it never goes on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import sys

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.settings import local_host
from engine.storage.postgres import Connection, connect, migrations, tls_context

MIGRATION_LOCK = 26_0001
"""pg_advisory_lock's key for a migration run (any constant the engine uses for nothing else)."""

TABLES = ("products", "catalog_versions", "affiliates", "commission_rules", "orders", "order_transitions")
GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON schema_migrations TO {role}",
    "GRANT SELECT, INSERT ON products, catalog_versions, affiliates, commission_rules TO {role}",
    # orders and their history: SELECT, and INSERT of the columns the engine writes (storage/postgres.py); created
    # and updated take their defaults (now()): "other columns will therefore receive default values"
    # (https://www.postgresql.org/docs/15/sql-grant.html)
    "GRANT SELECT ON orders, order_transitions TO {role}",
    "GRANT INSERT (id, tenant, idempotency_key, request_hash, affiliate_id, status, commission_status, currency, "
    "created_month, total_cents, commission_cents, lines) ON orders TO {role}",
    "GRANT INSERT (tenant, order_id, from_status, to_status) ON order_transitions TO {role}",
    # services.Engine's admin writes (storage/postgres.py upsert_*), a status change, a summary version:
    "GRANT UPDATE (name, category, price_cents, active) ON products TO {role}",
    "GRANT UPDATE (catalog_version) ON catalog_versions TO {role}",
    "GRANT UPDATE (name, summary_version) ON affiliates TO {role}",
    "GRANT UPDATE (default_rate_bps, category_rates_bps, product_rates_bps, order_cap_cents) ON commission_rules "
    "TO {role}",
    "GRANT UPDATE (status, commission_status, updated) ON orders TO {role}",
)
"""What the engine's role holds, after `REVOKE ALL` on every table of the schema: nothing else."""


class MigrateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, frozen=True)

    postgres_host: str
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    postgres_db: str
    postgres_user: str
    """The engine's role, which this step creates if missing, strips and grants (it never signs in as it)."""
    postgres_engine_password: str = Field(repr=False)
    """The engine's role's password (the engine's POSTGRES_PASSWORD), set by this step on every run; never printed."""
    postgres_migrator_user: str
    postgres_migrator_password: str = Field(repr=False)
    postgres_ca_cert: str | None = Field(default=None, repr=False)


def _ident(name: str) -> str:
    """A role name as an SQL identifier (GRANT takes no bind parameter)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """A string literal (ALTER ROLE ... PASSWORD takes no bind parameter)."""
    return "'" + value.replace("'", "''") + "'"


SCRAM_ITERATIONS = 4096
"""PostgreSQL's own default (scram_iterations, https://www.postgresql.org/docs/16/runtime-config-connection.html)."""


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677; the format of pg_authid.rolpassword,
    https://www.postgresql.org/docs/15/catalog-pg-authid.html): sent instead of the password, so the password itself
    is never in a statement the server could log ("the password will be transmitted to the server in cleartext, and
    it might also be logged", https://www.postgresql.org/docs/15/sql-createrole.html; psql's \\password does the same).
    ASCII only: PostgreSQL SASLprep-normalises other passwords, which this does not reproduce."""
    if not password or not password.isascii() or not password.isprintable():
        raise ValueError("POSTGRES_ENGINE_PASSWORD: printable ASCII expected (the platform generates letters and "
                         "digits)")
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"


ATTRIBUTES = (("rolsuper", "SUPERUSER"), ("rolcreaterole", "CREATEROLE"), ("rolcreatedb", "CREATEDB"),
              ("rolreplication", "REPLICATION"), ("rolbypassrls", "BYPASSRLS"), ("rolinherit", "INHERIT"))
"""pg_roles columns the engine's role must have false, and the attribute each names."""


async def _what_it_keeps(connection: Connection, engine_role: str) -> list[str]:
    row = await connection.fetchrow(
        f"SELECT {', '.join(column for column, _ in ATTRIBUTES)}, ARRAY(SELECT g.rolname::text FROM pg_auth_members m "
        "JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS memberships "
        "FROM pg_roles r WHERE r.rolname = $1", engine_role)
    assert row is not None
    return [*(name for column, name in ATTRIBUTES if row[column]),
            *(f"membership in {group}" for group in row["memberships"])]


async def _engine_role(connection: Connection, migrator: str, engine_role: str,
                       engine_password: str | None) -> None:
    """Create the engine's role if missing, else strip it (module doc); fail naming what it keeps."""
    if engine_role == migrator:
        raise ValueError(f"POSTGRES_USER={engine_role!r} is the migrator (POSTGRES_MIGRATOR_USER): the engine needs a "
                         "role of its own")
    role = _ident(engine_role)
    password = "" if engine_password is None else f" PASSWORD {_literal(scram_verifier(engine_password))}"
    refused: list[str] = []
    if not await connection.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", engine_role):
        if engine_password is None:
            raise ValueError(f"no role {engine_role!r} (POSTGRES_USER) and no POSTGRES_ENGINE_PASSWORD to create it")
        await connection.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOINHERIT "
                                 f"NOREPLICATION NOBYPASSRLS{password}")
    else:
        # NOREPLICATION / NOBYPASSRLS are not said: PostgreSQL refuses them to a non-superuser even when they change
        # nothing ("must be superuser to change bypassrls attribute"); they are checked below instead.
        try:
            await connection.execute(f"ALTER ROLE {role} NOCREATEROLE NOCREATEDB NOINHERIT{password}")
        except asyncpg.PostgresError as err:
            refused.append(f"ALTER ROLE ({type(err).__name__}: {err})")
        rows = await connection.fetch(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1 ORDER BY 1", engine_role)
        for row in rows:
            try:  # PostgreSQL 16 only warns when the grant was another role's: what is left is read back below
                await connection.execute(f"REVOKE {_ident(str(row['rolname']))} FROM {role} CASCADE")
            except asyncpg.PostgresError as err:
                refused.append(f"REVOKE {row['rolname']} ({type(err).__name__}: {err})")
    kept = await _what_it_keeps(connection, engine_role)
    if kept or refused:
        raise ValueError(
            f"the engine's role {engine_role!r} (POSTGRES_USER) keeps {', '.join(kept) or 'its old password'}"
            + (f"; refused to the migrator {migrator!r}: {'; '.join(refused)}" if refused else "")
            + ". The migrator needs CREATEROLE (and, on PostgreSQL 16+, ADMIN OPTION on the role: let this step "
            "create it); a superuser must take back the rest (docs/runbooks/postgres.md)")
    database = await connection.fetchval("SELECT current_database()")
    if not await connection.fetchval("SELECT has_database_privilege($1, current_database(), 'CONNECT')", engine_role):
        await connection.execute(f"GRANT CONNECT ON DATABASE {_ident(str(database))} TO {role}")


async def migrate(host: str, port: int, database: str, migrator: str, password: str, engine_role: str,
                  ca_cert: str | None = None, *, engine_password: str | None = None) -> list[int]:
    """Apply the missing migrations, create or strip the engine's role (with `engine_password`; None: the role
    exists and keeps its password) and (re)grant it; the versions applied now."""
    if not (ca_cert or "").strip() and not local_host(host):
        raise ValueError(f"POSTGRES_HOST={host!r} over plain TCP: set POSTGRES_CA_CERT (TLS, verify-ca)")
    connection = await connect(host=host, port=port, database=database, user=migrator, password=password,
                               ssl=tls_context(ca_cert))
    applied: list[int] = []
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                                 "name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())")
        done = {int(row["version"]) for row in await connection.fetch("SELECT version FROM schema_migrations")}
        for number, path in migrations():
            if number in done:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text())
                await connection.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                         number, path.name)
            applied.append(number)
        await _engine_role(connection, migrator, engine_role, engine_password)
        role = _ident(engine_role)
        async with connection.transaction():
            await connection.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            await connection.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
            for grant in GRANTS:
                await connection.execute(grant.format(role=role))
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await connection.close()
    return applied


def main() -> int:
    try:
        settings = MigrateSettings()  # pyright: ignore[reportCallIssue]
    except Exception as err:  # a missing variable: name it, no traceback
        print(f"python -m engine migrate: {err}", file=sys.stderr)
        return 2
    try:
        applied = asyncio.run(migrate(settings.postgres_host, settings.postgres_port, settings.postgres_db,
                                      settings.postgres_migrator_user, settings.postgres_migrator_password,
                                      settings.postgres_user, settings.postgres_ca_cert,
                                      engine_password=settings.postgres_engine_password))
    except (ValueError, OSError, asyncpg.PostgresError) as err:
        print(f"python -m engine migrate: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    done = ", ".join(f"{n:04d}" for n in applied) or "none (the schema was current)"
    print(f"migrations applied: {done}; role {settings.postgres_user} stripped, its password set, its grants "
          "renewed", flush=True)
    return 0
