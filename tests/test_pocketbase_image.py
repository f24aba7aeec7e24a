"""The PocketBase image's entrypoint and migration, run with the real PocketBase binary: the
superuser is created from the environment, backups are configured daily with S3 storage (C7), and
the settings holding the S3 secret are encrypted at rest (S4). The Dockerfile passes hadolint."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

IMAGE_DIR = PROJECT_DIR / "components" / "pocketbase"
POCKETBASE = Path(sys.executable).parent / "pocketbase"
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


@pytest.fixture
def pocketbase_home(tmp_path: Path) -> Path:
    """The image's /pb laid out in a temporary directory, with the real binary."""
    (tmp_path / "pocketbase").symlink_to(POCKETBASE)
    shutil.copytree(IMAGE_DIR / "pb_migrations", tmp_path / "pb_migrations")
    return tmp_path


@pytest.fixture
def running(pocketbase_home: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, **ENV, "PB_HOME": str(pocketbase_home), "PB_HTTP": f"127.0.0.1:{port}"}
    process = subprocess.Popen(["sh", str(IMAGE_DIR / "entrypoint.sh")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _request(f"{url}/api/health")
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"PocketBase did not start: {process.stdout.read() if process.stdout else ''}")
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


def test_a_missing_superuser_password_stops_the_container_with_a_message(pocketbase_home: Path) -> None:
    env = {**os.environ, **ENV, "PB_HOME": str(pocketbase_home)}
    del env["PB_SUPERUSER_PASSWORD"]

    proc = subprocess.run(["sh", str(IMAGE_DIR / "entrypoint.sh")], env=env, capture_output=True, text=True,
                          timeout=30, check=False)

    assert proc.returncode != 0
    assert "PB_SUPERUSER_PASSWORD is required" in proc.stderr


@pytest.mark.parametrize("image", ["pocketbase", "engine"])
def test_the_dockerfiles_pass_hadolint(image: str) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"

    proc = subprocess.run([str(hadolint), str(PROJECT_DIR / "components" / image / "Dockerfile")],
                          capture_output=True, text=True, timeout=60, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr
