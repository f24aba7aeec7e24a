"""The engine's PocketBase schema: its collections and their indexes, the account it signs in with,
and the batch API it needs, as one document PocketBase applies itself at every start (#11.2).

`python -m engine.schema` prints the document; it is committed in PocketBase's image as
`components/pocketbase/pb_hooks/engine_schema.json` (`tools/dev.py generate`; a test fails when it
drifts), and the image's hook `engine_schema.pb.js` imports it with `$app.importCollectionsByMarshaledJSON`
(PocketBase's ImportCollections: "for existing matching collections, the imported data is unmarshaled on
top of the existing model", matched by id or name; a field without an id gets `type + crc32(name)`, the id
the earlier REST migration gave it, so columns and records stay), enables the batch API and upserts the
engine's one account from PB_ENGINE_EMAIL / PB_ENGINE_PASSWORD. So the schema is applied with full rights
by PocketBase, before it serves, on docker, Railway and the VM alike, and no credential that can change it
travels on the network: the engine holds only its account, which its collections' API rules admit and
nothing else does (collections, settings, backups, logs and other auth collections are superuser-only).

Every collection carries the tenant. An order holds its lines and its commission in the same record, so one
write stores them together or not at all; a unique index on (tenant, idempotency_key) backs idempotent order
creation, and one on (order_id, from_status) in order_transitions lets exactly one status change out of each
status win (see `Engine.transition`), in a transaction of PocketBase's batch API.
"""

from __future__ import annotations

import json
from typing import Any

from engine.domain.model import COMMISSION_FOR, TRANSITIONS, OrderStatus

ACCOUNTS = "engine_accounts"
"""The auth collection holding the engine's one account."""
RULE = f'@request.auth.collectionName = "{ACCOUNTS}"'
"""The API rule of every engine collection: the engine's account only (superusers pass any rule). A request
without it is refused with 401 before the rule is read (engine_schema.pb.js), so a token PocketBase no longer
accepts never reads as a guest's empty list."""


def _text(name: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": "text", "required": required}


def _number(name: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "type": "number", "onlyInt": True, "required": required}


COLLECTIONS: list[dict[str, Any]] = [
    {"name": "products", "fields": [_text("tenant"), _text("sku"), _text("name"), _text("category", False),
                                    _number("price_cents"), {"name": "active", "type": "bool"}],
     "indexes": ["CREATE UNIQUE INDEX idx_products_tenant_sku ON products (tenant, sku)"]},
    # catalog_version: a token every admin write of the tenant's products, rules or affiliates sets in the same
    # transaction, which a cached catalog, rules or affiliates document must carry to judge an order
    # (services.Engine._documents): one record per tenant, its id derived from the slug (catalog_version_id).
    {"name": "catalog_versions", "fields": [_text("tenant"), _text("catalog_version")],
     "indexes": ["CREATE UNIQUE INDEX idx_catalog_versions_tenant ON catalog_versions (tenant)"]},
    # summary_version: a token every write to the affiliate's orders sets in the same transaction (#23), which
    # a cached summary must carry to be served (services.Engine.summary).
    {"name": "affiliates", "fields": [_text("tenant"), _text("affiliate_id"), _text("name", False),
                                      _text("summary_version", False)],
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


ORDER_UPDATABLE = ("status", "commission_status")
"""The only fields of an order the engine ever changes (services.Engine.transition's PATCH)."""

APPEND_ONLY = ("order_transitions",)
"""Collections whose records are history: created, never updated (nor deleted)."""


def _moves() -> list[tuple[OrderStatus, OrderStatus]]:
    """The lifecycle's (from, to) moves in the domain's order: created->paid, created->cancelled, paid->refunded."""
    return list(TRANSITIONS.values())


INITIAL = OrderStatus.CREATED
"""The status an order is created in: the one no move leads to (services.Engine.create_order)."""
assert {INITIAL} == set(OrderStatus) - {to for _, to in _moves()}


def _any(terms: list[str]) -> str:
    return "(" + " || ".join(terms) + ")"


def order_transition_rule() -> str:
    """The join that admits an order's update (#22 item 8): the transition record of this order (same tenant) out
    of its current status into the status the body sets must exist. The engine writes it in the same batch,
    first (services.Engine.transition), and a batch runs its requests in one transaction on one connection
    (pocketbase/pocketbase apis/batch.go: `app.RunInTransaction(func(txApp) ...)`, each request's event on
    `txApp`), so the rule's query sees the record the batch has just created; tested against the real binary
    (tests/engine/test_engine_account_rights.py).

    `@collection.<name>.<field>` joins a collection the record has no relation to, and `?=` is "any/at least one
    of" over the joined rows (https://pocketbase.io/docs/api-rules-and-filters/, "@collection.*" and the `?`
    operators); the terms on one `@collection.order_transitions` join one row, so all four must hold on the same
    record (a test has one order's record out of `created` and another's out of `paid`, and the move is refused).
    The lookup is by the unique index (order_id, from_status).
    """
    join = "@collection.order_transitions"
    return " && ".join([f"{join}.order_id ?= id", f"{join}.tenant ?= tenant", f"{join}.from_status ?= status",
                        f"{join}.to_status ?= @request.body.status"])


def update_rule(collection: str) -> str | None:
    """What the engine's account may update (#22 item 8): it only uses what it needs.

    - Nothing is ever deleted by the engine (services.Engine writes with POST, PATCH and batch PUT upserts),
      so every deleteRule is null: "only authorized superusers can perform the action"
      (https://pocketbase.io/docs/api-rules-and-filters/).
    - A transition is history: its updateRule is null too.
    - An order changes status only: any other field in an update body is refused, with
      `@request.body.<field>:isset = false` ("@request.body.* - the submitted body parameters ... :isset
      modifier checks whether the client submitted a specific field", same page). A refused update answers
      404, as an unmatched updateRule does.
    - And only along the lifecycle (domain.model TRANSITIONS, COMMISSION_FOR): `status` (the stored value) is
      a move's from-status, `@request.body.status` its to-status and `@request.body.commission_status` the
      to-status's commission status, both sent, and the move's transition record exists
      (`order_transition_rule`). That is exactly the PATCH body the engine sends, and engines of the previous
      version send the same one, so a rollout's mixed window is admitted.
    """
    if collection in APPEND_ONLY:
        return None
    if collection == "orders":
        fields = next(c for c in COLLECTIONS if c["name"] == "orders")["fields"]
        frozen = [str(f["name"]) for f in fields if f["name"] not in ORDER_UPDATABLE and f["type"] != "autodate"]
        moves = _any([f'(status = "{old.value}" && @request.body.status = "{new.value}" && '
                      f'@request.body.commission_status = "{COMMISSION_FOR[new].value}")' for old, new in _moves()])
        return " && ".join([RULE, *(f"@request.body.{name}:isset = false" for name in frozen), moves,
                            order_transition_rule()])
    return RULE


def create_rule(collection: str) -> str:
    """What the engine's account may create (#22 item 8).

    - An order is created `created`, its commission `pending` (services.Engine.create_order), never further
      along: a later status is reached only by a move with its transition.
    - A transition records a move of the lifecycle, of an order of its tenant.

      Not checked: that the order is in the move's from-status now. One written ahead (out of `paid` while the
      order is `created`) takes the unique (order_id, from_status) slot and so blocks the real move later (its
      batch breaks the index and the caller is told 409); it moves nothing, as the order's updateRule admits a
      move only out of the status the order is in. The check cannot be added without changing what a caller
      that loses a race is told: PocketBase checks a createRule before it inserts, so the loser's transition
      (read from the status the winner has just left) would be refused by the rule (400 without
      `validation_not_unique`) instead of breaking the index, which engines, this one and the previous version
      (services.Engine.transition, adapters' NotUnique), answer with 503 instead of 409
      (tests/engine/test_concurrency.py).
    """
    if collection == "orders":
        return " && ".join([RULE, f'@request.body.status = "{INITIAL.value}"',
                            f'@request.body.commission_status = "{COMMISSION_FOR[INITIAL].value}"'])
    if collection == "order_transitions":
        moves = _any([f'(@request.body.from_status = "{old.value}" && @request.body.to_status = "{new.value}")'
                      for old, new in _moves()])
        join = "@collection.orders"
        return " && ".join([RULE, moves, f"{join}.id ?= @request.body.order_id",
                            f"{join}.tenant ?= @request.body.tenant"])
    return RULE


def document() -> dict[str, Any]:
    """What engine_schema.pb.js applies: the collections in ImportCollections' format, the accounts' collection."""
    collections: list[dict[str, Any]] = [{
        "name": ACCOUNTS, "type": "auth", "fields": [],
        # Superuser-only: the account cannot list, read or change itself or another one.
        "listRule": None, "viewRule": None, "createRule": None, "updateRule": None, "deleteRule": None,
        "manageRule": None, "authRule": "",
        "passwordAuth": {"enabled": True, "identityFields": ["email"]},
        "oauth2": {"enabled": False}, "otp": {"enabled": False}, "mfa": {"enabled": False},
    }]
    for collection in COLLECTIONS:
        body: dict[str, Any] = {"type": "base", **collection, "listRule": RULE, "viewRule": RULE}
        if body["type"] == "base":  # a view has no create, update or delete rules: it cannot be written
            name = str(body["name"])
            body |= {"createRule": create_rule(name), "updateRule": update_rule(name), "deleteRule": None}
        collections.append(body)
    return {"accounts": ACCOUNTS, "collections": collections}


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


VIEW_FIELDS = ("tenant", "affiliate_id", "created_month", "commission_status", "cents_high", "cents_low", "orders")
"""The columns of the commission_totals view the engine filters on or reads (services.Engine.summary)."""


def required() -> dict[str, tuple[str, ...]]:
    """The collections the engine serves from and, for each, the fields it reads or writes: until PocketBase has
    them all it is not ready (#20.1, PocketBase.schema_problem), asked as the engine's account (their records,
    never /api/collections).

    Fields, not only collections (#23, second audit): PocketBase ignores a field its schema lacks in a write
    (an older image's schema without `affiliates.summary_version` stored every order and dropped the version,
    so cached summaries were served stale for their TTL), so a collection that exists is not enough.
    """
    return {str(collection["name"]): VIEW_FIELDS if collection.get("type") == "view"
            else tuple(str(field["name"]) for field in collection["fields"]) for collection in COLLECTIONS}


def version_fields() -> dict[str, tuple[str, ...]]:
    """The version tokens (services.Engine): text fields, which PocketBase must store as sent. Of another type
    (number, bool) PocketBase stores one constant for every token and the cache check is off, so the engine is
    not ready while it finds one (PocketBase._wrong_types) and refuses a write whose answer differs (#23,
    second audit)."""
    return {"catalog_versions": ("catalog_version",), "affiliates": ("summary_version",)}


if __name__ == "__main__":
    print(render(), end="")
