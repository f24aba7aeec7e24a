"""The use cases: orders, commission summaries, catalog and admin, over PocketBase and Redis.

Every query is scoped to the caller's tenant; a record of another tenant is "not found", whatever
id the caller sends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict
from typing import Any

from engine import metrics
from engine.adapters.cache import Cache
from engine.adapters.pocketbase import NotUnique, PocketBase, quote
from engine.domain.model import (
    COMMISSION_FOR,
    CommissionRules,
    CommissionStatus,
    LineRequest,
    MonthlySummary,
    OrderStatus,
    Product,
    next_status,
    price_order,
    summarize,
)
from engine.registry import Tenant


class NotFound(Exception):
    pass


class IdempotencyConflict(Exception):
    pass


def order_view(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("id", "affiliate_id", "status", "commission_status", "currency",
                                             "total_cents", "commission_cents", "lines", "created")} | {
        "affiliate_id": record.get("affiliate_id") or None}


class Engine:
    def __init__(self, pocketbase: PocketBase, cache: Cache, summary_ttl_s: int, catalog_ttl_s: int) -> None:
        self.pb = pocketbase
        self.cache = cache
        self.summary_ttl_s = summary_ttl_s
        self.catalog_ttl_s = catalog_ttl_s

    # -- catalog and rules ------------------------------------------------------------------------

    async def catalog(self, tenant: Tenant) -> str:
        """The tenant's active products as JSON (served with an ETag); cached until a product changes."""
        generation = await self.cache.get_int("catalog_generation", f"catalog-gen:{tenant.slug}") or 0
        key = f"catalog:{tenant.slug}:g{generation}"
        cached = await self.cache.get("catalog", key)
        if cached is not None:
            return cached
        records = await self.pb.list("catalog", "products", f"tenant={quote(tenant.slug)} && active=true",
                                     fields="sku,name,category,price_cents", sort="sku")
        body = json.dumps({"currency": tenant.currency, "products": [
            {k: r[k] for k in ("sku", "name", "category", "price_cents")} for r in records]}, separators=(",", ":"))
        await self.cache.set("catalog", key, body, self.catalog_ttl_s)
        return body

    async def _products(self, tenant: Tenant, skus: set[str]) -> dict[str, Product]:
        clause = " || ".join(f"sku={quote(s)}" for s in sorted(skus))
        records = await self.pb.list("products", "products", f"tenant={quote(tenant.slug)} && ({clause})")
        return {r["sku"]: Product(r["sku"], r["name"], r.get("category") or "", int(r["price_cents"]),
                                  bool(r["active"])) for r in records}

    async def rules(self, tenant: Tenant) -> CommissionRules:
        record = await self.pb.first("rules", "commission_rules", f"tenant={quote(tenant.slug)}")
        if record is None:
            return CommissionRules()
        return CommissionRules(int(record.get("default_rate_bps") or 0), record.get("category_rates_bps") or {},
                               record.get("product_rates_bps") or {}, record.get("order_cap_cents") or None)

    async def put_rules(self, tenant: Tenant, rules: CommissionRules) -> CommissionRules:
        body = {"tenant": tenant.slug, **asdict(rules)}
        record = await self.pb.first("rules", "commission_rules", f"tenant={quote(tenant.slug)}")
        if record is None:
            await self.pb.create("rules", "commission_rules", body)
        else:
            await self.pb.update("rules", "commission_rules", record["id"], body)
        return rules

    async def put_product(self, tenant: Tenant, product: Product) -> Product:
        body = {"tenant": tenant.slug, **asdict(product)}
        record = await self.pb.first("products", "products", f"tenant={quote(tenant.slug)} && sku={quote(product.sku)}")
        if record is None:
            await self.pb.create("products", "products", body)
        else:
            await self.pb.update("products", "products", record["id"], body)
        await self.cache.incr("catalog_generation", f"catalog-gen:{tenant.slug}")
        return product

    async def put_affiliate(self, tenant: Tenant, affiliate_id: str, name: str) -> dict[str, str]:
        body = {"tenant": tenant.slug, "affiliate_id": affiliate_id, "name": name}
        record = await self.pb.first("affiliates", "affiliates",
                                     f"tenant={quote(tenant.slug)} && affiliate_id={quote(affiliate_id)}")
        if record is None:
            await self.pb.create("affiliates", "affiliates", body)
        else:
            await self.pb.update("affiliates", "affiliates", record["id"], body)
        return {"affiliate_id": affiliate_id, "name": name}

    # -- orders -------------------------------------------------------------------------------

    async def create_order(self, tenant: Tenant, idempotency_key: str, affiliate_id: str | None,
                           lines: list[LineRequest]) -> tuple[dict[str, Any], bool]:
        """Returns (order, created). The same key with the same request returns the first order."""
        request_hash = hashlib.sha256(json.dumps(
            {"affiliate_id": affiliate_id, "lines": [asdict(line) for line in lines]}, sort_keys=True).encode()
        ).hexdigest()
        existing = await self._by_idempotency_key(tenant, idempotency_key)
        if existing is not None:
            return self._replay(existing, request_hash), False
        if affiliate_id is not None and await self.pb.first(
                "affiliates", "affiliates",
                f"tenant={quote(tenant.slug)} && affiliate_id={quote(affiliate_id)}") is None:
            from engine.domain.model import DomainError

            raise DomainError("affiliate_id", f"{affiliate_id!r} is not an affiliate of this tenant")
        priced = price_order(affiliate_id, lines, await self._products(tenant, {line.sku for line in lines}),
                             await self.rules(tenant))
        now = dt.datetime.now(dt.UTC)
        body = {
            "tenant": tenant.slug, "idempotency_key": idempotency_key, "request_hash": request_hash,
            "affiliate_id": affiliate_id or "", "status": OrderStatus.CREATED.value,
            "commission_status": COMMISSION_FOR[OrderStatus.CREATED].value, "currency": tenant.currency,
            "created_month": now.strftime("%Y-%m"), "total_cents": priced.total_cents,
            "commission_cents": priced.commission_cents, "lines": [asdict(line) for line in priced.lines],
        }
        try:
            record = await self.pb.create("create_order", "orders", body)
        except NotUnique:
            # Two requests with the same key raced; the other one won.
            winner = await self._by_idempotency_key(tenant, idempotency_key)
            if winner is None:
                raise
            return self._replay(winner, request_hash), False
        metrics.ORDERS.labels(tenant.slug).inc()
        await self._invalidate_summary(tenant, affiliate_id)
        return order_view(record), True

    async def _by_idempotency_key(self, tenant: Tenant, key: str) -> dict[str, Any] | None:
        return await self.pb.first("idempotency", "orders",
                                   f"tenant={quote(tenant.slug)} && idempotency_key={quote(key)}")

    @staticmethod
    def _replay(record: dict[str, Any], request_hash: str) -> dict[str, Any]:
        if record["request_hash"] != request_hash:
            raise IdempotencyConflict("this Idempotency-Key was used for a different request")
        return order_view(record)

    async def order(self, tenant: Tenant, order_id: str) -> dict[str, Any]:
        record = await self.pb.get("get_order", "orders", order_id) if order_id.isalnum() else None
        if record is None or record["tenant"] != tenant.slug:
            raise NotFound(f"no order {order_id!r}")
        return record

    async def transition(self, tenant: Tenant, order_id: str, action: str) -> dict[str, Any]:
        record = await self.order(tenant, order_id)
        status = next_status(OrderStatus(record["status"]), action)
        updated = await self.pb.update("transition", "orders", record["id"], {
            "status": status.value, "commission_status": COMMISSION_FOR[status].value})
        await self._invalidate_summary(tenant, record.get("affiliate_id") or None)
        return order_view(updated)

    # -- summaries ------------------------------------------------------------------------------

    async def _invalidate_summary(self, tenant: Tenant, affiliate_id: str | None) -> None:
        """After the write: the next read for this affiliate misses the cache and sees the write."""
        if affiliate_id:
            await self.cache.incr("summary_generation", f"summary-gen:{tenant.slug}:{affiliate_id}")

    async def summary(self, tenant: Tenant, affiliate_id: str, month: str) -> dict[str, Any]:
        generation = await self.cache.get_int("summary_generation", f"summary-gen:{tenant.slug}:{affiliate_id}") or 0
        key = f"summary:{tenant.slug}:{affiliate_id}:{month}:g{generation}"
        cached = await self.cache.get("summary", key)
        if cached is not None:
            return json.loads(cached)
        records = await self.pb.list(
            "summary", "orders",
            f"tenant={quote(tenant.slug)} && affiliate_id={quote(affiliate_id)} && created_month={quote(month)}",
            fields="commission_status,commission_cents")
        result: MonthlySummary = summarize(affiliate_id, month, [
            (CommissionStatus(r["commission_status"]), int(r["commission_cents"])) for r in records])
        body = asdict(result) | {"currency": tenant.currency}
        await self.cache.set("summary", key, json.dumps(body), self.summary_ttl_s)
        return body
