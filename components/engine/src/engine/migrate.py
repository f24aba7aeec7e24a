"""`python -m engine migrate`: the engine's PostgreSQL schema, applied as its own step with its own account (#26).

Signs in as the schema's owner (POSTGRES_MIGRATOR_USER / POSTGRES_MIGRATOR_PASSWORD, same POSTGRES_HOST, _PORT,
_DB, _CA_CERT as the engine), applies each numbered file of engine/migrations not yet in `schema_migrations`, each
in one transaction with its row there, then (re)grants the engine's role (POSTGRES_USER) exactly what it uses
(`GRANTS`): SELECT and INSERT, UPDATE on the columns it changes, nothing on order_transitions but INSERT and
SELECT, no DELETE, no TRUNCATE, no DDL (it owns nothing). A session-level advisory lock serialises two runs.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.settings import local_host
from engine.storage.postgres import connect, migrations, tls_context

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
    """The engine's role, which this step grants (it never signs in as it)."""
    postgres_migrator_user: str
    postgres_migrator_password: str = Field(repr=False)
    postgres_ca_cert: str | None = Field(default=None, repr=False)


def _ident(name: str) -> str:
    """A role name as an SQL identifier (GRANT takes no bind parameter)."""
    return '"' + name.replace('"', '""') + '"'


async def migrate(host: str, port: int, database: str, migrator: str, password: str, engine_role: str,
                  ca_cert: str | None = None) -> list[int]:
    """Apply the missing migrations and the engine role's grants; the versions applied now."""
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
        if not await connection.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", engine_role):
            raise ValueError(f"no role {engine_role!r} (POSTGRES_USER) to grant: create the engine's login role first")
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
                                      settings.postgres_user, settings.postgres_ca_cert))
    except (ValueError, OSError, asyncpg.PostgresError) as err:
        print(f"python -m engine migrate: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    done = ", ".join(f"{n:04d}" for n in applied) or "none (the schema was current)"
    print(f"migrations applied: {done}; grants to {settings.postgres_user} renewed", flush=True)
    return 0
