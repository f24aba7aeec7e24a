"""`python -m engine dev` on a fresh machine (#25.4): a missing binary is named with the command that installs
it, never a traceback; the README's first order, run with curl as a newcomer would, earns the demo tenant's
affiliate a commission; `/docs` serves the API's reference."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_engine_dev_without_redis_server_names_it_and_how_to_install_it(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with PocketBase on it and no redis-server, as on a fresh machine
    bare.mkdir()
    pocketbase = shutil.which("pocketbase") or str(Path(sys.executable).parent / "pocketbase")
    (bare / "pocketbase").symlink_to(pocketbase)
    result = subprocess.run([sys.executable, "-m", "engine", "dev", "--data", str(tmp_path / "data")],
                            env={**os.environ, "PATH": str(bare)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "redis-server" in result.stderr and "apt-get install -y redis-server" in result.stderr, result.stderr
    assert not (tmp_path / "data" / "pb").exists(), "nothing is started before the check"


@contextmanager
def engine_dev(data: Path, *options: str) -> Generator[dict[str, Any], None, None]:
    process = subprocess.Popen([sys.executable, "-m", "engine", "dev", "--data", str(data), *options],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def readme_first_order() -> str:
    """The shell block under the README's 'A first order' heading, as a newcomer would paste it."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### A first order", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README shows the first order as a ```sh block"
    return block.group(1)


@pytest.mark.parametrize("storage", ["pocketbase", "postgres"])
def test_the_readmes_first_order_earns_the_demo_affiliate_a_commission(tmp_path: Path, storage: str) -> None:
    """On either store: `engine dev --storage postgres` runs a local PostgreSQL, migrated as its own step (#26)."""
    with engine_dev(tmp_path, "--storage", storage) as dev:
        assert storage in httpx.get(f"{dev['url']}/readyz", timeout=10).json()["checks"]
        env = {**os.environ, "URL": dev["url"], "API_KEY": dev["api_key"], "ADMIN_KEY": dev["admin_key"]}
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_first_order()], env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        # The demo tenant's catalog and rules as the README documents them: a product at R$ 59,90 and a default
        # rate of 10 %, so one paid order of two earns 2 x 5990 x 10 % = 1198 cents, half-even.
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        assert summary["approved_cents"] + summary["pending_cents"] == 1198, summary
        assert summary["order_count"] == 1


def test_engine_dev_serves_the_api_reference_at_docs(tmp_path: Path) -> None:
    with engine_dev(tmp_path) as dev:
        assert dev["docs"] == f"{dev['url']}/docs"
        page = httpx.get(dev["docs"])
        assert page.status_code == 200 and "swagger" in page.text.lower()
        spec = httpx.get(f"{dev['url']}/openapi.json").json()
        assert "/v1/orders" in spec["paths"]


@pytest.mark.parametrize("setting", ["", "0"])
def test_a_deployed_engine_serves_no_swagger_page(setting: str) -> None:
    from engine.settings import Settings

    kwargs: dict[str, Any] = {"pocketbase_url": "http://127.0.0.1:1", "pocketbase_email": "e@x.io",
                              "pocketbase_password": "a-real-password", "redis_url": "redis://:p@127.0.0.1:1/0",
                              "tenants_json": "[]"}
    if setting:
        kwargs["api_docs"] = setting == "1"
    assert Settings(**kwargs).api_docs is False
