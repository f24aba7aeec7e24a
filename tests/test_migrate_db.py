"""`python -m infra migrate-db` (#26 item 3): a real PocketBase, seeded through the engine's own API, copied into a
real PostgreSQL (Debian's server, infra/ops/pg_local.py) and proved; a copy corrupted afterwards (a cent changed, a
row missing, a row of another tenant) is refused with the rows named; the pause makes PocketBase refuse the engine's
writes and the engine answer 503 writes_paused with Retry-After; the rollback lifts it."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine.dev import LocalStack, local_stack

from infra.ops import migrate_db
from infra.ops.migrate_db import Endpoints, Proof, run_step
from infra.ops.pg_local import Postgres, apply_schema, postgres_server
from tests.engine.conftest import EDGE_HEADERS, TenantKeys, engine_env, make_tenant


@dataclass
class Seeded:
    stack: LocalStack
    pg: Postgres
    endpoints: Endpoints
    acme: TenantKeys
    bravo: TenantKeys
    orders: dict[str, dict[str, Any]]
    """id -> the engine's answer"""


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _seed(client: httpx.Client, acme: TenantKeys, bravo: TenantKeys) -> dict[str, dict[str, Any]]:
    orders: dict[str, dict[str, Any]] = {}
    for keys, cap in ((acme, 0), (bravo, None)):  # a cap of 0 is a cap; no cap is NULL
        admin = keys.headers(admin=True)
        _ok(client.put("/v1/products/MUG", headers=admin, json={"name": "Mug ☕ |x|", "category": "home",
                                                                  "price_cents": 4500}))
        _ok(client.put("/v1/products/TEE", headers=admin, json={"name": "Tee", "category": "clothes",
                                                                  "price_cents": 1999, "active": False}))
        _ok(client.put("/v1/products/CAP", headers=admin, json={"name": 'Cap "new"', "price_cents": 1234}))
        _ok(client.put("/v1/affiliates/ana", headers=admin, json={"name": "Ana"}))
        _ok(client.put("/v1/affiliates/bia", headers=admin, json={"name": ""}))
        _ok(client.put("/v1/commission-rules", headers=admin, json={
            "default_rate_bps": 1000, "category_rates_bps": {"home": 1500, "a": 5},
            "product_rates_bps": {"CAP": 700}, "order_cap_cents": cap}))
        for affiliate, lines in (("ana", [{"sku": "MUG", "quantity": 3, "discount_cents": 7}]),
                                 ("ana", [{"sku": "CAP", "quantity": 1}, {"sku": "MUG", "quantity": 2}]),
                                 ("bia", [{"sku": "CAP", "quantity": 5}]),
                                 (None, [{"sku": "MUG", "quantity": 1}])):
            body: dict[str, Any] = {"lines": lines} | ({"affiliate_id": affiliate} if affiliate else {})
            order = _ok(client.post("/v1/orders", headers=keys.headers() | {"Idempotency-Key": uuid.uuid4().hex},
                                    json=body))
            orders[str(order["id"])] = order
        first, second, third, _ = list(orders)[-4:]
        _ok(client.post(f"/v1/orders/{first}/pay", headers=keys.headers()))
        _ok(client.post(f"/v1/orders/{first}/refund", headers=keys.headers()))
        _ok(client.post(f"/v1/orders/{second}/pay", headers=keys.headers()))
        _ok(client.post(f"/v1/orders/{third}/cancel", headers=keys.headers()))
    return orders


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    entry_a, acme = make_tenant("acme")
    entry_b, bravo = make_tenant("bravo")
    with local_stack(tmp_path_factory.mktemp("migrate"), [entry_a, entry_b], env=engine_env()) as stack, \
            postgres_server() as pg, httpx.Client(base_url=stack.url, timeout=10, headers=EDGE_HEADERS) as client:
        asyncio.run(apply_schema(pg))
        orders = _seed(client, acme, bravo)
        endpoints = Endpoints(f"http://127.0.0.1:{stack.pb_port}", stack.email, stack.password, pg.dsn())
        yield Seeded(stack, pg, endpoints, acme, bravo, orders)


def step(seeded: Seeded, name: str) -> migrate_db.Report:
    return asyncio.run(run_step(name, seeded.endpoints, drain_s=0.0, out=io.StringIO()))


def sql(seeded: Seeded, query: str, *args: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        connection = await migrate_db.connect_dsn(seeded.pg.dsn())
        try:
            rows: list[Any] = await connection.fetch(query, *args)
            return [dict(r) for r in rows]
        finally:
            await connection.close()

    return asyncio.run(run())


def test_the_copy_is_proved_and_holds_what_the_engine_answered(seeded: Seeded) -> None:
    copied = step(seeded, "copy")
    assert copied.ok and copied.written["orders"].inserted == len(seeded.orders)
    proof = step(seeded, "verify").proof
    assert isinstance(proof, Proof)
    assert proof.ok, proof.differences
    # Counted per collection and tenant, from both sides.
    assert proof.counts["orders"] == {"acme": (4, 4), "bravo": (4, 4)}
    assert proof.counts["order_transitions"] == {"acme": (4, 4), "bravo": (4, 4)}
    assert all(a == b for a, b in proof.checksums.values())
    assert proof.totals and all(a == b for a, b in proof.totals.values())
    # PocketBase's ids are the orders' ids, with the money the engine acknowledged, and an order without an
    # affiliate has NULL (PocketBase stores "").
    rows = {r["id"]: r for r in sql(seeded, "SELECT id, total_cents, commission_cents, affiliate_id, status, "
                                            "lines FROM orders")}
    for order_id, order in seeded.orders.items():
        assert rows[order_id]["total_cents"] == order["total_cents"]
        assert rows[order_id]["commission_cents"] == order["commission_cents"]
        assert rows[order_id]["affiliate_id"] == order["affiliate_id"]
        assert json.loads(rows[order_id]["lines"]) == order["lines"]
    caps = {r["tenant"]: r["order_cap_cents"] for r in sql(seeded, "SELECT tenant, order_cap_cents FROM "
                                                                   "commission_rules")}
    assert caps == {"acme": 0, "bravo": None}
    transitions = sql(seeded, "SELECT order_id, from_status, to_status FROM order_transitions")
    assert {t["order_id"] for t in transitions} <= set(seeded.orders)
    # Re-runnable: a second copy changes nothing.
    again = step(seeded, "copy")
    assert all(w.inserted == 0 and w.updated == 0 for w in again.written.values()), again.to_json()


def _differences(seeded: Seeded) -> list[str]:
    proof = step(seeded, "verify").proof
    assert proof is not None
    return proof.differences


def test_a_copy_one_cent_off_is_refused_naming_the_row(seeded: Seeded) -> None:
    step(seeded, "copy")
    order_id = next(iter(seeded.orders))
    sql(seeded, "UPDATE orders SET commission_cents = commission_cents + 1 WHERE id = $1", order_id)
    try:
        differences = _differences(seeded)
        assert f"orders {order_id}: differs in commission_cents" in differences
        assert any(d.startswith("commission totals acme/") for d in differences), differences
    finally:
        step(seeded, "copy")
    assert _differences(seeded) == []


def test_a_copy_missing_a_row_is_refused_naming_it(seeded: Seeded) -> None:
    step(seeded, "copy")
    row = sql(seeded, "SELECT order_id, from_status, tenant FROM order_transitions ORDER BY order_id LIMIT 1")[0]
    sql(seeded, "DELETE FROM order_transitions WHERE order_id = $1 AND from_status = $2", row["order_id"],
        row["from_status"])
    try:
        differences = _differences(seeded)
        assert f"order_transitions {row['order_id']}/{row['from_status']}: only in PocketBase" in differences
        assert any(d.startswith(f"order_transitions: tenant '{row['tenant']}' has") for d in differences)
    finally:
        step(seeded, "copy")
    assert _differences(seeded) == []


def test_a_row_of_another_tenant_is_refused_naming_it(seeded: Seeded) -> None:
    step(seeded, "copy")
    stray = secrets.token_hex(7)
    sql(seeded, "INSERT INTO orders SELECT $1, 'intruder', idempotency_key, request_hash, affiliate_id, 'created', "
                "'pending', currency, created_month, total_cents, commission_cents, lines, created, "
                "updated FROM orders LIMIT 1", stray)
    try:
        differences = _differences(seeded)
        assert f"orders {stray}: only in PostgreSQL" in differences
        assert "orders: tenant 'intruder' has 0 rows in PocketBase, 1 in PostgreSQL" in differences
    finally:
        sql(seeded, "DELETE FROM orders WHERE id = $1", stray)
    assert _differences(seeded) == []


def test_the_command_exits_1_on_a_difference_and_names_it(seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    step(seeded, "copy")
    pg = seeded.pg
    for name, value in {"POCKETBASE_URL": seeded.endpoints.pocketbase_url,
                        "PB_SUPERUSER_EMAIL": seeded.stack.email, "PB_SUPERUSER_PASSWORD": seeded.stack.password,
                        "POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_DB": pg.database,
                        "POSTGRES_MIGRATOR_USER": pg.migrator_user,
                        "POSTGRES_MIGRATOR_PASSWORD": pg.migrator_password}.items():
        monkeypatch.setenv(name, value)
    from infra.cli import main

    assert main(["migrate-db", "--stack", "integration", "--step", "verify"]) == 0
    sku = "MUG"
    sql(seeded, "UPDATE products SET price_cents = price_cents - 1 WHERE tenant = 'bravo' AND sku = $1", sku)
    try:
        capsys.readouterr()
        assert main(["migrate-db", "--stack", "integration", "--step", "verify"]) == 1
        captured = capsys.readouterr()
        assert f"DIFFERS products bravo/{sku}: differs in price_cents" in captured.err
        assert json.loads(captured.out)["proof"]["checksums"]["products"]["equal"] is False
        assert pg.migrator_password not in captured.out + captured.err
    finally:
        step(seeded, "copy")


def test_the_pause_refuses_the_engines_writes_with_503_retry_after_and_rollback_lifts_it(seeded: Seeded) -> None:
    client = httpx.Client(base_url=seeded.stack.url, timeout=10, headers=EDGE_HEADERS)
    keys = seeded.acme
    order_id = next(iter(seeded.orders))

    async def pause() -> None:
        pb = migrate_db.PocketBaseAdmin(seeded.endpoints.pocketbase_url, seeded.stack.email, seeded.stack.password)
        try:
            await migrate_db.pause(pb)
        finally:
            await pb.close()

    asyncio.run(pause())
    try:
        writes = [
            client.post("/v1/orders", headers=keys.headers() | {"Idempotency-Key": uuid.uuid4().hex},
                        json={"lines": [{"sku": "MUG", "quantity": 1}]}),
            client.post("/v1/orders", headers=keys.headers() | {"Idempotency-Key": uuid.uuid4().hex},
                        json={"affiliate_id": "ana", "lines": [{"sku": "MUG", "quantity": 1}]}),
            client.put("/v1/products/NEW", headers=keys.headers(admin=True), json={"name": "N", "price_cents": 1}),
        ]
        for response in writes:
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "writes_paused"
            assert int(response.headers["Retry-After"]) > 0
        # Reads go on.
        assert client.get(f"/v1/orders/{order_id}", headers=keys.headers()).status_code == 200
    finally:
        rolled = step(seeded, "rollback")
    assert rolled.ok
    created = client.post("/v1/orders", headers=keys.headers() | {"Idempotency-Key": uuid.uuid4().hex},
                          json={"lines": [{"sku": "MUG", "quantity": 1}]})
    assert created.status_code == 201, created.text
    seeded.orders[str(created.json()["id"])] = created.json()
    client.close()


def test_missing_credentials_are_named_with_where_they_come_from(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for name in migrate_db.CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    from infra.cli import main

    assert main(["migrate-db", "--stack", "prod", "--step", "copy"]) == 2
    err = capsys.readouterr().err
    for name in migrate_db.CREDENTIALS:
        assert f"error: {name} is not set" in err
    assert "database-superuser-password" in err and Path("Pulumi.prod.yaml").name


def test_the_cutover_brings_the_writes_made_since_the_copy_and_leaves_pocketbase_paused(seeded: Seeded) -> None:
    step(seeded, "copy")
    client = httpx.Client(base_url=seeded.stack.url, timeout=10, headers=EDGE_HEADERS)
    keys = seeded.bravo
    late = _ok(client.post("/v1/orders", headers=keys.headers() | {"Idempotency-Key": uuid.uuid4().hex},
                           json={"affiliate_id": "ana", "lines": [{"sku": "MUG", "quantity": 4}]}))
    paid = _ok(client.post(f"/v1/orders/{late['id']}/pay", headers=keys.headers()))
    try:
        cut = step(seeded, "cutover")
        assert cut.ok and cut.proof is not None and cut.proof.ok, cut.to_json()
        assert cut.written["orders"].inserted == 1 and cut.written["order_transitions"].inserted == 1
        row = sql(seeded, "SELECT total_cents, commission_cents, status FROM orders WHERE id = $1", late["id"])
        assert row == [{"total_cents": late["total_cents"], "commission_cents": late["commission_cents"],
                        "status": paid["status"]}]
        refused = client.post(f"/v1/orders/{late['id']}/refund", headers=keys.headers())
        assert refused.status_code == 503 and refused.json()["error"] == "writes_paused", refused.text
    finally:
        assert step(seeded, "rollback").ok
        client.close()
    seeded.orders[str(late["id"])] = paid


def test_a_mapping_bug_shows_because_pocketbases_side_is_canonicalised_from_the_raw_records(
        seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy's mapping (to_row feeds COPY) drops a product's name: the proof must not use that mapping for
    PocketBase's side, else the same bug is on both sides and the copy is 'proved'."""
    step(seeded, "copy")
    right = migrate_db.to_row

    def dropping_names(table: migrate_db.Table, record: Any) -> tuple[Any, ...]:
        row = right(table, record)
        if table.name != "products":
            return row
        return tuple("" if name == "name" else value for name, value in zip(table.names, row, strict=True))

    monkeypatch.setattr(migrate_db, "to_row", dropping_names)
    try:
        step(seeded, "copy")
        differences = _differences(seeded)
        assert "products acme/MUG: differs in name" in differences, differences
        assert "products bravo/TEE: differs in name" in differences
    finally:
        monkeypatch.setattr(migrate_db, "to_row", right)
        step(seeded, "copy")
    assert _differences(seeded) == []


def _cli_env(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    pg = seeded.pg
    for name, value in {"POCKETBASE_URL": seeded.endpoints.pocketbase_url,
                        "PB_SUPERUSER_EMAIL": seeded.stack.email, "PB_SUPERUSER_PASSWORD": seeded.stack.password,
                        "POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_DB": pg.database,
                        "POSTGRES_MIGRATOR_USER": pg.migrator_user,
                        "POSTGRES_MIGRATOR_PASSWORD": pg.migrator_password}.items():
        monkeypatch.setenv(name, value)


def test_verify_after_the_switch_fails_on_a_row_only_in_pocketbase_and_names_every_one(
        seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """After the switch, rows only in PostgreSQL (written there since) are expected; a row PocketBase has and
    PostgreSQL lacks is a write the move lost: exit 1 with each such row named, however many differ besides."""
    step(seeded, "copy")
    _cli_env(seeded, monkeypatch)
    from infra.cli import main

    strays = [secrets.token_hex(7) for _ in range(migrate_db.MAX_NAMED + 3)]
    for stray in strays:  # written on PostgreSQL after the switch
        sql(seeded, "INSERT INTO orders SELECT $1, tenant, $1, request_hash, affiliate_id, status, commission_status, "
                    "currency, created_month, total_cents, commission_cents, lines, created, updated FROM orders "
                    "WHERE affiliate_id IS NULL LIMIT 1", stray)
    try:
        capsys.readouterr()
        assert main(["migrate-db", "--stack", "integration", "--step", "verify", "--after-switch"]) == 0
        assert "LOST" not in capsys.readouterr().err
        lost = sorted(seeded.orders)[-1]
        sql(seeded, "DELETE FROM order_transitions WHERE order_id = $1", lost)
        sql(seeded, "DELETE FROM orders WHERE id = $1", lost)
        assert main(["migrate-db", "--stack", "integration", "--step", "verify", "--after-switch"]) == 1
        err = capsys.readouterr().err
        assert f"LOST orders {lost}: only in PocketBase" in err, err
    finally:
        sql(seeded, "DELETE FROM orders WHERE id = ANY($1::text[])", strays)
        step(seeded, "copy")
    assert _differences(seeded) == []


def test_the_superuser_password_hint_decodes_pulumis_secret_json() -> None:
    """A secret in `pulumi stack export --show-secrets` is {"plaintext": "<JSON>"} (infra/ops/tenant_keys.py): a
    string's JSON keeps its quotes unless decoded."""
    hint = migrate_db.CREDENTIALS["PB_SUPERUSER_PASSWORD"]
    assert ".plaintext | fromjson" in hint
    runbook = (Path(__file__).resolve().parent.parent / "docs/runbooks/migrate-db.md").read_text()
    assert ".outputs.result.plaintext')" not in runbook and ".plaintext | fromjson" in runbook
