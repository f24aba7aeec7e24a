"""The PocketBase image's entrypoint and settings hook, run with the real PocketBase binary: the
superuser is created from the environment, backups are configured daily with S3 storage (C7) from
the settings of the latest start, not the first (#13.1), the settings holding the S3 secret are
encrypted at rest (S4), and a volume mounted root-owned (as Railway mounts them, and as Docker makes
a new named volume) is served by the unprivileged user. The Dockerfile passes hadolint."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.ops.drill import image_home
from tests.conftest import PROJECT_DIR

IMAGE_DIR = PROJECT_DIR / "components" / "pocketbase"
POCKETBASE = Path(sys.executable).parent / "pocketbase"
LITESTREAM = Path(sys.executable).parent / "litestream"
UNPRIVILEGED = 10001  # the image's pocketbase user and group
S3_SECRET = "fake-s3-secret-for-the-test"
ENV = {
    "PB_SUPERUSER_EMAIL": "platform-admin@example.com",
    "PB_SUPERUSER_PASSWORD": "fake-password-for-the-test",
    "PB_ENCRYPTION_KEY": "0123456789abcdef0123456789abcdef",
    "PB_BACKUP_CRON": "0 3 * * *",
    "PB_BACKUP_MAX_KEEP": "30",
    "PB_BACKUP_S3_BUCKET": "acme-commerce-prod-backups",
    "PB_BACKUP_S3_ENDPOINT": "https://s3.sa-east-1.amazonaws.com",
    "PB_BACKUP_S3_REGION": "sa-east-1",
    "PB_BACKUP_S3_ACCESS_KEY": "AKIAPRODBACKUPS00001",
    "PB_BACKUP_S3_SECRET": S3_SECRET,
    "PB_ENGINE_EMAIL": "commission-engine@example.com",
    "PB_ENGINE_PASSWORD": "fake-engine-password-for-the-test",
}
ENGINE_ACCOUNTS = "engine_accounts"
"""The auth collection holding the engine's one account (engine/schema.py)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, body: dict[str, str] | None = None, token: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json", **({"Authorization": token}
                                                                                      if token else {})})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _image_user() -> list[str]:
    """`setpriv` arguments that start a process as the Dockerfile's last USER; none when it runs as root."""
    final_stage = (IMAGE_DIR / "Dockerfile").read_text().split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", final_stage, flags=re.MULTILINE)
    if not users or users[-1][0] == "0":
        return []
    uid, gid = users[-1][0], users[-1][1] or users[-1][0]
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


def _start(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """The entrypoint, started as the image starts it; its URL once PocketBase answers."""
    port = _free_port()
    process = subprocess.Popen([*_image_user(), "sh", str(home / "entrypoint.sh")],
                               env={**os.environ, **env, "PB_HOME": str(home), "PB_HTTP": f"127.0.0.1:{port}"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            _request(f"{url}/api/health")
            return process, url
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    output = process.stdout.read().decode() if process.stdout else ""
    pytest.fail(f"PocketBase did not start: {output}")


@pytest.fixture
def pocketbase_home() -> Iterator[Path]:
    """The image's /pb laid out in a directory every user can reach (the entrypoint may drop to the
    unprivileged user), with the real binary and a data directory root-owned, as Railway mounts it."""
    assert os.geteuid() == 0, "the image starts as root: run these tests as root, as CI does"
    home = image_home(Path(tempfile.mkdtemp(prefix="pocketbase-home-")))
    try:
        (home / "pb_data").mkdir(mode=0o755)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def running(pocketbase_home: Path) -> Iterator[str]:
    process, url = _start(pocketbase_home, ENV)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_entrypoint_creates_the_superuser_and_the_migration_configures_daily_s3_backups(running: str) -> None:
    auth = _request(f"{running}/api/collections/_superusers/auth-with-password",
                    {"identity": ENV["PB_SUPERUSER_EMAIL"], "password": ENV["PB_SUPERUSER_PASSWORD"]})

    settings = _request(f"{running}/api/settings", token=str(auth["token"]))

    backups = settings["backups"]
    assert isinstance(backups, dict)
    assert backups["cron"] == "0 3 * * *"
    assert backups["cronMaxKeep"] == 30
    assert backups["s3"]["enabled"] is True
    assert backups["s3"]["bucket"] == "acme-commerce-prod-backups"
    assert backups["s3"]["endpoint"] == "https://s3.sa-east-1.amazonaws.com"


def test_the_settings_are_encrypted_at_rest(running: str, pocketbase_home: Path) -> None:
    database = pocketbase_home / "pb_data" / "data.db"

    with sqlite3.connect(database) as db:
        stored = "".join(str(value) for (value,) in db.execute("SELECT value FROM _params"))

    assert stored, "the settings row exists"
    assert S3_SECRET not in stored
    assert "acme-commerce-prod-backups" not in stored


def test_a_root_owned_volume_is_served_by_the_unprivileged_user(pocketbase_home: Path) -> None:
    data = pocketbase_home / "pb_data"
    assert data.stat().st_uid == 0, "mounted root-owned (docs.railway.com/volumes/reference, Caveats)"

    process, _ = _start(pocketbase_home, ENV)
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, flags=re.MULTILINE)
        assert uids is not None and {int(u) for u in uids.groups()} == {UNPRIVILEGED}, "PocketBase never runs as root"
        assert {p.stat().st_uid for p in [data, *data.rglob("*")]} == {UNPRIVILEGED}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_missing_superuser_password_stops_the_container_with_a_message(pocketbase_home: Path) -> None:
    env = {**os.environ, **ENV, "PB_HOME": str(pocketbase_home)}
    del env["PB_SUPERUSER_PASSWORD"]

    proc = subprocess.run([*_image_user(), "sh", str(pocketbase_home / "entrypoint.sh")], env=env, capture_output=True,
                          text=True, timeout=30, check=False)

    assert proc.returncode != 0
    assert "PB_SUPERUSER_PASSWORD is required" in proc.stderr


@pytest.mark.parametrize(("password", "length"), [("short", 5), ("x" * 80, 80)])
def test_an_engine_password_pocketbase_cannot_take_stops_the_container_naming_it(
        pocketbase_home: Path, password: str, length: int) -> None:
    """PocketBase wants 8 characters at least and bcrypt takes 72 bytes at most; its own errors
    ("Must be at least 8 character(s)", "bcrypt: password length exceeds 72 bytes") name neither the
    variable nor the account."""
    env = {**os.environ, **ENV, "PB_HOME": str(pocketbase_home), "PB_ENGINE_PASSWORD": password}

    proc = subprocess.run([*_image_user(), "sh", str(pocketbase_home / "entrypoint.sh")], env=env, capture_output=True,
                          text=True, timeout=30, check=False)

    assert proc.returncode == 2
    assert f"PB_ENGINE_PASSWORD is {length} bytes; expected 8 to 72" in proc.stderr
    assert password not in proc.stderr


@pytest.mark.parametrize("image", ["pocketbase", "engine"])
def test_the_dockerfiles_pass_hadolint(image: str) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"

    proc = subprocess.run([str(hadolint), str(PROJECT_DIR / "components" / image / "Dockerfile")],
                          capture_output=True, text=True, timeout=60, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr


def _settings(url: str, env: dict[str, str]) -> dict[str, object]:
    auth = _request(f"{url}/api/collections/_superusers/auth-with-password",
                    {"identity": env["PB_SUPERUSER_EMAIL"], "password": env["PB_SUPERUSER_PASSWORD"]})
    return _request(f"{url}/api/settings", token=str(auth["token"]))


def test_the_settings_of_the_latest_start_win_over_those_of_the_first(pocketbase_home: Path) -> None:
    """A changed cron, retention, bucket or rotated key reaches a database that already exists (#13.1)."""
    second = {**ENV, "PB_BACKUP_CRON": "30 4 * * *", "PB_BACKUP_MAX_KEEP": "7",
              "PB_BACKUP_S3_BUCKET": "acme-commerce-prod-dr", "PB_BACKUP_S3_ENDPOINT": "https://storage.googleapis.com",
              "PB_BACKUP_S3_REGION": "southamerica-east1", "PB_BACKUP_S3_ACCESS_KEY": "GOOG1EROTATED",
              "PB_BACKUP_S3_SECRET": "rotated-s3-secret-for-the-test"}
    for env in (ENV, second):
        process, url = _start(pocketbase_home, env)
        try:
            settings = _settings(url, env)
        finally:
            process.terminate()
            process.wait(timeout=10)

    backups = settings["backups"]
    assert isinstance(backups, dict)
    assert (backups["cron"], backups["cronMaxKeep"]) == ("30 4 * * *", 7)
    assert backups["s3"]["bucket"] == "acme-commerce-prod-dr"
    assert backups["s3"]["endpoint"] == "https://storage.googleapis.com"
    assert backups["s3"]["region"] == "southamerica-east1"
    assert backups["s3"]["accessKey"] == "GOOG1EROTATED"
    with sqlite3.connect(pocketbase_home / "pb_data" / "data.db") as db:
        stored = "".join(str(value) for (value,) in db.execute("SELECT value FROM _params"))
    assert "rotated-s3-secret-for-the-test" not in stored, "the rotated secret is encrypted at rest too"


def _engine_client(url: str, password: str = ENV["PB_ENGINE_PASSWORD"]) -> httpx.Client:
    auth = httpx.post(f"{url}/api/collections/{ENGINE_ACCOUNTS}/auth-with-password", timeout=10,
                      json={"identity": ENV["PB_ENGINE_EMAIL"], "password": password})
    assert auth.status_code == 200, auth.text
    return httpx.Client(base_url=url, headers={"Authorization": auth.json()["token"]}, timeout=10)


ORDER: dict[str, object] = {
    "tenant": "acme", "idempotency_key": "k1", "request_hash": "h", "affiliate_id": "ana", "status": "created",
    "commission_status": "pending", "currency": "BRL", "created_month": "2026-11", "total_cents": 1000,
    "commission_cents": 100, "lines": []}


def test_the_engine_account_works_the_engines_collections_and_is_refused_everything_else(running: str) -> None:
    """#11.2: the engine's own account, not the superuser: its collections, the batch API, nothing else."""
    with _engine_client(running) as pb:
        created = pb.post("/api/collections/orders/records", json=ORDER)
        assert created.status_code == 200, created.text
        order_id = created.json()["id"]
        assert pb.get(f"/api/collections/orders/records/{order_id}").status_code == 200
        product = pb.post("/api/collections/products/records",
                          json={"tenant": "acme", "sku": "MUG", "name": "Mug", "price_cents": 500, "active": True})
        assert product.status_code == 200, product.text
        transition = {"method": "POST", "url": "/api/collections/order_transitions/records",
                      "body": {"tenant": "acme", "order_id": order_id, "from_status": "created", "to_status": "paid"}}
        # The move the engine makes (services.Engine.transition); PocketBase's rules admit only moves of the lifecycle
        # (tests/engine/test_engine_account_rights.py).
        update = {"method": "PATCH", "url": f"/api/collections/orders/records/{order_id}",
                  "body": {"status": "paid", "commission_status": "approved"}}
        batch = pb.post("/api/batch", json={"requests": [transition, update]})
        assert batch.status_code == 200, "the batch API is on, for the engine's account: " + batch.text
        again = pb.post("/api/batch", json={"requests": [transition]})
        assert again.status_code == 400 and "validation_not_unique" in again.text, "idx_transitions_order_from"
        totals = pb.get("/api/collections/commission_totals/records").json()["items"]
        assert [(t["affiliate_id"], t["commission_status"]) for t in totals] == [("ana", "approved")]

        refused = {path: pb.get(path).status_code for path in (
            "/api/collections", "/api/collections/orders", "/api/settings", "/api/backups", "/api/logs",
            "/api/collections/_superusers/records", f"/api/collections/{ENGINE_ACCOUNTS}/records")}
        refused["POST /api/collections"] = pb.post("/api/collections", json={"name": "x", "type": "base"}).status_code
        refused["PATCH /api/settings"] = pb.patch("/api/settings", json={"batch": {"enabled": False}}).status_code
        refused["POST /api/backups"] = pb.post("/api/backups", json={}).status_code
        assert {path: status for path, status in refused.items() if status not in (403, 404)} == {}

    # A token PocketBase no longer accepts (expired, or of a rotated password) is answered 401, never as a guest's
    # empty list: the engine authenticates again on 401 and would otherwise take an empty answer for no records.
    for headers in ({}, {"Authorization": "a-stale-token"}):
        assert httpx.get(f"{running}/api/collections/orders/records", headers=headers).status_code == 401
        assert httpx.post(f"{running}/api/batch", headers=headers, json={"requests": []}).status_code == 401


def test_nobody_can_start_an_email_flow_for_the_engine_account(running: str) -> None:
    """The engine's account signs in with its password and nothing else. PocketBase lets anyone ask for a
    password reset or a verification of any auth record ("204 ... even if the email doesn't exist",
    pocketbase.io/docs/api-records); with SMTP set up one day, that would mail a reset link for the account
    that holds every order. OTP and OAuth2 sign-ins are not the engine's either."""
    email = {"email": ENV["PB_ENGINE_EMAIL"]}
    base = f"{running}/api/collections/{ENGINE_ACCOUNTS}"
    answers = {action: httpx.post(f"{base}/{action}", json=email).status_code for action in (
        "request-password-reset", "request-verification", "request-otp", "request-email-change")}
    answers["auth-with-oauth2"] = httpx.post(f"{base}/auth-with-oauth2", json={"provider": "google"}).status_code

    assert {action: code for action, code in answers.items() if code != 404} == {}
    with _engine_client(running) as pb:  # signing in with the password still works
        assert pb.get("/api/collections/orders/records").status_code == 200


def test_the_engine_account_takes_the_password_of_the_latest_start(pocketbase_home: Path) -> None:
    rotated = {**ENV, "PB_ENGINE_PASSWORD": "rotated-engine-password-for-the-test"}
    for env in (ENV, rotated):
        process, url = _start(pocketbase_home, env)
        try:
            with _engine_client(url, env["PB_ENGINE_PASSWORD"]) as pb:
                assert pb.post("/api/collections/affiliates/records",
                               json={"tenant": "acme", "affiliate_id": env["PB_ENGINE_PASSWORD"][:7]}).status_code == 200
            old = httpx.post(f"{url}/api/collections/{ENGINE_ACCOUNTS}/auth-with-password", timeout=10,
                             json={"identity": ENV["PB_ENGINE_EMAIL"], "password": ENV["PB_ENGINE_PASSWORD"]})
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert old.status_code == 400, "the rotated-out password is refused"
    with sqlite3.connect(pocketbase_home / "pb_data" / "data.db") as db:
        assert db.execute(f"SELECT COUNT(*) FROM {ENGINE_ACCOUNTS}").fetchone() == (1,), "exactly one account"
        assert db.execute("SELECT COUNT(*) FROM affiliates").fetchone() == (2,)


def test_a_database_an_older_engine_migrated_keeps_its_records_and_opens_to_the_engine_account(
        pocketbase_home: Path) -> None:
    """Before #11.2 every engine migrated with the superuser: superuser-only collections, fields without
    rules. The image's start brings them to the engine's schema, records and field ids kept."""
    from engine.schema import COLLECTIONS

    data = pocketbase_home / "pb_data"
    subprocess.run([str(pocketbase_home / "pocketbase"), "superuser", "upsert", ENV["PB_SUPERUSER_EMAIL"],
                    ENV["PB_SUPERUSER_PASSWORD"], f"--dir={data}", f"--hooksDir={data / 'none'}"], check=True,
                   capture_output=True)
    port = _free_port()
    old = subprocess.Popen([str(pocketbase_home / "pocketbase"), "serve", f"--http=127.0.0.1:{port}", f"--dir={data}",
                            f"--hooksDir={data / 'none'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/api/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = str(_request(f"{url}/api/collections/_superusers/auth-with-password",
                             {"identity": ENV["PB_SUPERUSER_EMAIL"], "password": ENV["PB_SUPERUSER_PASSWORD"]})["token"])
        admin = {"Authorization": token}
        for collection in COLLECTIONS:  # as the engine's migration created them
            body = {"type": "base", **collection, "listRule": None, "viewRule": None}
            assert httpx.post(f"{url}/api/collections", headers=admin, json=body).status_code == 200
        assert httpx.post(f"{url}/api/collections/orders/records", headers=admin, json=ORDER).status_code == 200
    finally:
        old.terminate()
        old.wait(timeout=10)

    process, url = _start(pocketbase_home, ENV)
    try:
        with _engine_client(url) as pb:
            orders = pb.get("/api/collections/orders/records").json()["items"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert [o["idempotency_key"] for o in orders] == ["k1"]


def test_the_engines_schema_in_the_image_is_the_engines_code() -> None:
    """pb_hooks/engine_schema.json is generated from the engine's collections (engine/schema.py)."""
    from engine.schema import render

    committed = (IMAGE_DIR / "pb_hooks" / "engine_schema.json").read_text()
    assert committed == render(), "regenerate with: python3 tools/dev.py generate"


def test_an_older_engines_migration_leaves_the_engine_accounts_rules(running: str) -> None:
    """An engine before #11.2 (a revision serving beside the canary, or rolled back to) still PATCHes its
    collections with the superuser as it starts, rules null: the rules stay the image's, and it still succeeds."""
    admin = {"Authorization": str(_request(f"{running}/api/collections/_superusers/auth-with-password", {
        "identity": ENV["PB_SUPERUSER_EMAIL"], "password": ENV["PB_SUPERUSER_PASSWORD"]})["token"])}
    for name, kind in (("orders", "base"), ("commission_totals", "view")):
        current = httpx.get(f"{running}/api/collections/{name}", headers=admin).json()
        body = {"listRule": None, "viewRule": None} | (
            {"createRule": None, "updateRule": None, "deleteRule": None, "fields": current["fields"]}
            if kind == "base" else {})
        assert httpx.patch(f"{running}/api/collections/{current['id']}", headers=admin, json=body).status_code == 200

    with _engine_client(running) as pb:
        assert pb.post("/api/collections/orders/records", json=ORDER).status_code == 200
        assert pb.get("/api/collections/commission_totals/records").status_code == 200
