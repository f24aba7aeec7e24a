"""The disaster-recovery drill, end to end with real binaries on this machine (`python3 tools/dev.py drill`).

An S3-compatible server (moto's server mode on loopback), PocketBase started by the image's own
entrypoint (its bootstrap hook, Litestream replicating to that server), Redis and the Commission
Engine in front, under steady order traffic. PocketBase is killed with SIGKILL in the middle of it;
`python -m infra restore` restores the replica into a new directory and verifies it; PocketBase is
started again on it, on the same address, and every order the engine acknowledged is looked up.

Printed: RPO (seconds of acknowledged writes lost), RTO (kill to serving orders again), orders
acknowledged, restored and lost, and `drill: N passed, M failed`. Exit 0 only when all passed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from engine.dev import LocalStack, free_port, wait_http, wait_tcp
from engine.registry import key_hash

from components.pocketbase import drtool
from components.pocketbase.drtool import Replica

PROJECT_DIR = Path(__file__).resolve().parents[2]
IMAGE_DIR = PROJECT_DIR / "components" / "pocketbase"
BIN = Path(sys.executable).parent
BUCKET = "drill-pocketbase-replica"


@dataclass(frozen=True)
class DrillSettings:
    warmup_s: float = 10.0
    """Order traffic before the kill."""
    after_s: float = 3.0
    """Order traffic after PocketBase serves again."""
    rate_per_s: float = 40.0
    """Orders per second, over all clients."""
    clients: int = 4
    rto_target_s: float = 3600.0
    rpo_target_s: float = 5.0
    restore_in_process: bool = False


@dataclass
class Ack:
    order_id: str
    at: float
    """time.monotonic() when the engine answered 201."""


class Checked:
    """A drill's named checks and their tally (this drill's and the migration drill's, infra/ops/migrate_drill.py)."""

    checks: list[tuple[str, bool, str]]

    @property
    def passed(self) -> int:
        return sum(1 for _, ok, _ in self.checks if ok)

    @property
    def failed(self) -> int:
        return len(self.checks) - self.passed


@dataclass
class DrillResult(Checked):
    acknowledged: int = 0
    restored: int = 0
    lost: int = 0
    rpo_s: float = 0.0
    rto_s: float = 0.0
    restore_s: float = 0.0
    checks: list[tuple[str, bool, str]] = field(default_factory=list[tuple[str, bool, str]])

    def render(self) -> str:
        lines = [f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}" for name, ok, detail in self.checks]
        lines += [f"RPO: {self.rpo_s:.3f} s of acknowledged writes lost",
                  f"RTO: {self.rto_s:.2f} s from the kill to serving orders again "
                  f"(restore and verification {self.restore_s:.2f} s)",
                  f"orders: {self.acknowledged} acknowledged, {self.restored} restored, {self.lost} lost",
                  f"drill: {self.passed} passed, {self.failed} failed"]
        return "\n".join(lines) + "\n"


@contextmanager
def s3_server(workdir: Path) -> Generator[str]:
    """moto's S3 in server mode on loopback, with the drill's bucket; its endpoint URL."""
    port = free_port()
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=log)
    try:
        wait_tcp(port, process)  # pyright: ignore[reportArgumentType]
        endpoint = f"http://127.0.0.1:{port}"
        # moto accepts any key; path-style on loopback, as Litestream is told.
        httpx.put(f"{endpoint}/{BUCKET}", timeout=10).raise_for_status()
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def image_home(base: Path) -> Path:
    """The image's /pb laid out here: the real binaries, the hooks and drtool.py, the entrypoint's layout.
    Reachable by every user: run as root, the entrypoint drops to the image's unprivileged user."""
    home = base
    home.mkdir(parents=True, exist_ok=True)
    for directory in (home, *home.parents):
        if directory == Path(tempfile.gettempdir()):
            break
        directory.chmod(directory.stat().st_mode | 0o755)  # mkdtemp makes 0700 folders
    # Copies, not links: a clone may live below a folder the unprivileged user cannot enter.
    for binary in ("pocketbase", "litestream"):
        shutil.copy(BIN / binary, home / binary)
    shutil.copytree(IMAGE_DIR / "pb_hooks", home / "pb_hooks")
    shutil.copy(IMAGE_DIR / "drtool.py", home / "drtool.py")
    shutil.copy(IMAGE_DIR / "tlsproxy.py", home / "tlsproxy.py")
    shutil.copy(IMAGE_DIR / "entrypoint.sh", home / "entrypoint.sh")
    return home


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pocketbase_pid(root: int) -> int | None:
    for pid in descendants(root):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "pocketbase":
                return pid
        except OSError:
            continue
    return None


class DrillStack(LocalStack):
    """The engine's local stack, with PocketBase started as the image starts it (entrypoint.sh)."""

    def __init__(self, data: Path, tenants: list[dict[str, object]], replica: Replica, log: Path) -> None:
        super().__init__(data, tenants, env={}, log=log)
        self.replica = replica
        self.settings_key = secrets.token_hex(16)
        self.home = image_home(data / "pb-home-1")

    def pocketbase_env(self) -> dict[str, str]:
        return {**os.environ, "PB_HOME": str(self.home), "PB_HTTP": f"127.0.0.1:{self.pb_port}",
                "PB_SUPERUSER_EMAIL": self.email, "PB_SUPERUSER_PASSWORD": self.password,
                **self.pocketbase_account_env(),
                "PB_ENCRYPTION_KEY": self.settings_key, "PB_BACKUP_CRON": "0 3 * * *", "PB_BACKUP_MAX_KEEP": "30",
                "LITESTREAM_ACCESS_KEY_ID": "drill", "LITESTREAM_SECRET_ACCESS_KEY": "drill", **self.replica.env()}

    def start_pocketbase(self) -> None:
        log = open(self.data / "pocketbase.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.processes["pocketbase"] = subprocess.Popen(["sh", str(self.home / "entrypoint.sh")],
                                                            env=self.pocketbase_env(), stdout=log, stderr=log)
        finally:
            log.close()
        wait_tcp(self.pb_port, self.processes["pocketbase"], timeout_s=60)
        wait_http(f"http://127.0.0.1:{self.pb_port}/api/health")


class Traffic:
    """Steady order traffic from a few clients; every acknowledged order is kept."""

    def __init__(self, url: str, api_key: str, settings: DrillSettings) -> None:
        self.url, self.api_key, self.settings = url, api_key, settings
        self.acks: list[Ack] = []
        self.failures = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(settings.clients)]

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def last_ack(self) -> float:
        with self.lock:
            return self.acks[-1].at if self.acks else 0.0

    def _client(self) -> None:
        period = self.settings.clients / self.settings.rate_per_s
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.url, timeout=10) as client:
            next_at = time.monotonic()
            while not self.stop.is_set():
                try:
                    response = client.post("/v1/orders", headers=headers | {"Idempotency-Key": uuid.uuid4().hex},
                                           json={"lines": [{"sku": "MUG", "quantity": 1}]})
                    if response.status_code == 201:
                        ack = Ack(str(response.json()["id"]), time.monotonic())
                        with self.lock:
                            self.acks.append(ack)
                    else:
                        with self.lock:
                            self.failures += 1
                except httpx.HTTPError:
                    with self.lock:
                        self.failures += 1
                next_at += period
                self.stop.wait(max(0.0, next_at - time.monotonic()))


def _wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_restore(replica: Replica, output: Path, settings_key: str, in_process: bool) -> tuple[int, str, str]:
    """`python -m infra restore` as an operator runs it; in process for the test suite's short drill
    (the same function, without the CLI's start-up)."""
    env = {"LITESTREAM_ACCESS_KEY_ID": "drill", "LITESTREAM_SECRET_ACCESS_KEY": "drill",
           "PB_ENCRYPTION_KEY": settings_key}
    args = ["restore", "--stack", "drill", "--replica-url", replica.url(), "--output", str(output)]
    if not in_process:
        proc = subprocess.run([sys.executable, "-m", "infra", *args], cwd=PROJECT_DIR, capture_output=True,
                              text=True, env={**os.environ, **env}, timeout=600, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    from infra.ops.restore import main as restore

    saved = {k: os.environ.get(k) for k in env}
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = restore("drill", None, output, replica.url())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, out.getvalue(), err.getvalue()


@contextmanager
def drill_stack(workdir: Path, settings: DrillSettings, out: Any, name: str,
                ) -> Generator[tuple[DrillStack, Replica, str], None, None]:
    """Both drills' start: one tenant, moto's S3 server, the local stack with PocketBase replicating to it
    and a product to order; yields the stack, the replica and the tenant's API key, and closes the stack."""
    api_key, admin_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tenant: dict[str, object] = {"slug": "drill", "currency": "BRL", "api_key_hashes": [key_hash(api_key)],
                                 "admin_key_hashes": [key_hash(admin_key)]}
    with s3_server(workdir) as endpoint:
        replica = Replica(BUCKET, "pocketbase", endpoint, "us-east-1", force_path_style=True)
        stack = DrillStack(workdir, [tenant], replica, workdir / "engine.log")
        try:
            stack.start()
            httpx.put(f"{stack.url}/v1/products/MUG", headers={"Authorization": f"Bearer {admin_key}"}, timeout=10,
                      json={"name": "Mug", "category": "home", "price_cents": 4500}).raise_for_status()
            print(f"{name}: engine {stack.url}, PocketBase 127.0.0.1:{stack.pb_port} replicating to "
                  f"s3://{BUCKET}/pocketbase on {endpoint}; {settings.rate_per_s:g} orders/s", file=out, flush=True)
            yield stack, replica, api_key
        finally:
            stack.close()


def lost_orders(url: str, api_key: str, acks: Sequence[Ack]) -> list[Ack]:
    """The acknowledged orders the engine cannot read back by the id it answered."""
    lost: list[Ack] = []
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {api_key}"}) as client:
        for ack in acks:
            found = client.get(f"/v1/orders/{ack.order_id}")
            if found.status_code != 200 or found.json().get("id") != ack.order_id:
                lost.append(ack)
    return lost


Check = tuple[str, bool, str]
"""(what is checked, passed, what was measured)"""

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_GO_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
LITESTREAM_DEFAULT_SYNC_S = 1.0
"""Litestream's own default when a replica names no `sync-interval` (litestream.io/reference/config:
"sync-interval: Frequency in which frames are pushed to the replica. Defaults to 1s")."""


def go_duration_s(text: str) -> float:
    """A Go duration as Litestream reads it (`1s`, `500ms`, `1m0s`), in seconds."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a Go duration")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def replication_check(rpo_target_s: float) -> Check:
    """Whether the Litestream config the image writes (drtool.litestream_config) ships the WAL at least
    once per RPO: writes between two syncs are what a lost host loses. The crash and failover drills stop
    only PocketBase, and Litestream ships everything as it exits, so their measured RPO cannot show a
    sync interval over the RPO; this reads it."""
    config = drtool.litestream_config(Path(drtool.DB_NAME), Replica("drill", "pocketbase", "", "auto"))
    interval = str(config["dbs"][0]["replica"].get("sync-interval") or "")
    try:
        seconds = go_duration_s(interval) if interval else LITESTREAM_DEFAULT_SYNC_S
    except ValueError as exc:
        return (f"Litestream ships the WAL within the RPO ({rpo_target_s:g} s)", False, str(exc))
    return (f"Litestream ships the WAL within the RPO ({rpo_target_s:g} s)", 0 < seconds <= rpo_target_s,
            f"sync-interval {interval or 'default'} = {seconds:g} s")


def recovery_checks(result: DrillResult, settings: DrillSettings) -> list[Check]:
    """The measured RPO and RTO against their targets, and the replication's interval against the RPO:
    the checks every drill shares, fed by tests with figures over their targets (issue #21)."""
    return [
        (f"RPO within {settings.rpo_target_s:g} s", result.rpo_s <= settings.rpo_target_s, f"{result.rpo_s:.3f} s"),
        # C8 says "RTO < 1 h": the target itself is already a miss.
        (f"RTO under {settings.rto_target_s:g} s", 0 < result.rto_s < settings.rto_target_s,
         f"{result.rto_s:.2f} s"),
        replication_check(settings.rpo_target_s),
    ]


def run_drill(workdir: Path, settings: DrillSettings, out: Any = sys.stdout) -> DrillResult:
    result = DrillResult()
    with drill_stack(workdir, settings, out, "drill") as (stack, replica, api_key):
        with Traffic(stack.url, api_key, settings) as traffic:
            time.sleep(settings.warmup_s)
            entry = stack.processes.pop("pocketbase")
            target = pocketbase_pid(entry.pid)
            if target is None:
                raise RuntimeError("PocketBase is not running under the entrypoint")
            os.kill(target, signal.SIGKILL)
            killed_at = time.monotonic()
            print(f"drill: SIGKILL PocketBase (pid {target}) after {len(traffic.acks)} orders", file=out,
                  flush=True)
            # Litestream sees its child die and ships what the WAL holds, then exits.
            _wait_exit(entry, 60)
            new_home = image_home(workdir / "pb-home-2")
            restore_started = time.monotonic()
            code, stdout, stderr = run_restore(replica, new_home / "pb_data", stack.settings_key,
                                               settings.restore_in_process)
            result.restore_s = time.monotonic() - restore_started
            report: dict[str, Any] = json.loads(stdout) if stdout.strip().startswith("{") else {}
            result.checks.append(("the restore command restored and verified the replica", code == 0,
                                  f"exit {code}, integrity_check {report.get('integrity_check')!r}, "
                                  f"rows {report.get('rows_per_collection')}" if code == 0
                                  else stderr.strip()[-500:]))
            stack.home = new_home
            stack.start_pocketbase()
            while traffic.last_ack() <= killed_at and time.monotonic() - killed_at < settings.rto_target_s:
                time.sleep(0.02)
            result.rto_s = traffic.last_ack() - killed_at
            time.sleep(settings.after_s)
        acks = list(traffic.acks)
        before_kill = [a for a in acks if a.at <= killed_at]
        result.acknowledged = len(acks)
        lost = lost_orders(stack.url, api_key, acks)
        result.lost = len(lost)
        result.restored = result.acknowledged - result.lost
        result.rpo_s = max(0.0, killed_at - min(a.at for a in lost)) if lost else 0.0
        rows: dict[str, int] = report.get("rows_per_collection") or {}
        orders_rows = int(rows.get("orders", -1))
        result.checks += [
            ("every acknowledged order is there after the restore", not lost,
             f"{len(lost)} of {len(acks)} lost" + (f" (first {lost[0].order_id})" if lost else "")),
            ("the restored copy holds every order acknowledged before the kill",
             orders_rows >= len(before_kill), f"{orders_rows} order rows, {len(before_kill)} acknowledged"),
            ("orders are acknowledged again after the restart", any(a.at > killed_at for a in acks),
             f"{sum(1 for a in acks if a.at > killed_at)} after the restart"),
            *recovery_checks(result, settings),
        ]
    return result


def drill_command(argv: list[str] | None, *, prog: str, description: str | None, name: str,
                  run: Callable[[Path, DrillSettings], DrillResult], render: Callable[[DrillResult], str]) -> int:
    """A drill as a command: its options, a private work directory the image's user can enter, the report;
    exit 0 only when every check passed. The crash drill and the failover drill share it."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=float, default=DrillSettings.warmup_s,
                        help="seconds of traffic before the fault")
    parser.add_argument("--rate", type=float, default=DrillSettings.rate_per_s, help="orders per second")
    parser.add_argument("--keep", action="store_true", help="keep the drill's directory (logs, data)")
    args = parser.parse_args(argv)
    from stacks.prod import PROFILE

    settings = DrillSettings(warmup_s=args.warmup, rate_per_s=args.rate,
                             rto_target_s=PROFILE.disaster_recovery.rto_minutes * 60.0,
                             rpo_target_s=float(PROFILE.disaster_recovery.rpo_seconds))
    workdir = Path(tempfile.mkdtemp(prefix=f"dr-{name.replace(' ', '-')}-"))
    workdir.chmod(0o755)  # the entrypoint, started as root, runs PocketBase as the image's user
    try:
        result = run(workdir, settings)
    finally:
        if args.keep:
            print(f"{name}: kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(render(result))
    return 0 if result.failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    return drill_command(argv, prog="python -m infra.ops.drill", description=__doc__, name="drill",
                         run=run_drill, render=DrillResult.render)


if __name__ == "__main__":
    sys.exit(main())
