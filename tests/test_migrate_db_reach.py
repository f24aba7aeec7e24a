"""How migrate-db reaches prod's PocketBase (audit of #26 item 3): not through the VM's TLS port. The image's TLS
proxy forwards from 127.0.0.2 and PocketBase serves superusers only to 127.0.0.1 (components/pocketbase/tlsproxy.py,
pb_hooks/superuser_loopback.pb.js, #22 item 7), so migrate-db's superuser is refused there even with the stack's
certificate pinned; only PocketBase's own loopback listener, inside its container's network, signs it in. The
runbook forwards that listener (docs/runbooks/migrate-db.md, "Before the day" step 2)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from infra.ops.migrate_db import PocketBaseAdmin
from tests.test_pocketbase_image import ENV, pocketbase_home
from tests.test_pocketbase_tls import Served, served

__all__ = ["pocketbase_home", "served"]  # the fixtures, used by name


async def _records(url: str, verify: ssl.SSLContext | bool) -> int:
    pb = PocketBaseAdmin(url, ENV["PB_SUPERUSER_EMAIL"], ENV["PB_SUPERUSER_PASSWORD"], verify=verify, timeout_s=10)
    try:
        return len(await pb.records("_superusers"))
    finally:
        await pb.close()


def test_migrate_dbs_superuser_is_refused_through_the_tls_port_and_signed_in_on_pocketbases_loopback(
        served: Served, pocketbase_home: Path) -> None:
    pinned = ssl.create_default_context(cadata=served.cert)
    with pytest.raises(RuntimeError, match=r"refused the superuser .*HTTP 403"):
        asyncio.run(_records(f"https://{served.address}:{served.tls_port}", pinned))
    assert asyncio.run(_records(f"http://127.0.0.1:{served.loopback_port}", True)) >= 1
