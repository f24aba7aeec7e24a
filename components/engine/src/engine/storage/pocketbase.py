"""The order store on PocketBase, over its REST API as the engine's own account (adapters/pocketbase.py).

What services.Engine did itself before the storage port (#26), moved here unchanged: PocketBase filter strings,
its batch API for the writes that must be one transaction, and the check that a version token was stored as sent.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from engine.adapters.pocketbase import NotUnique, PocketBase, PocketBaseError, pocketbase_data, quote
from engine.domain.model import CommissionRules, CommissionStatus, Product
from engine.storage.port import NewOrder, Record

CENTS_SPLIT = 1_000_000_000
ORDER_FIELDS = ("tenant", "status", "commission_status", "currency", "total_cents", "commission_cents", "lines")
"""What an order's record must hold to be shown or changed (a 200 without them is not PocketBase's record)."""


def _order_cap(record: dict[str, Any]) -> int | None:
    """A cap of 0 is a cap: PocketBase stores an unset number as 0, so `has_order_cap` tells them apart.
    A record written before that field existed has a cap if its number is not 0."""
    cap = int(record.get("order_cap_cents") or 0)
    if record.get("has_order_cap"):
        return cap
    return cap or None


def _rules(record: dict[str, Any]) -> CommissionRules:
    return CommissionRules(int(record.get("default_rate_bps") or 0), dict(record.get("category_rates_bps") or {}),
                           dict(record.get("product_rates_bps") or {}), _order_cap(record))


def view_cents(group: dict[str, Any]) -> int:
    """A sum from the commission_totals view, exact: SQLite sums the billions and the rest apart as
    integers and hands them over as text, so neither passes through a 64-bit float nor overflows."""
    return int(group["cents_high"]) * CENTS_SPLIT + int(group["cents_low"])


def catalog_version_id(tenant: str) -> str:
    """The id of the tenant's catalog_versions record, derived from its slug so that every engine upserts the
    same one (PocketBase's batch `PUT /api/collections/{collection}/records`: "executed as update if bodyParams
    have a valid existing record id value, otherwise - create", pocketbase JS/Dart SDK `SubBatchService.upsert`;
    checked on 0.40.6). PocketBase's default record id is 15 characters of [a-z0-9]: hex is of them."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:15]


def _new_catalog_version(tenant: str) -> dict[str, Any]:
    """The batch request that gives the tenant's catalog, rules and affiliates a new, never used version."""
    return {"method": "PUT", "url": "/api/collections/catalog_versions/records",
            "body": {"id": catalog_version_id(tenant), "tenant": tenant, "catalog_version": secrets.token_hex(8)}}


def _new_summary_version(affiliate_record: str) -> dict[str, Any]:
    """The batch request that gives an affiliate's summaries a new, never used version (Engine.summary)."""
    return {"method": "PATCH", "url": f"/api/collections/affiliates/records/{affiliate_record}",
            "body": {"summary_version": secrets.token_hex(8)}}


class PocketBaseStore:
    """services.Engine's store on PocketBase (storage/port.py `Store`)."""

    name = "pocketbase"

    def __init__(self, pocketbase: PocketBase) -> None:
        self.pb = pocketbase

    async def close(self) -> None:
        await self.pb.close()

    async def schema_problem(self, wait_s: float | None = None) -> str | None:
        return await self.pb.schema_problem(wait_s)

    async def unready(self) -> str | None:
        return await self.pb.unready()

    # -- documents -----------------------------------------------------------------------------

    async def catalog_version(self, tenant: str) -> str:
        record = await self.pb.first("catalog_version", "catalog_versions", f"tenant={quote(tenant)}",
                                     fields="catalog_version")
        return "" if record is None else str(record["catalog_version"])

    async def products(self, tenant: str) -> list[Product]:
        """(KeyError, ValueError or TypeError: PocketBase answered another shape: PocketBaseError.)"""
        records = await self.pb.list("catalog", "products", f"tenant={quote(tenant)} && active=true",
                                     fields="sku,name,category,price_cents", sort="sku")
        with pocketbase_data("catalog"):
            return [Product(str(r["sku"]), str(r["name"]), str(r["category"] or ""), int(r["price_cents"]))
                    for r in records]

    async def rules(self, tenant: str) -> CommissionRules | None:
        record = await self.pb.first("rules", "commission_rules", f"tenant={quote(tenant)}")
        with pocketbase_data("rules"):
            return None if record is None else _rules(record)

    async def affiliates(self, tenant: str) -> dict[str, str]:
        records = await self.pb.list("affiliates", "affiliates", f"tenant={quote(tenant)}", fields="id,affiliate_id")
        with pocketbase_data("affiliates"):
            return {str(r["affiliate_id"]): str(r["id"]) for r in records}

    async def affiliate_ref(self, tenant: str, affiliate_id: str) -> str | None:
        """The affiliate's record id, from PocketBase (one row by its unique index)."""
        record = await self.pb.first("affiliates", "affiliates",
                                     f"tenant={quote(tenant)} && affiliate_id={quote(affiliate_id)}", fields="id")
        return None if record is None else str(record["id"])

    # -- admin writes ----------------------------------------------------------------------------

    async def _admin_write(self, tenant: str, operation: str, collection: str, filter_: str,
                           body: dict[str, Any]) -> dict[str, Any] | None:
        """Create or update, with a new catalog version for the tenant in the same transaction (see the cached
        documents in services.Engine); the record as it was before (None if it is created), for the audit event."""
        for attempt in (1, 2):
            record = await self.pb.first(operation, collection, filter_)
            url = f"/api/collections/{collection}/records"
            write = ({"method": "POST", "url": url, "body": body} if record is None
                     else {"method": "PATCH", "url": f"{url}/{record['id']}", "body": body})
            version = _new_catalog_version(tenant)
            try:
                results = await self.pb.batch(operation, [write, version])
            except NotUnique:
                # Two first writes of the same record at once: the other one created it (its unique index
                # refused this one, whose transaction rolled back whole), so this one is now an update
                # (#23, second audit: it was a 500). Once: a second refusal is not that race.
                if attempt == 2:
                    raise PocketBaseError(f"PocketBase {operation}: the write broke a unique index twice") from None
                continue
            self._stored_as_sent(operation, tenant, "catalog_versions", "catalog_version", results[1], version)
            return record
        raise AssertionError("unreachable")

    def _stored_as_sent(self, operation: str, tenant: str, collection: str, field: str, stored: dict[str, Any],
                        request: dict[str, Any]) -> None:
        """The version token as PocketBase stored it (the batch's answer) must be the one sent, in the tenant's
        record: a field of another type stores one constant for every token (a number 0, a bool false), and the
        check that no order is judged against older data (or no summary served older) would be off (#23, second
        audit). Then the write is not acknowledged (503; it is stored, and a retry with the same key answers
        it), and the engine is not ready, naming the field, until its schema is PocketBase's again."""
        sent = request["body"][field]
        got, tenant_of = stored.get(field), stored.get("tenant")  # a dict: PocketBase.batch checks each answer
        if got != sent or tenant_of != tenant:
            problem = (f"PocketBase {operation}: {collection}.{field} stored {str(got)[:20]!r} of tenant "
                       f"{str(tenant_of)[:40]!r} for the token sent (a field of another type? it must be text)")
            self.pb.schema_broken(problem)
            raise PocketBaseError(problem)

    async def upsert_rules(self, tenant: str, rules: CommissionRules) -> CommissionRules | None:
        before = await self._admin_write(tenant, "rules", "commission_rules", f"tenant={quote(tenant)}",
                                         {"tenant": tenant, "default_rate_bps": rules.default_rate_bps,
                                          "category_rates_bps": dict(rules.category_rates_bps),
                                          "product_rates_bps": dict(rules.product_rates_bps),
                                          "order_cap_cents": rules.order_cap_cents or 0,
                                          "has_order_cap": rules.order_cap_cents is not None})
        with pocketbase_data("rules"):
            return None if before is None else _rules(before)

    async def upsert_product(self, tenant: str, product: Product) -> dict[str, Any] | None:
        fields = {"sku": product.sku, "name": product.name, "category": product.category,
                  "price_cents": product.price_cents, "active": product.active}
        before = await self._admin_write(tenant, "products", "products",
                                         f"tenant={quote(tenant)} && sku={quote(product.sku)}",
                                         {"tenant": tenant, **fields})
        return None if before is None else {k: before.get(k) for k in fields}

    async def upsert_affiliate(self, tenant: str, affiliate_id: str, name: str) -> dict[str, Any] | None:
        before = await self._admin_write(tenant, "affiliates", "affiliates",
                                         f"tenant={quote(tenant)} && affiliate_id={quote(affiliate_id)}",
                                         {"tenant": tenant, "affiliate_id": affiliate_id, "name": name})
        return None if before is None else {k: before.get(k) for k in ("affiliate_id", "name")}

    # -- orders -----------------------------------------------------------------------------------

    async def create_order(self, tenant: str, order: NewOrder, affiliate_ref: str | None) -> Record:
        body = {
            "tenant": tenant, "idempotency_key": order.idempotency_key, "request_hash": order.request_hash,
            "affiliate_id": order.affiliate_id or "", "status": order.status,
            "commission_status": order.commission_status, "currency": order.currency,
            "created_month": order.created_month, "total_cents": order.total_cents,
            "commission_cents": order.commission_cents, "lines": order.lines,
        }
        if affiliate_ref is None:
            return await self.pb.create("create_order", "orders", body)
        # the order and its affiliate's new summary version, in one transaction
        version = _new_summary_version(affiliate_ref)
        record, stored = await self.pb.batch("create_order", [
            {"method": "POST", "url": "/api/collections/orders/records", "body": body}, version])
        self._stored_as_sent("create_order", tenant, "affiliates", "summary_version", stored, version)
        return record

    async def order_by_key(self, tenant: str, idempotency_key: str) -> Record | None:
        return await self.pb.first("idempotency", "orders",
                                   f"tenant={quote(tenant)} && idempotency_key={quote(idempotency_key)}")

    async def order(self, tenant: str, order_id: str) -> Record | None:
        record = await self.pb.get("get_order", "orders", order_id, ORDER_FIELDS)
        if record is None or record["tenant"] != tenant:
            return None
        return record

    async def order_for_change(self, tenant: str, order_id: str) -> tuple[Record, str | None] | None:
        """The order, then its affiliate's record id: two reads (a PocketBase filter cannot join them here)."""
        record = await self.order(tenant, order_id)
        if record is None:
            return None
        affiliate_id = record.get("affiliate_id") or None
        return record, None if affiliate_id is None else await self.affiliate_ref(tenant, str(affiliate_id))

    async def transition(self, tenant: str, order: Record, from_status: str, to_status: str,
                         commission_status: str, affiliate_ref: str | None) -> Record:
        """One PocketBase transaction (its batch API): record that the order leaves its status, then update the
        order. `order_transitions` has a unique index on (order, from status), and an order leaves each status at
        most once (created -> paid -> refunded, created -> cancelled), so of two changes read from the same status
        the second transaction breaks the index and rolls back whole (NotUnique).

        Not a pb_hooks route: PocketBase's image would have to ship the engine's hook, and the two be
        deployed in step. Not `UPDATE ... WHERE status = ...` through `/api/sql`, which would be cheaper:
        PocketBase's v0.39.0 changelog says its SQL console is "intended for one-off analytic queries
        ... and not as the primary interface for interacting with your PocketBase data". The batch
        costs PocketBase about 0.5 ms of CPU more than the single PATCH it replaces."""
        versions = [] if affiliate_ref is None else [_new_summary_version(affiliate_ref)]
        updated = await self.pb.batch("transition", [
            {"method": "POST", "url": "/api/collections/order_transitions/records",
             "body": {"tenant": tenant, "order_id": order["id"], "from_status": from_status, "to_status": to_status}},
            {"method": "PATCH", "url": f"/api/collections/orders/records/{order['id']}",
             "body": {"status": to_status, "commission_status": commission_status}},
            *versions])
        for version in versions:
            self._stored_as_sent("transition", tenant, "affiliates", "summary_version", updated[2], version)
        return updated[1]

    # -- summaries ----------------------------------------------------------------------------------

    async def summary_version(self, tenant: str, affiliate_id: str) -> str | None:
        record = await self.pb.first("summary_version", "affiliates",
                                     f"tenant={quote(tenant)} && affiliate_id={quote(affiliate_id)}",
                                     fields="summary_version")
        return None if record is None else str(record.get("summary_version") or "")

    async def summary_groups(self, tenant: str, affiliate_id: str, month: str
                             ) -> list[tuple[CommissionStatus, int, int]]:
        # At most three rows: SQLite sums the month's orders (the commission_totals view).
        groups = await self.pb.list(
            "summary", "commission_totals",
            f"tenant={quote(tenant)} && affiliate_id={quote(affiliate_id)} && created_month={quote(month)}",
            fields="commission_status,cents_high,cents_low,orders")
        with pocketbase_data("summary"):
            return [(CommissionStatus(g["commission_status"]), view_cents(g), int(g["orders"])) for g in groups]
