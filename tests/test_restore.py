"""`python -m infra restore`: what each stack's replica is, refusals before anything is touched, and a
real restore (Litestream, a file replica, a fresh PocketBase) that verifies before it reports success."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from components.pocketbase import drtool
from infra.config import load_model
from infra.ops.replica import storage_of
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, CliResult

BIN = Path(sys.executable).parent


def _model(stack: str):
    return load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml"))


def test_prod_replicates_to_its_own_bucket_in_the_failover_region_and_backs_up_in_its_region() -> None:
    storage = storage_of(_model("prod"))

    assert storage is not None and storage.declared
    assert storage.replica.bucket == "acme-commerce-prod-pocketbase-replica"
    assert storage.replica.region == "us-east1"
    assert (storage.backups_bucket, storage.backups_region) == ("acme-commerce-prod-pocketbase-backups",
                                                                "southamerica-east1")
    assert storage.replica.endpoint == "https://storage.googleapis.com"


def test_staging_replicates_beside_its_backups_and_integration_nowhere() -> None:
    staging = storage_of(_model("staging"))

    assert staging is not None and not staging.declared
    assert (staging.replica.bucket, staging.replica.path) == ("acme-commerce-staging-backups", "litestream/pocketbase")
    assert storage_of(_model("integration")) is None


def test_a_restore_into_an_existing_database_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    (tmp_path / "data.db").write_bytes(b"")

    result = run_cli("restore", "--stack", "prod", "--output", str(tmp_path))

    assert result.code == 2 and "a restore goes into a fresh directory" in result.err


def test_a_time_without_a_zone_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("restore", "--stack", "prod", "--at", "2026-03-01 12:00", "--output", str(tmp_path))

    assert result.code == 2 and "RFC 3339" in result.err


def _replicated(tmp_path: Path) -> tuple[Path, str]:
    """A PocketBase database with one collection of 3 rows, replicated once to a file replica."""
    source = tmp_path / "source"
    source.mkdir()
    subprocess.run([str(BIN / "pocketbase"), "superuser", "upsert", "a@example.com", "a-password-for-tests",
                    f"--dir={source}"], check=True, capture_output=True)
    with sqlite3.connect(source / "data.db") as db:
        db.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO orders VALUES (?)", [("a",), ("b",), ("c",)])
        db.execute("INSERT INTO _collections (id, system, type, name, fields, indexes, listRule, viewRule, createRule, "
                   "updateRule, deleteRule, options, created, updated) SELECT 'pbc_orders', 0, 'base', 'orders', "
                   "'[]', '[]', NULL, NULL, NULL, NULL, NULL, '{}', created, updated FROM _collections LIMIT 1")
    replica = f"file://{tmp_path / 'replica'}"
    subprocess.run([str(BIN / "litestream"), "replicate", "-once", str(source / "data.db"), replica], check=True,
                   capture_output=True, timeout=60)
    return source, replica


def test_a_restore_is_verified_with_integrity_check_and_rows_per_collection(tmp_path: Path) -> None:
    _, replica = _replicated(tmp_path)
    target = tmp_path / "restored"
    litestream = str(BIN / "litestream")

    proc = subprocess.run([litestream, "restore", "-o", str(target / "data.db"), replica], capture_output=True,
                          timeout=60, check=False)
    checked = drtool.verify(target, str(BIN / "pocketbase"), {})

    assert proc.returncode == 0, proc.stderr
    assert checked.ok, checked.to_json()
    assert checked.integrity == "ok" and checked.counts["orders"] == 3 and checked.counts["_superusers"] == 1


def test_a_corrupt_copy_is_not_verified(tmp_path: Path) -> None:
    source, _ = _replicated(tmp_path)
    copy = tmp_path / "corrupt"
    copy.mkdir()
    shutil.copy(source / "data.db", copy / "data.db")
    with (copy / "data.db").open("r+b") as f:  # a page of the orders table's B-tree overwritten
        f.seek(4096 * 3)
        f.write(b"\xff" * 4096)

    checked = drtool.verify(copy, str(BIN / "pocketbase"), {})

    assert not checked.ok and checked.integrity != "ok"


def test_the_scheduled_restore_test_records_its_success_and_the_replica_lag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from infra.ops.drill import BUCKET, s3_server

    source, _ = _replicated(tmp_path)
    beat = time.time() - 2
    with sqlite3.connect(source / "data.db") as db:
        db.execute(f"CREATE TABLE {drtool.HEARTBEAT_TABLE} (id INTEGER PRIMARY KEY, at_ms INTEGER)")
        db.execute(f"INSERT INTO {drtool.HEARTBEAT_TABLE} VALUES (1, ?)", (int(beat * 1000),))
    with s3_server(tmp_path) as endpoint:
        replica = drtool.Replica(BUCKET, "pocketbase", endpoint, "us-east-1", force_path_style=True)
        env = {**os.environ, **replica.env(), "LITESTREAM_ACCESS_KEY_ID": "test", "LITESTREAM_SECRET_ACCESS_KEY": "test"}
        subprocess.run([str(BIN / "litestream"), "replicate", "-once", str(source / "data.db"), replica.url()],
                       env=drtool.litestream_env(env, replica), check=True, capture_output=True, timeout=60)
        home = tmp_path / "home"
        home.mkdir()
        for binary in ("pocketbase", "litestream"):
            (home / binary).symlink_to(BIN / binary)
        capsys.readouterr()

        code = drtool.restore_test(env, home)

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    metrics = next(line["metrics"] for line in lines if "metrics" in line)
    assert code == 0, lines
    assert metrics["backup_restore_success"] == 1.0 and metrics["backup_restore_rows"] >= 4
    assert time.time() - metrics["backup_restore_last_success_timestamp_seconds"] < 60
    assert 0 <= metrics["pocketbase_replica_lag_seconds"] - (metrics["backup_restore_last_run_timestamp_seconds"] - beat) < 1
