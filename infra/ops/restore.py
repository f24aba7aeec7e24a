"""`python -m infra restore --stack S [--to TIME] [--apply]`: the stack's PocketBase replica (latest, or as it
was at TIME) restored into a fresh data directory and verified there before anything is switched
to it: SQLite's `PRAGMA integrity_check`, a fresh PocketBase serving it, and the rows per collection.
With `--apply` (a stack whose PocketBase runs on a VM: prod), that verified file then goes onto the VM, which
has no external address, through IAP (`gcloud compute scp/ssh --tunnel-through-iap`): its checksum is compared
there, the unit is stopped, the old database kept aside, the copy installed, the unit started and PocketBase's
health checked (docs/runbooks/restore.md).

Credentials come from the environment and are never printed; no stack output holds one (#22 item 6). A stack
that declares its buckets (prod) is read through Cloud Storage's own API as the `pocketbase-restore` account,
which may only read them, with the operator's short-lived application default credentials (`gcloud auth
application-default login --impersonate-service-account=pocketbase-restore@PROJECT.iam.gserviceaccount.com`);
a `platform:backups` bucket with LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY (that config's
`accessKeyId`, and the deploy environment's secret BACKUP_SECRET_ACCESS_KEY: in no stack file, #22 item 1).
PB_ENCRYPTION_KEY, which opens the settings PocketBase encrypts in the database, is read from where PocketBase's
VM reads it (Secret Manager, `pocketbase-<env>-pb-encryption-key`; README "Restore, runbook"). Exit codes: 0 restored
and verified, 1 not, 2 usage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def credentials(stack: str, replica: Replica, project: str | None) -> dict[str, str]:
    """What a restore of this replica reads from the environment, and where each comes from (never a stack output:
    none holds a credential, #22 item 6). Litestream without a key falls through the AWS credential chain (down to
    the instance metadata service) and says so, not which variable is missing."""
    settings_key = (f"gcloud secrets versions access latest --secret=pocketbase-{stack}-pb-encryption-key "
                    f"--project={project}" if project else
                    f"pulumi stack export --stack {stack} --show-secrets | jq -r '.deployment.resources[] | "
                    f"select(.urn | endswith(\"::database-settings-key\")) | .outputs.result.plaintext'")
    if replica.scheme == "gs":
        return {"PB_ENCRYPTION_KEY": settings_key}
    return {"LITESTREAM_ACCESS_KEY_ID": f"the accessKeyId of platform:backups in Pulumi.{stack}.yaml",
            # In no stack file (#22 item 1): the key the deploy job sets on PocketBase from its environment's secret
            # BACKUP_SECRET_ACCESS_KEY (GitHub never shows a secret back: the operator holds it, as the deploy does).
            "LITESTREAM_SECRET_ACCESS_KEY": "printenv BACKUP_SECRET_ACCESS_KEY",
            "PB_ENCRYPTION_KEY": settings_key}


def with_backup_key(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with Litestream's secret taken from BACKUP_SECRET_ACCESS_KEY when only that is set: the name
    the staging deploy environment holds the `platform:backups` key under (#22 item 1), so an operator exports it
    once, under one name."""
    merged = dict(env)
    if not merged.get("LITESTREAM_SECRET_ACCESS_KEY") and merged.get("BACKUP_SECRET_ACCESS_KEY"):
        merged["LITESTREAM_SECRET_ACCESS_KEY"] = merged["BACKUP_SECRET_ACCESS_KEY"]
    return merged


def missing_credentials(stack: str, replica: Replica, project: str | None, env: Mapping[str, str]) -> list[str]:
    missing = [f"{name} is not set: export {name}=$({source})"
               for name, source in credentials(stack, replica, project).items() if not env.get(name)]
    if replica.scheme == "gs" and not _google_credentials(env):
        account = f"pocketbase-restore@{project}.iam.gserviceaccount.com" if project else "pocketbase-restore@PROJECT"
        missing.append("no Google application default credentials (GOOGLE_APPLICATION_CREDENTIALS unset and no "
                       f"gcloud ADC file): run gcloud auth application-default login "
                       f"--impersonate-service-account={account}")
    return missing


def _google_credentials(env: Mapping[str, str]) -> bool:
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return True
    config = Path(env.get("CLOUDSDK_CONFIG") or Path(env.get("HOME", "~")).expanduser() / ".config" / "gcloud")
    return (config / "application_default_credentials.json").exists()


def main(stack: str, at: str | None, output: Path | None, replica_url: str | None, *, apply: bool = False) -> int:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = output or Path.cwd() / f"restore-{stack}-{stamp}"
    if (target / DB_NAME).exists():
        print(f"error: {target / DB_NAME} exists: a restore goes into a fresh directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        when = _at(at)
    except ValueError as exc:
        print(f"error: --to {at!r} is not an RFC 3339 time with a zone, like 2026-03-01T12:00:00Z ({exc})",
              file=sys.stderr)
        return EXIT_USAGE
    vm = None
    if apply:
        vm = vm_of(stack)
        if vm is None:
            print(f"error: --apply: stack {stack!r} runs PocketBase on no VM; start PocketBase on the restored "
                  "directory instead", file=sys.stderr)
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
    project = None
    if replica_url is None or replica.scheme == "gs":
        loaded_model = load_stack(stack)
        project = loaded_model[1].gcp.project if loaded_model is not None and loaded_model[1].gcp else None
    environ = with_backup_key(os.environ)
    missing = missing_credentials(stack, replica, project, environ)
    if missing:
        print("error: " + "\nerror: ".join(missing), file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    try:
        restore(litestream_binary(), replica, target / DB_NAME, at=when, env=environ)
    except RestoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    restored_s = time.monotonic() - started
    checked = verify(target, pocketbase_binary(), environ)
    report = {"stack": stack, "replica": f"{replica.scheme}://{replica.bucket}/{replica.path}", "at": when or "latest",
              "directory": str(target), "restore_seconds": round(restored_s, 3),
              "verify_seconds": round(time.monotonic() - started - restored_s, 3), **checked.to_json()}
    print(json.dumps(report, indent=2))
    if not checked.ok:
        print("restore: NOT verified; switch nothing to it", file=sys.stderr)
        return EXIT_FAILED
    print(f"restore: verified ({sum(checked.counts.values())} rows in {len(checked.counts)} collections)"
          + ("" if vm else f"; start PocketBase on {target}"), file=sys.stderr)
    if vm is not None:
        return apply_to_vm(vm, target, run_gcloud, stamp)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# --apply: the verified copy onto the PocketBase VM


@dataclass(frozen=True)
class Vm:
    name: str
    zone: str
    project: str
    unit: str
    data_dir: str
    """The host directory the unit mounts as PocketBase's data directory (components/backends/gce.py MOUNT)."""
    port: int


def vm_of(stack: str) -> Vm | None:
    """The stack's serving PocketBase VM as its plan declares it (name, zone), or None when it runs on none."""
    from components.backends.gce import MOUNT
    from components.database import PORT
    from infra.ops import plan_stack

    loaded = load_stack(stack)
    if loaded is None:
        return None
    raw, model = loaded
    if model.gcp is None or model.services["pocketbase"].backend != "gce":
        return None
    plan = plan_stack(model, raw, stack, f"Pulumi.{stack}.yaml")
    if plan is None:
        return None
    # After a failover (`platform:gcp.serving: failover`) the standby VM is the one serving.
    wanted = "database-standby" if model.gcp.serving_failover else "database"
    [instance] = [r for r in plan.resources if r.type == "gcp:compute/instance:Instance" and r.name == wanted]
    return Vm(str(instance.inputs["name"]), str(instance.inputs["zone"]), model.gcp.project, "pocketbase.service",
              MOUNT, PORT)


Runner = Callable[[Sequence[str]], tuple[int, str]]


def run_gcloud(argv: Sequence[str]) -> tuple[int, str]:
    print("$ " + shlex.join(argv), file=sys.stderr, flush=True)
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def apply_to_vm(vm: Vm, restored: Path, run: Runner, stamp: str) -> int:
    """Copy, check, stop, swap (the old database kept aside), start, check health. Each step stops the next
    on failure; nothing is stopped until the copy on the VM is byte for byte the verified one."""
    where = ["--zone", vm.zone, "--project", vm.project, "--tunnel-through-iap"]
    staged = f"/tmp/restore-{stamp}.db"

    def ssh(script: str) -> tuple[int, str]:
        return run(["gcloud", "compute", "ssh", vm.name, *where, "--command", script])

    db = f"{vm.data_dir}/{DB_NAME}"
    aside = f"{vm.data_dir}/before-restore-{stamp}"
    steps: list[tuple[str, Callable[[], tuple[int, str]]]] = [
        ("copy the verified database to the VM",
         lambda: run(["gcloud", "compute", "scp", str(restored / DB_NAME), f"{vm.name}:{staged}", *where])),
    ]
    expected = sha256(restored / DB_NAME)
    code, out = steps[0][1]()
    if code != 0:
        print(f"restore --apply: {steps[0][0]} failed ({code}): {out.strip()[-300:]}", file=sys.stderr)
        return EXIT_FAILED
    code, out = ssh(f"sha256sum {shlex.quote(staged)}")
    if code != 0 or out.split()[:1] != [expected]:
        print(f"restore --apply: the copy on {vm.name} is not the verified one (sha256 {expected}); nothing "
              "was stopped", file=sys.stderr)
        return EXIT_FAILED
    swap = " && ".join([
        f"sudo systemctl stop {vm.unit}",
        f"sudo mkdir -p {shlex.quote(aside)}",
        f"(sudo sh -c {shlex.quote(f'mv {db}* {aside}/')} || true)",
        f"sudo install -m 0644 --owner=$(stat -c %u {vm.data_dir}) --group=$(stat -c %g {vm.data_dir}) "
        f"{shlex.quote(staged)} {shlex.quote(db)}",
        f"sudo systemctl start {vm.unit}",
    ])
    code, out = ssh(swap)
    if code != 0:
        print(f"restore --apply: swapping the database on {vm.name} failed ({code}): {out.strip()[-300:]}; "
              f"the previous one is in {aside}", file=sys.stderr)
        return EXIT_FAILED
    code, out = ssh(f"curl -fsS --retry 60 --retry-delay 2 --retry-all-errors http://127.0.0.1:{vm.port}/api/health")
    if code != 0:
        print(f"restore --apply: PocketBase on {vm.name} is not healthy after the restart ({code}): "
              f"{out.strip()[-300:]}; the previous database is in {aside}", file=sys.stderr)
        return EXIT_FAILED
    print(f"restore --apply: {vm.name} serves the restored database (previous one kept in {aside}); check the "
          "engine's /readyz through the edge and a known order", file=sys.stderr)
    return EXIT_OK
