#!/usr/bin/env python3
"""What a summary cache miss costs as an affiliate's month fills up: real PocketBase, real Redis.

For 100, 1,000 and 10,000 orders of one affiliate in one month, it times (median of `--repeat`):
- listing the orders themselves, page by page, and summing in Python (what the engine did);
- listing the `commission_totals` view, where SQLite sums them (what the engine does);
- `GET /v1/affiliates/{id}/commissions` right after a write, so Redis misses (the engine, end to end).

    .venv/bin/python bench/summary_miss.py [--sizes 100 1000 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from engine.adapters.pocketbase import PocketBase, quote
from engine.dev import LocalStack, demo_tenant, local_stack
from engine.services import view_cents

MONTH = dt.datetime.now(dt.UTC).strftime("%Y-%m")
STATUSES = ("pending", "approved", "reversed")


async def add_orders(stack: LocalStack, tenant: str, count: int) -> None:
    """Orders straight into PocketBase through its batch API: seeding 10,000 through the engine takes minutes."""
    pocketbase = PocketBase(stack.env["POCKETBASE_URL"], stack.email, stack.password, timeout_s=60)
    try:
        (await pocketbase.request("bench", "PATCH", "/api/settings",
                                  json={"batch": {"enabled": True, "maxRequests": 500}})).raise_for_status()
        for start in range(0, count, 500):
            requests = [{"method": "POST", "url": "/api/collections/orders/records", "body": {
                "tenant": tenant, "idempotency_key": uuid.uuid4().hex, "request_hash": "bench", "affiliate_id": "aff",
                "status": "created", "commission_status": STATUSES[i % 3], "currency": "BRL", "created_month": MONTH,
                "total_cents": 1000, "commission_cents": 50, "lines": []}}
                for i in range(start, min(count, start + 500))]
            (await pocketbase.request("bench", "POST", "/api/batch", json={"requests": requests})).raise_for_status()
    finally:
        await pocketbase.close()


async def median_ms(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    times: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def measure(stack: LocalStack, tenant: str, api_key: str, repeat: int) -> tuple[float, float, float]:
    pocketbase = PocketBase(stack.env["POCKETBASE_URL"], stack.email, stack.password)
    where = f"tenant={quote(tenant)} && affiliate_id={quote('aff')} && created_month={quote(MONTH)}"

    async def records() -> int:
        rows = await pocketbase.list("bench", "orders", where, fields="commission_status,commission_cents")
        return sum(int(r["commission_cents"]) for r in rows)

    async def view() -> int:
        rows = await pocketbase.list("bench", "commission_totals", where,
                                     fields="commission_status,cents_high,cents_low,orders")
        return sum(view_cents(r) for r in rows)

    assert await records() == await view(), "both ways must agree"
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=60) as engine:
        async def miss() -> None:
            # A write invalidates the affiliate's summaries; the read after it misses the cache.
            (await engine.post("/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex},
                               json={"affiliate_id": "aff", "lines": [{"sku": "SKU", "quantity": 1}]})
             ).raise_for_status()
            start = time.perf_counter()
            (await engine.get(f"/v1/affiliates/aff/commissions?month={MONTH}")).raise_for_status()
            times.append((time.perf_counter() - start) * 1000)

        times: list[float] = []
        for _ in range(repeat):
            await miss()
        engine_ms = statistics.median(times)
    result = (await median_ms(records, repeat), await median_ms(view, repeat), engine_ms)
    await pocketbase.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="orders in the month")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    tenant, api_key, admin_key = demo_tenant()
    print(f"{'orders':>7} {'list orders ms':>15} {'view ms':>8} {'ratio':>6} {'engine miss ms':>15}")
    with tempfile.TemporaryDirectory() as tmp, local_stack(Path(tmp), [tenant]) as stack:
        with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
            admin.put("/v1/products/SKU", json={"name": "Product", "price_cents": 1000}).raise_for_status()
            admin.put("/v1/affiliates/aff", json={"name": "Affiliate"}).raise_for_status()
        present = 0
        for size in sorted(args.sizes):
            asyncio.run(add_orders(stack, str(tenant["slug"]), size - present))
            present = size
            listed, viewed, engine = asyncio.run(measure(stack, str(tenant["slug"]), api_key, args.repeat))
            present += args.repeat  # the engine misses wrote orders too
            print(f"{size:>7,} {listed:>15.1f} {viewed:>8.1f} {listed / viewed:>5.0f}x {engine:>15.1f}")


if __name__ == "__main__":
    main()
