"""Admin actions are written as structured audit events (#12, S5): one JSON line each on the engine's
output, with the tenant, the key's id (never the key), what changed, and the record before and after.
The cloud stacks keep that output 90 days (Cloud Logging's bucket, Railway's logs drained to Loki)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine.dev import LocalStack, local_stack
from engine.registry import key_hash

from tests.engine.conftest import EDGE_HEADERS, TenantKeys, engine_env, make_tenant


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, TenantKeys, Path]]:
    tmp = tmp_path_factory.mktemp("audit")
    entry, keys = make_tenant("acme")
    with local_stack(tmp, [entry], env=engine_env(), log=tmp / "engine.log") as stack:
        yield stack, keys, tmp / "engine.log"


def _events(log: Path) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "audit":
            events.append(record)
    return events


def test_each_admin_write_is_an_audit_event_with_before_after_and_what_changed(
    audited: tuple[LocalStack, TenantKeys, Path],
) -> None:
    stack, keys, log = audited
    admin = keys.headers(admin=True)
    with httpx.Client(base_url=stack.url, timeout=10, headers=EDGE_HEADERS) as client:
        assert client.put("/v1/products/TEA", headers=admin, json={"name": "Tea", "category": "food",
                                                                    "price_cents": 500}).status_code == 200
        assert client.put("/v1/products/TEA", headers=admin, json={"name": "Tea", "category": "food",
                                                                    "price_cents": 650}).status_code == 200
        assert client.put("/v1/affiliates/ana", headers=admin, json={"name": "Ana"}).status_code == 200
        assert client.put("/v1/commission-rules", headers=admin, json={"default_rate_bps": 500}).status_code == 200
        assert client.put("/v1/commission-rules", headers=admin, json={
            "default_rate_bps": 450, "category_rates_bps": {"food": 250}}).status_code == 200

    events = _events(log)
    key_id = key_hash(keys.admin)[:19]

    assert [(e["action"], e["target"]) for e in events] == [
        ("product.put", "TEA"), ("product.put", "TEA"), ("affiliate.put", "ana"), ("commission_rules.put", "acme"),
        ("commission_rules.put", "acme")]
    assert all(e["tenant"] == "acme" and e["key_id"] == key_id and e["severity"] == "NOTICE" and e["time"]
               for e in events)
    created, repriced = events[0], events[1]
    assert created["before"] is None
    assert created["after"] == {"sku": "TEA", "name": "Tea", "category": "food", "price_cents": 500, "active": True}
    assert repriced["before"]["price_cents"] == 500 and repriced["after"]["price_cents"] == 650
    assert repriced["changed"] == ["price_cents"]
    assert events[2]["after"] == {"affiliate_id": "ana", "name": "Ana"}
    assert events[4]["changed"] == ["category_rates_bps", "default_rate_bps"]
    assert events[4]["before"]["default_rate_bps"] == 500 and events[4]["after"]["default_rate_bps"] == 450


def test_no_key_is_ever_written_to_the_engines_output(audited: tuple[LocalStack, TenantKeys, Path]) -> None:
    stack, keys, log = audited
    with httpx.Client(base_url=stack.url, timeout=10, headers=EDGE_HEADERS) as client:
        client.put("/v1/affiliates/bia", headers=keys.headers(admin=True), json={"name": "Bia"})
        client.put("/v1/affiliates/bia", headers=keys.headers(), json={"name": "Bia"})  # 403: no write, no event

    text = log.read_text()
    assert keys.admin not in text and keys.api not in text
    assert [e["target"] for e in _events(log)].count("bia") == 1
