"""A throwaway PostgreSQL on this machine, for `python -m engine dev --storage postgres` and the tests (#26).

Debian's `postgresql` package puts initdb and postgres in /usr/lib/postgresql/<version>/bin, not on PATH
(`python3 tools/dev.py setup` installs it). initdb refuses to run as root ("cannot be run as root"), so as root
the cluster is made and served as the `postgres` system user the package creates. The data directory and the
unix socket live in a fresh temporary directory; TCP listens on a free loopback port only. The superuser signs in
over the socket (trust, the socket's directory being the cluster owner's alone); every other role over TCP with a
password (scram-sha-256).
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from engine.storage.postgres import Connection, connect


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL in /usr/lib/postgresql/*/bin: sudo apt-get install -y postgresql "
                           "(python3 tools/dev.py setup does it as root)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Database:
    """A database owned by its migrator role, with the engine's own login role beside it."""

    host: str
    port: int
    name: str
    migrator: str
    migrator_password: str
    engine: str
    engine_password: str

    def engine_env(self) -> dict[str, str]:
        """The engine's settings for this database (STORAGE=postgres, its own role)."""
        return {"STORAGE": "postgres", "POSTGRES_HOST": self.host, "POSTGRES_PORT": str(self.port),
                "POSTGRES_DB": self.name, "POSTGRES_USER": self.engine, "POSTGRES_PASSWORD": self.engine_password}

    def migrate_env(self) -> dict[str, str]:
        """`python -m engine migrate`'s settings: the engine's, the migrator account and the engine role's password
        (which the step sets)."""
        return {**self.engine_env(), "POSTGRES_MIGRATOR_USER": self.migrator,
                "POSTGRES_MIGRATOR_PASSWORD": self.migrator_password,
                "POSTGRES_ENGINE_PASSWORD": self.engine_password}

    async def connect(self, as_engine: bool = True) -> Connection:
        user, password = ((self.engine, self.engine_password) if as_engine
                          else (self.migrator, self.migrator_password))
        return await connect(host=self.host, port=self.port, database=self.name, user=user, password=password,
                             ssl=False)


class LocalPostgres:
    """initdb + postgres on a free loopback port; `close()` stops it and removes its directory."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: a certificate and its key: the server then offers TLS (ssl=on) beside plain connections."""
        self.tls = tls
        self.root = Path(tempfile.mkdtemp(prefix="engine-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "run"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0
        self._user: str | None = "postgres" if self._as_root else None

    def _own(self) -> None:
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, self.data, self.sockets):
                path.mkdir(exist_ok=True)
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.root.chmod(0o755)
        else:
            self.data.mkdir(exist_ok=True)
            self.sockets.mkdir(exist_ok=True)

    def start(self, timeout_s: float = 60.0) -> LocalPostgres:
        """initdb (the first time), then the server; again after `stop()`: the same data, on the same port."""
        bindir = postgres_bin()
        if not (self.data / "PG_VERSION").exists():
            self._own()
            subprocess.run([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                           check=True, capture_output=True, user=self._user, cwd=self.root)
        options: list[str] = []
        if self.tls is not None:  # copied beside the data, the server's own: it refuses a key others can read
            for source, name in zip(self.tls, ("server.crt", "server.key"), strict=True):
                shutil.copy(source, self.data / name)
                (self.data / name).chmod(0o600)
                if self._as_root:
                    entry = pwd.getpwnam("postgres")
                    os.chown(self.data / name, entry.pw_uid, entry.pw_gid)
            options = ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"]
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            # Durability off: a throwaway cluster (fsync and full-page writes guard against a crash of the machine).
            self.process = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(self.data), "-k", str(self.sockets), "-h", "127.0.0.1",
                 "-p", str(self.port), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200", *options], stdout=log, stderr=log, user=self._user, cwd=self.root)
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: "
                                   f"{(self.root / 'postgres.log').read_text()[-2000:]}")
            try:
                asyncio.run(self._superuser("SELECT 1"))
                return self
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {timeout_s:.0f} s")

    async def _superuser(self, *statements: str, database: str = "postgres") -> None:
        connection = await connect(host=str(self.sockets), port=self.port, user="postgres", database=database)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    def superuser(self, *statements: str, database: str = "postgres") -> None:
        asyncio.run(self._superuser(*statements, database=database))

    def database(self, name: str | None = None) -> Database:
        """A new database owned by a new migrator role, and a new engine login role (no rights yet: `migrate`).

        The migrator holds CREATEROLE, as Cloud SQL's users do (https://cloud.google.com/sql/docs/postgres/users), and
        creates the engine's role itself, as `engine migrate` would: so it holds ADMIN OPTION on it, which PostgreSQL
        16+ asks of a CREATEROLE role to alter another (https://www.postgresql.org/docs/16/role-attributes.html)."""
        name = name or f"engine_{secrets.token_hex(4)}"
        database = Database("127.0.0.1", self.port, name, f"{name}_migrator", secrets.token_hex(16),
                            f"{name}_engine", secrets.token_hex(16))
        self.superuser(f"CREATE ROLE {database.migrator} LOGIN CREATEROLE PASSWORD '{database.migrator_password}'",
                       f"SET ROLE {database.migrator}",
                       f"CREATE ROLE {database.engine} LOGIN NOINHERIT PASSWORD '{database.engine_password}'",
                       "RESET ROLE",
                       f"CREATE DATABASE {name} OWNER {database.migrator}")
        # The database's owner owns schema public too (pg_database_owner, PostgreSQL 15). PUBLIC keeps PostgreSQL's
        # default CONNECT and TEMPORARY on the database (https://www.postgresql.org/docs/15/ddl-priv.html), as a
        # database Cloud SQL's API creates does: what the engine's role must not use, the migrations take back
        # (0003_engine_history.sql), so the tests see what Cloud SQL gives.
        return database

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # smart shutdown... then fast, then kill
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
