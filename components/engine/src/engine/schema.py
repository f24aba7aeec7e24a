"""PocketBase collections and their indexes, created or brought up to date idempotently.

Every collection carries the tenant; its API rules are locked (superuser only: the engine). An order
holds its lines and its commission in the same record, so one write stores them together or not at
all; a unique index on (tenant, idempotency_key) backs idempotent order creation, and one on
(order_id, from_status) in order_transitions lets exactly one status change out of each status win
(see `Engine.transition`), in a transaction of PocketBase's batch API, which the migration enables.
"""

from __future__ import annotations

from typing import Any

from engine.adapters.pocketbase import PocketBase, PocketBaseError


def _text(name: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": "text", "required": required}


def _number(name: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "type": "number", "onlyInt": True, "required": required}


COLLECTIONS: list[dict[str, Any]] = [
    {"name": "products", "fields": [_text("tenant"), _text("sku"), _text("name"), _text("category", False),
                                    _number("price_cents"), {"name": "active", "type": "bool"}],
     "indexes": ["CREATE UNIQUE INDEX idx_products_tenant_sku ON products (tenant, sku)"]},
    {"name": "affiliates", "fields": [_text("tenant"), _text("affiliate_id"), _text("name", False)],
     "indexes": ["CREATE UNIQUE INDEX idx_affiliates_tenant_id ON affiliates (tenant, affiliate_id)"]},
    {"name": "commission_rules", "fields": [_text("tenant"), _number("default_rate_bps"),
                                            {"name": "category_rates_bps", "type": "json"},
                                            {"name": "product_rates_bps", "type": "json"},
                                            _number("order_cap_cents"), {"name": "has_order_cap", "type": "bool"}],
     "indexes": ["CREATE UNIQUE INDEX idx_rules_tenant ON commission_rules (tenant)"]},
    {"name": "orders", "fields": [_text("tenant"), _text("idempotency_key"), _text("request_hash"),
                                  _text("affiliate_id", False), _text("status"), _text("commission_status"),
                                  _text("currency"), _text("created_month"), _number("total_cents"),
                                  _number("commission_cents"), {"name": "lines", "type": "json"},
                                  {"name": "created", "type": "autodate", "onCreate": True, "onUpdate": False},
                                  {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True}],
     "indexes": ["CREATE UNIQUE INDEX idx_orders_tenant_idem ON orders (tenant, idempotency_key)",
                 "CREATE INDEX idx_orders_summary ON orders (tenant, affiliate_id, created_month)"]},
    {"name": "order_transitions", "fields": [_text("tenant"), _text("order_id"), _text("from_status"),
                                             _text("to_status"),
                                             {"name": "created", "type": "autodate", "onCreate": True,
                                              "onUpdate": False}],
     "indexes": ["CREATE UNIQUE INDEX idx_transitions_order_from ON order_transitions (order_id, from_status)"]},
    # An affiliate's monthly totals per commission status, summed by SQLite over idx_orders_summary. The
    # sums leave as text, in billions and the rest, so that they are exact at any size (services.view_cents).
    # `cents` is what engines before issue #15 read: it stays while a rollout has them serving beside this one.
    {"name": "commission_totals", "type": "view", "viewQuery": (
        "SELECT (tenant || '/' || affiliate_id || '/' || created_month || '/' || commission_status) AS id, "
        "tenant, affiliate_id, created_month, commission_status, "
        "CAST(SUM(commission_cents) AS INT) AS cents, "
        "CAST(SUM(CAST(commission_cents AS INTEGER) / 1000000000) AS TEXT) AS cents_high, "
        "CAST(SUM(CAST(commission_cents AS INTEGER) % 1000000000) AS TEXT) AS cents_low, "
        "CAST(COUNT(*) AS INT) AS orders "
        "FROM orders WHERE affiliate_id != '' "
        "GROUP BY tenant, affiliate_id, created_month, commission_status")},
]


async def migrate(pocketbase: PocketBase) -> list[str]:
    """Create missing collections, update existing ones to this schema. Returns what it did."""
    done: list[str] = []
    for collection in COLLECTIONS:
        body = {"type": "base", **collection, "listRule": None, "viewRule": None}
        if body["type"] == "base":  # a view has no create, update or delete rules: it cannot be written
            body |= {"createRule": None, "updateRule": None, "deleteRule": None}
        existing = await pocketbase.request("migrate", "GET", f"/api/collections/{collection['name']}")
        if existing.status_code == 404:
            response = await pocketbase.request("migrate", "POST", "/api/collections", json=body)
            if response.status_code in (200, 201):
                done.append(f"created {collection['name']}")
                continue
            # Every instance migrates as it starts: another one may have created it just now.
            existing = await pocketbase.request("migrate", "GET", f"/api/collections/{collection['name']}")
            if existing.status_code == 404:
                raise PocketBaseError(f"creating {collection['name']}: HTTP {response.status_code}: {response.text}")
        current = existing.json()
        if body["type"] == "base":
            # Keep the ids of fields that exist, so PocketBase updates them instead of recreating them.
            ids = {f["name"]: f["id"] for f in current.get("fields", [])}
            fields = [{**f, "id": ids[f["name"]]} if f["name"] in ids else f for f in collection["fields"]]
            body["fields"] = fields + [f for f in current.get("fields", []) if f.get("system")]
        response = await pocketbase.request("migrate", "PATCH", f"/api/collections/{current['id']}", json=body)
        if response.status_code != 200:
            raise PocketBaseError(f"updating {collection['name']}: HTTP {response.status_code}: {response.text}")
        done.append(f"updated {collection['name']}")
    done += await _enable_batch(pocketbase)
    return done


async def _enable_batch(pocketbase: PocketBase) -> list[str]:
    """Status changes are two writes in one transaction of the batch API, which PocketBase ships disabled."""
    response = await pocketbase.request("migrate", "GET", "/api/settings")
    if response.status_code != 200:
        raise PocketBaseError(f"reading the settings: HTTP {response.status_code}")
    batch: dict[str, Any] = response.json().get("batch") or {}
    enough = int(batch.get("maxRequests") or 0) >= 2
    if batch.get("enabled") and enough:
        return []
    change: dict[str, Any] = {"enabled": True} | ({} if enough else {"maxRequests": 50})
    response = await pocketbase.request("migrate", "PATCH", "/api/settings", json={"batch": change})
    if response.status_code != 200:
        raise PocketBaseError(f"enabling the batch API: HTTP {response.status_code}: {response.text}")
    return ["enabled the batch API"]
