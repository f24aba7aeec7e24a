"""`python -m infra restore --stack S [--at TIME]`: the stack's PocketBase replica (latest, or as it
was at TIME) restored into a fresh data directory and verified there before anything is switched
to it: SQLite's `PRAGMA integrity_check`, a fresh PocketBase serving it, and the rows per collection.

Credentials come from the environment and are never printed; no stack output holds one (#22 item 6). A stack
that declares its buckets (prod) is read through Cloud Storage's own API as the `pocketbase-restore` account,
which may only read them, with the operator's short-lived application default credentials (`gcloud auth
application-default login --impersonate-service-account=pocketbase-restore@PROJECT.iam.gserviceaccount.com`);
a `platform:backups` bucket with LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY (that config's
`accessKeyId`, and `platform:backupSecretAccessKey`). PB_ENCRYPTION_KEY, which opens the settings PocketBase
encrypts in the database, is read from where PocketBase's VM reads it (Secret Manager,
`pocketbase-<env>-pb-encryption-key`; README "Restore, runbook"). Exit codes: 0 restored and verified, 1
not, 2 usage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from components.pocketbase.drtool import DB_NAME, Replica, RestoreError, litestream_binary, restore, verify
from infra.ops import load_stack
from infra.ops.replica import storage_of

PROJECT_DIR = Path(__file__).resolve().parents[2]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def pocketbase_binary() -> str:
    found = Path(sys.executable).parent / "pocketbase"
    return str(found) if found.exists() else "pocketbase"


def _at(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(stack: str, at: str | None, output: Path | None, replica_url: str | None) -> int:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = output or Path.cwd() / f"restore-{stack}-{stamp}"
    if (target / DB_NAME).exists():
        print(f"error: {target / DB_NAME} exists: a restore goes into a fresh directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        when = _at(at)
    except ValueError as exc:
        print(f"error: --at {at!r} is not an RFC 3339 time with a zone, like 2026-03-01T12:00:00Z ({exc})",
              file=sys.stderr)
        return EXIT_USAGE
    if replica_url is not None:
        try:
            replica = Replica.from_url(replica_url)
        except ValueError as exc:
            print(f"error: --replica-url: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        loaded = load_stack(stack)
        if loaded is None:
            return EXIT_USAGE
        _, model = loaded
        storage = storage_of(model)
        if storage is None:
            print(f"error: stack {stack!r} replicates PocketBase nowhere (the docker backend keeps it on its volume)",
                  file=sys.stderr)
            return EXIT_USAGE
        # A declared bucket is read as the restore account (gs: application default credentials), never with the
        # writers' HMAC key.
        replica = dataclasses.replace(storage.replica, scheme="gs") if storage.declared else storage.replica
    started = time.monotonic()
    try:
        restore(litestream_binary(), replica, target / DB_NAME, at=when, env=os.environ)
    except RestoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    restored_s = time.monotonic() - started
    checked = verify(target, pocketbase_binary(), os.environ)
    report = {"stack": stack, "replica": f"{replica.scheme}://{replica.bucket}/{replica.path}", "at": when or "latest",
              "directory": str(target), "restore_seconds": round(restored_s, 3),
              "verify_seconds": round(time.monotonic() - started - restored_s, 3), **checked.to_json()}
    print(json.dumps(report, indent=2))
    if not checked.ok:
        print("restore: NOT verified; switch nothing to it", file=sys.stderr)
        return EXIT_FAILED
    print(f"restore: verified ({sum(checked.counts.values())} rows in {len(checked.counts)} collections); "
          f"start PocketBase on {target}", file=sys.stderr)
    return EXIT_OK
