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
}


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
