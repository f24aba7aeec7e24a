"""The use cases: orders, commission summaries, catalog and admin, over the order store (storage/port.py: PocketBase
or PostgreSQL) and Redis.

Every query is scoped to the caller's tenant; a record of another tenant is "not found", whatever
id the caller sends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import time
from dataclasses import asdict
from typing import Any

from engine import audit, metrics
from engine.adapters.cache import Cache
from engine.adapters.cloudflare import CatalogPurger
from engine.domain.model import (
    COMMISSION_FOR,
    TRANSITIONS,
    CommissionRules,
    DomainError,
    LineRequest,
    MonthlySummary,
    OrderStatus,
    Product,
    TransitionError,
    next_status,
    price_order,
    summarize,
)
from engine.registry import Tenant
from engine.storage.pocketbase import view_cents
from engine.storage.port import NewOrder, NotUnique, Store, StoreUnavailable, store_data

__all__ = ["Engine", "IdempotencyConflict", "NotFound", "order_view", "view_cents"]

CATALOG_MEMORY_S = 1.0
ORDER_ID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)


class NotFound(Exception):
    pass


class IdempotencyConflict(Exception):
    pass


def order_view(record: dict[str, Any]) -> dict[str, Any]:
    """An order as the API shows it (PocketBase stores a missing affiliate as "")."""
    view = {key: record.get(key) for key in ("id", "status", "commission_status", "currency", "total_cents",
                                             "commission_cents", "lines", "created")}
    return view | {"affiliate_id": record.get("affiliate_id") or None}


class Engine:
    def __init__(self, store: Store, cache: Cache, summary_ttl_s: int, catalog_ttl_s: int,
                 purger: CatalogPurger | None = None) -> None:
        self.store = store
        self.cache = cache
        self.purger = purger
        self._catalogs: dict[str, tuple[float, str, str]] = {}
        self._catalog_refreshes: dict[str, asyncio.Future[tuple[str, str]]] = {}
        self.summary_ttl_s = summary_ttl_s
        self.catalog_ttl_s = catalog_ttl_s

    # -- cached documents: catalog, rules, affiliates --------------------------------------------
    #
    # A tenant's catalog, rules and affiliates are cached in Redis, each as "<tag>\n<json>", and trusted only
    # while its tag matches both (#23, second audit):
    #
    # - the tenant's `catalog_version` in PocketBase, which every admin write of products, rules or affiliates
    #   replaces in the same transaction as the data (`_admin_write`). This is what makes the guarantee: no
    #   order is judged against data older than the last acknowledged admin write, whatever Redis did. A Redis
    #   generation bumped after the write could not: an -OOM, a cut or late reply or a blackhole at that moment
    #   (swallowed, as a cache must) left the old rules applied, a deactivated product orderable and a new
    #   affiliate refused for the copies' TTL (24 h), and a wrong commission stored for good.
    # - the Redis generation (`<kind>-gen:<tenant>`), which every write still bumps after it lands, best
    #   effort: an engine of before this change, serving beside this one during a rollout, bumps only that.
    #
    # Refusing the admin write with 503 when the bump fails was the other way, and is not sound on its own: the
    # write is stored before the bump fails, so the 503 is a lie and the stale copies stay (a late reply, or a
    # bump that reached Redis after the reader's check, cannot be detected at all).
    #
    # Cost: one PocketBase read per order (one row by the unique index on tenant), at the same time as the one
    # Redis MGET of the documents, so a hit adds about one PocketBase round trip; the catalog's GET pays it at
    # most once a CATALOG_MEMORY_S per process. An admin write becomes a batch of two writes. The version is read
    # before a document is loaded, so a write between the two leaves the copy an older tag, never the reverse.
    # A tenant with no version record yet (no admin write since this change) has the version "": its copies
    # are as fresh as the Redis generation makes them, as before, until its first admin write.

    async def _catalog_version(self, tenant: Tenant) -> str:
        return await self.store.catalog_version(tenant.slug)

    async def _documents(self, tenant: Tenant, kinds: tuple[str, ...]) -> dict[str, str]:
        """The tenant's documents of `kinds` ("catalog", "rules", "affiliates"), cached while current."""
        if self.catalog_ttl_s <= 0:  # CATALOG_CACHE_SECONDS=0: no copy (a rollout's mixed window, README)
            return await self._uncached(tenant, kinds)
        keys = [key for kind in kinds for key in (f"{kind}-gen:{tenant.slug}", f"{_DOCUMENT_KEYS[kind]}:{tenant.slug}")]
        version, values = await asyncio.gather(self._catalog_version(tenant), self.cache.mget(kinds[0], keys))
        documents: dict[str, str] = {}
        for index, kind in enumerate(kinds):
            generation, stored = values[2 * index], values[2 * index + 1]
            if generation is not None and stored is not None:
                stored_tag, _, body = stored.partition("\n")
                if stored_tag == f"{version}/{generation}":
                    metrics.CACHE_REQUESTS.labels(kind, "hit").inc()
                    documents[kind] = body
                    continue
            metrics.CACHE_REQUESTS.labels(kind, "miss").inc()
            if generation is None:  # none yet, or evicted: one started first, since none cannot tag anything
                generation = await self.cache.current_generation(kind, f"{kind}-gen:{tenant.slug}")
            body = await self._load(tenant, kind)
            if generation is not None:
                await self.cache.set(kind, keys[2 * index + 1], f"{version}/{generation}\n{body}",
                                     self.catalog_ttl_s)
            documents[kind] = body
        return documents

    async def _uncached(self, tenant: Tenant, kinds: tuple[str, ...]) -> dict[str, str]:
        """The documents from PocketBase, Redis not asked: a TTL of 0 is no copy, as for summaries. Redis refuses
        `SET ... EX 0` ("invalid expire time"), which paused it for every cache (#23, second audit); counted as
        `skipped`, not as a miss, which the cache-miss alert reads (components/observability/slos.yaml)."""
        documents: dict[str, str] = {}
        for kind in kinds:
            metrics.CACHE_REQUESTS.labels(kind, "skipped").inc()
            documents[kind] = await self._load(tenant, kind)
        return documents

    async def _load(self, tenant: Tenant, kind: str) -> str:
        """A document from the store (StoreUnavailable: it answered another shape)."""
        if kind == "catalog":
            products = await self.store.products(tenant.slug)
            return json.dumps({"currency": tenant.currency, "products": [
                {"sku": p.sku, "name": p.name, "category": p.category, "price_cents": p.price_cents}
                for p in products]}, separators=(",", ":"))
        if kind == "rules":
            rules = await self.store.rules(tenant.slug)
            return json.dumps(asdict(rules or CommissionRules()))
        return json.dumps(await self.store.affiliates(tenant.slug), sort_keys=True)

    # -- catalog, rules, affiliates ----------------------------------------------------------

    async def catalog_with_etag(self, tenant: Tenant) -> tuple[str, str]:
        """The catalog and its ETag, from this process's memory for up to `CATALOG_MEMORY_S`.

        The edge keeps the catalog a day (C5) and a product change purges it there, so a second of
        staleness in one process is invisible; it spares Redis the most frequent read there is.

        One refresh per process and tenant at a time: the requests that find the copy expired while a refresh is
        under way wait for that refresh and share its answer (or its error), instead of each reading the catalog
        version and Redis again; at 16 users those simultaneous refreshes were 16 % of the engine's CPU on the
        cached catalog (bench/README.md, #26). A product write in this process forgets the refresh under way too, so
        a request after the write starts its own, and the older refresh does not keep its answer.
        """
        now = time.monotonic()
        remembered = self._catalogs.get(tenant.slug)
        if remembered is not None and now - remembered[0] < CATALOG_MEMORY_S:
            metrics.CACHE_REQUESTS.labels("catalog_memory", "hit").inc()
            return remembered[1], remembered[2]
        refresh = self._catalog_refreshes.get(tenant.slug)
        if refresh is None:
            refresh = asyncio.ensure_future(self._refresh_catalog(tenant, now))
            self._catalog_refreshes[tenant.slug] = refresh
        else:
            metrics.CACHE_REQUESTS.labels("catalog_memory", "hit").inc()  # served by the copy being refreshed
        # shielded: a waiter cancelled (its client gone) does not cancel the refresh the others wait for
        return await asyncio.shield(refresh)

    async def _refresh_catalog(self, tenant: Tenant, started: float) -> tuple[str, str]:
        refresh = asyncio.current_task()  # the one _catalog_refreshes holds, until a product write drops it
        try:
            body = await self.catalog(tenant)
            etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
            if self._catalog_refreshes.get(tenant.slug) is refresh:  # no product written here since it started
                self._catalogs[tenant.slug] = (started, body, etag)
            return body, etag
        finally:
            if self._catalog_refreshes.get(tenant.slug) is refresh:
                del self._catalog_refreshes[tenant.slug]

    async def catalog(self, tenant: Tenant) -> str:
        """The tenant's active products as JSON; cached in Redis until a product changes."""
        return (await self._documents(tenant, ("catalog",)))["catalog"]

    @staticmethod
    def _products(document: str) -> dict[str, Product]:
        """Priced from the catalog document: the catalog price at order time."""
        catalog = json.loads(document)
        return {p["sku"]: Product(p["sku"], p["name"], p["category"] or "", int(p["price_cents"]))
                for p in catalog["products"]}

    async def rules(self, tenant: Tenant) -> CommissionRules:
        return CommissionRules(**json.loads((await self._documents(tenant, ("rules",)))["rules"]))

    async def _affiliate_record(self, tenant: Tenant, affiliate_id: str) -> str | None:
        """The affiliate's reference in the store (one row by its unique key): an order's status change sets its
        summary_version, and an order's creation looks here before it refuses an affiliate unknown to the cached
        map (an engine of before #23's second audit may have added it without a catalog version)."""
        return await self.store.affiliate_ref(tenant.slug, affiliate_id)

    async def put_rules(self, tenant: Tenant, rules: CommissionRules, actor: str = "") -> CommissionRules:
        before = await self.store.upsert_rules(tenant.slug, rules)
        await self.cache.new_generation("rules", f"rules-gen:{tenant.slug}")
        audit.record("commission_rules.put", tenant.slug, actor, tenant.slug,
                     None if before is None else asdict(before), asdict(rules))
        return rules

    async def put_product(self, tenant: Tenant, product: Product, actor: str = "") -> Product:
        before = await self.store.upsert_product(tenant.slug, product)
        audit.record("product.put", tenant.slug, actor, product.sku, before, asdict(product))
        await self.cache.new_generation("catalog", f"catalog-gen:{tenant.slug}")
        self._catalogs.pop(tenant.slug, None)  # other processes forget theirs within CATALOG_MEMORY_S
        self._catalog_refreshes.pop(tenant.slug, None)  # a refresh begun before the write neither serves nor stays
        if self.purger is not None:  # in the background, after the write: it never fails or delays it
            self.purger.catalog_changed(tenant.slug)
        return product

    async def put_affiliate(self, tenant: Tenant, affiliate_id: str, name: str, actor: str = "") -> dict[str, str]:
        before = await self.store.upsert_affiliate(tenant.slug, affiliate_id, name)
        await self.cache.new_generation("affiliates", f"affiliates-gen:{tenant.slug}")
        after = {"affiliate_id": affiliate_id, "name": name}
        audit.record("affiliate.put", tenant.slug, actor, affiliate_id, before, after)
        return after

    # -- orders -------------------------------------------------------------------------------

    async def create_order(self, tenant: Tenant, idempotency_key: str, affiliate_id: str | None,
                           lines: list[LineRequest]) -> tuple[dict[str, Any], bool]:
        """Returns (order, created). The same key with the same request returns the first order."""
        request_hash = hashlib.sha256(json.dumps(
            {"affiliate_id": affiliate_id, "lines": [asdict(line) for line in lines]}, sort_keys=True).encode()
        ).hexdigest()
        affiliate_record: str | None = None
        try:
            documents = await self._documents(tenant, ("catalog", "rules") + (("affiliates",) if affiliate_id else ()))
            if affiliate_id is not None and (affiliate_record := json.loads(documents["affiliates"]).get(
                    affiliate_id) or await self._affiliate_record(tenant, affiliate_id)) is None:
                raise DomainError("affiliate_id", f"{affiliate_id!r} is not an affiliate of this tenant")
            priced = price_order(affiliate_id, lines, self._products(documents["catalog"]),
                                 CommissionRules(**json.loads(documents["rules"])))
        except DomainError:
            # A retry is answered with the order it created, whatever changed since (a product deactivated,
            # a price or a rate): only a request the key never stored is refused. The lookup costs a
            # round trip on refusals only; an accepted retry is caught by the unique index below.
            stored = await self._by_idempotency_key(tenant, idempotency_key)
            if stored is None:
                raise
            return self._replay(stored, request_hash), False
        now = dt.datetime.now(dt.UTC)
        order = NewOrder(
            idempotency_key=idempotency_key, request_hash=request_hash, affiliate_id=affiliate_id,
            status=OrderStatus.CREATED.value, commission_status=COMMISSION_FOR[OrderStatus.CREATED].value,
            currency=tenant.currency, created_month=now.strftime("%Y-%m"), total_cents=priced.total_cents,
            commission_cents=priced.commission_cents, lines=[asdict(line) for line in priced.lines])
        try:
            # with an affiliate, the order and its affiliate's new summary version in one transaction
            record = await self.store.create_order(tenant.slug, order, affiliate_record)
        except NotUnique:
            # The key was used before (a retry, or a race that another request won): the unique key
            # on (tenant, idempotency_key) decides, and the first order is the answer.
            winner = await self._by_idempotency_key(tenant, idempotency_key)
            if winner is None:
                raise
            return self._replay(winner, request_hash), False
        metrics.ORDERS.labels(tenant.slug).inc()
        return order_view(record), True

    async def _by_idempotency_key(self, tenant: Tenant, key: str) -> dict[str, Any] | None:
        return await self.store.order_by_key(tenant.slug, key)

    @staticmethod
    def _replay(record: dict[str, Any], request_hash: str) -> dict[str, Any]:
        if record.get("request_hash") is None:
            raise StoreUnavailable("the store's idempotency: an order without its request_hash")
        if record["request_hash"] != request_hash:
            raise IdempotencyConflict("this Idempotency-Key was used for a different request")
        return order_view(record)

    async def order(self, tenant: Tenant, order_id: str) -> dict[str, Any]:
        record = await self.store.order(tenant.slug, order_id) if ORDER_ID.fullmatch(order_id) else None
        if record is None:
            raise NotFound(f"no order {order_id!r}")
        return record

    async def transition(self, tenant: Tenant, order_id: str, action: str) -> dict[str, Any]:
        """One status change, of which exactly one wins however many callers race: the store records that the
        order leaves its status and changes it in one transaction, keyed by (order, from status), and an order
        leaves each status at most once (created -> paid -> refunded, created -> cancelled); of two changes read
        from the same status the second breaks the key and rolls back whole (NotUnique), and its caller is told
        the status the winner left (storage: PocketBaseStore.transition, PostgresStore.transition)."""
        # the order and its affiliate's reference in one read where the store can (PostgreSQL: a join)
        found = await self.store.order_for_change(tenant.slug, order_id) if ORDER_ID.fullmatch(order_id) else None
        if found is None:
            raise NotFound(f"no order {order_id!r}")
        record, affiliate_record = found
        with store_data(self.store.name, "transition"):
            current = OrderStatus(record["status"])
        status = next_status(current, action)
        try:
            updated = await self.store.transition(tenant.slug, record, current.value, status.value,
                                                  COMMISSION_FOR[status].value, affiliate_record)
        except NotUnique:
            with store_data(self.store.name, "transition"):
                now = OrderStatus((await self.order(tenant, order_id))["status"])
            raise TransitionError(action, now, TRANSITIONS[action][0]) from None
        return order_view(updated)

    # -- summaries ------------------------------------------------------------------------------

    async def summary(self, tenant: Tenant, affiliate_id: str, month: str) -> str:
        """The affiliate's month, never older than the last acknowledged write to their orders (#23).

        The version lives with the data: every write to an affiliate's orders (an order created, paid,
        cancelled, refunded) sets a new, never used `summary_version` on the affiliate's record in the same
        PocketBase transaction (`_new_summary_version`), and a cached summary is served only if it carries
        the version PocketBase holds now. So whatever Redis did (an error or an OOM at invalidation, a cut or
        late reply, a blackhole, a restart) and whatever PocketBase did (a write stored but answered after
        the engine's timeout, then retried with its key and answered 200 or 409; PocketBase frozen then
        resumed), the cache cannot outlive a write: there is no invalidation to miss. Redis generations
        could not do this: a write that PocketBase stored but Redis did not hear of (or heard of late, or
        the engine never reached because it timed out first) left the old copy valid for its TTL.

        Cost: a read asks PocketBase for one row by its unique index (tenant, affiliate_id), at the same time
        as Redis for the copy, so a hit costs one PocketBase round trip instead of one Redis read: measured
        end to end on this two-core machine under load, a hit went from 0.9-2.0 ms to 4.1-6.5 ms (bench/
        README.md, #23). That is the price of the guarantee: any check that stays in Redis trusts the store
        that failed. The month's sum, which grows with its orders (15 ms at 10,000, bench/summary_miss.py),
        is still spared. A write adds one row update to the transaction it already is (an order with an
        affiliate: a batch of two instead of one create; a status change: three writes instead of two).
        The version is read before the month is summed: a write between the two makes the copy carry an
        older version than PocketBase's, so it is never served, never the reverse.
        """
        key = f"summary2:{tenant.slug}:{affiliate_id}:{month}"
        # SUMMARY_CACHE_SECONDS=0: no copy (a rollout's mixed window, README), so neither Redis nor the version
        # is asked, and it is counted `skipped`: the cache-miss alert reads hits and misses only (slos.yaml).
        cached = self.summary_ttl_s > 0
        version: str | None = None
        if cached:
            version, (stored,) = await asyncio.gather(self.store.summary_version(tenant.slug, affiliate_id),
                                                      self.cache.mget("summary", [key]))
            if version is not None and stored is not None:
                stored_version, _, body = stored.partition("\n")
                if stored_version == version:
                    metrics.CACHE_REQUESTS.labels("summary", "hit").inc()
                    return body
        metrics.CACHE_REQUESTS.labels("summary", "miss" if cached else "skipped").inc()
        groups = await self.store.summary_groups(tenant.slug, affiliate_id, month)
        result: MonthlySummary = summarize(affiliate_id, month, groups)
        body = json.dumps(asdict(result) | {"currency": tenant.currency}, separators=(",", ":"))
        if version is not None and cached:  # an affiliate without a record has no orders to version: not cached
            await self.cache.set("summary", key, f"{version}\n{body}", self.summary_ttl_s)
        return body


_DOCUMENT_KEYS = {"catalog": "catalog3", "rules": "rules3", "affiliates": "affiliates3"}
"""Redis keys of the cached documents. "3": the copies of before #23's second audit are tagged with a Redis
generation only (catalog, rules2, affiliates2); they are never used, and engines of before keep theirs."""
