"""A real PostgreSQL on this machine for the migration drill and its tests (#26): Debian's server binaries
(`/usr/lib/postgresql/<version>/bin`), a data directory and a unix socket in a fresh temporary directory, TCP on a
free loopback port, scram-sha-256 passwords over TCP, torn down at the end.

Run as root (the tests, CI), every PostgreSQL command runs as the `postgres` system user: "initdb: error: cannot be
run as root" (https://www.postgresql.org/docs/15/app-initdb.html: "initdb must be run as the user that will own the
server process"). Two accounts, as the platform has them (PG.md): the schema's owner, which applies the numbered
files of the engine's migrations and is the account `migrate-db` writes as, and the engine's, which holds only the
grants the migration step gives it. When helper `pgport`'s own test server lands, this stays the drill's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.dev import free_port

MIGRATIONS = Path(__file__).resolve().parents[2] / "components" / "engine" / "src" / "engine" / "migrations"


def server_bin() -> Path:
    """The newest installed PostgreSQL's server binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server: apt-get install postgresql (Debian puts it in "
                           "/usr/lib/postgresql/<version>/bin)")
    return found[-1].parent


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    database: str
    migrator_user: str
    migrator_password: str
    engine_user: str
    engine_password: str

    def dsn(self, *, engine: bool = False) -> str:
        user, password = ((self.engine_user, self.engine_password) if engine
                          else (self.migrator_user, self.migrator_password))
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{self.database}"

    def engine_env(self) -> dict[str, str]:
        """The engine's settings for this server (PG.md): STORAGE=postgres and its own account."""
        return {"STORAGE": "postgres", "POSTGRES_HOST": self.host, "POSTGRES_PORT": str(self.port),
                "POSTGRES_DB": self.database, "POSTGRES_USER": self.engine_user,
                "POSTGRES_PASSWORD": self.engine_password, "POSTGRES_MIGRATOR_USER": self.migrator_user,
                "POSTGRES_MIGRATOR_PASSWORD": self.migrator_password, "POSTGRES_ENGINE_PASSWORD": self.engine_password}


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def postgres_server(database: str = "engine") -> Generator[Postgres]:
    """A started PostgreSQL with an empty `database` owned by the migrator account; stopped and removed after."""
    binaries = server_bin()
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    superuser_password = secrets.token_hex(16)
    pwfile = root / "pw"
    pwfile.write_text(superuser_password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        subprocess.run(_as_postgres([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile",
                                     str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256",
                                     "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True)
        subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                                     "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                                           "-c synchronous_commit=off -c full_page_writes=off",
                                     "start"]), check=True, capture_output=True)
        started = True
        server = Postgres("127.0.0.1", port, database, "engine_migrator", secrets.token_hex(16),
                          "engine", secrets.token_hex(16))
        # The migrator holds CREATEROLE and creates the engine's role, as on Cloud SQL where `engine migrate` does
        # (engine/migrate.py): it then holds ADMIN OPTION on it, which PostgreSQL 16+ asks to alter it.
        script = (f"CREATE ROLE {server.migrator_user} LOGIN CREATEROLE "
                  f"PASSWORD {_sql_literal(server.migrator_password)};\n"
                  f"SET ROLE {server.migrator_user};\n"
                  f"CREATE ROLE {server.engine_user} LOGIN NOINHERIT PASSWORD {_sql_literal(server.engine_password)};\n"
                  "RESET ROLE;\n"
                  # PUBLIC keeps PostgreSQL's default CONNECT and TEMPORARY, as on a database Cloud SQL's API creates
                  # (https://www.postgresql.org/docs/15/ddl-priv.html); the migrations take TEMPORARY back (0003).
                  f"CREATE DATABASE {database} OWNER {server.migrator_user};\n"
                  f"GRANT CONNECT ON DATABASE {database} TO {server.engine_user};\n")
        subprocess.run(_as_postgres([str(binaries / "psql"), "-h", str(sockets), "-p", str(port), "-U", "postgres",
                                     "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]),
                       input=script.encode(), check=True, capture_output=True)
        yield server
    finally:
        if started:
            subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


ENGINE_GRANTS = """
GRANT USAGE ON SCHEMA public TO {engine};
GRANT SELECT, INSERT ON products, catalog_versions, affiliates, commission_rules TO {engine};
GRANT SELECT ON orders, order_transitions TO {engine};
GRANT INSERT (id, tenant, idempotency_key, request_hash, affiliate_id, status, commission_status, currency,
    created_month, total_cents, commission_cents, lines) ON orders TO {engine};
GRANT INSERT (tenant, order_id, from_status, to_status) ON order_transitions TO {engine};
GRANT UPDATE (name, category, price_cents, active) ON products TO {engine};
GRANT UPDATE (catalog_version) ON catalog_versions TO {engine};
GRANT UPDATE (name, summary_version) ON affiliates TO {engine};
GRANT UPDATE (default_rate_bps, category_rates_bps, product_rates_bps, order_cap_cents) ON commission_rules
    TO {engine};
GRANT UPDATE (status, commission_status, updated) ON orders TO {engine};
"""
"""What the engine's account holds when the engine has no migration step of its own yet (PG.md: SELECT/INSERT,
UPDATE of the columns it changes, no DELETE, no DDL, transitions INSERT and SELECT only)."""


async def apply_schema(server: Postgres) -> None:
    """The engine's tables as the migrator, as the platform applies them: `python -m engine migrate` (PG.md) where
    the engine has it; otherwise the numbered files in order, then the engine account's grants."""
    import importlib.util
    import sys

    if importlib.util.find_spec("engine.migrate") is not None:
        done = subprocess.run([sys.executable, "-m", "engine", "migrate"], env={**os.environ, **server.engine_env()},
                              check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"python -m engine migrate failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return
    from infra.ops.migrate_db import connect_dsn

    connection = await connect_dsn(server.dsn())
    try:
        for path in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            await connection.execute(path.read_text(encoding="utf-8"))
        await connection.execute(ENGINE_GRANTS.format(engine=server.engine_user))
    finally:
        await connection.close()


def wait_ready(server: Postgres, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        probe = subprocess.run([str(server_bin() / "pg_isready"), "-h", server.host, "-p", str(server.port)],
                               check=False, capture_output=True)
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL on {server.port} not ready after {timeout_s:.0f} s")
