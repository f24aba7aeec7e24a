"""The storage port: the semantic operations the use cases (services.Engine) need of the order store, whatever
holds it (PocketBase over its REST API, storage/pocketbase.py; PostgreSQL over asyncpg, storage/postgres.py).

Every operation is scoped to one tenant: a row of another tenant is "not there", whatever id the caller sends.
The errors the API maps to responses stay apart: `NotUnique` (a unique key decided a race: the caller reads the
winner), `StoreUnavailable` (the store cannot serve now: 503), and services' own NotFound / conflicts.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from engine.domain.model import CommissionRules, CommissionStatus, Product


class StoreUnavailable(Exception):
    """The store is unreachable, failed, or answered something that is not its data: the request cannot be served
    (HTTP 503 "Storage unavailable"). PocketBase's PocketBaseError is one."""


class WritesPaused(StoreUnavailable):
    """The store refuses writes for now, on purpose (a migration's cut-over made it read-only): reads still serve.
    A StoreUnavailable, so a 503 by default; the API may answer it apart (writes_paused, with Retry-After)."""


class NotUnique(Exception):
    """A write broke a unique key (the same idempotency key twice, a status left twice): a race another write won."""


@contextmanager
def store_data(store: str, operation: str) -> Generator[None]:
    """Reading what the store answered: a field missing or of another type is the store failing, the 503 problem,
    never a 500 (#23, second audit)."""
    try:
        yield
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise StoreUnavailable(f"{store} {operation}: an answer of another shape ({type(err).__name__}: "
                               f"{str(err)[:80]})") from err


@dataclass(frozen=True)
class NewOrder:
    """An order as the engine creates it (priced, with its idempotency key and the hash of its request)."""

    idempotency_key: str
    request_hash: str
    affiliate_id: str | None
    status: str
    commission_status: str
    currency: str
    created_month: str
    total_cents: int
    commission_cents: int
    lines: list[dict[str, Any]]


Record = dict[str, Any]
"""An order as stored: id, tenant, idempotency_key, request_hash, affiliate_id ("" or None: none), status,
commission_status, currency, total_cents, commission_cents, lines, created (text, PocketBase's format)."""


class Store(Protocol):
    """What services.Engine asks of the order store."""

    name: str
    """The dependency's name in /readyz's `checks` and `reasons` ("pocketbase", "postgres")."""

    async def close(self) -> None: ...

    # -- readiness
    async def schema_problem(self, wait_s: float | None = None) -> str | None:
        """None once the store holds the schema the engine needs (and accepts its account); else why not."""
        ...

    async def unready(self) -> str | None:
        """Why the engine cannot serve from the store now (/readyz), within the probe's time, or None."""
        ...

    # -- the tenant's documents, each tagged by the catalog version
    async def catalog_version(self, tenant: str) -> str:
        """The token every admin write replaces in its own transaction ("" before the tenant's first one)."""
        ...

    async def products(self, tenant: str) -> list[Product]:
        """The tenant's active products, by sku."""
        ...

    async def rules(self, tenant: str) -> CommissionRules | None: ...

    async def affiliates(self, tenant: str) -> dict[str, str]:
        """Each affiliate's id -> its reference in the store (what `affiliate_ref` answers)."""
        ...

    async def affiliate_ref(self, tenant: str, affiliate_id: str) -> str | None: ...

    # -- admin writes: each with a new catalog version in the same transaction; the state before (None: created)
    async def upsert_rules(self, tenant: str, rules: CommissionRules) -> CommissionRules | None: ...

    async def upsert_product(self, tenant: str, product: Product) -> dict[str, Any] | None: ...

    async def upsert_affiliate(self, tenant: str, affiliate_id: str, name: str) -> dict[str, Any] | None: ...

    # -- orders
    async def create_order(self, tenant: str, order: NewOrder, affiliate_ref: str | None) -> Record:
        """The order, with its affiliate's new summary version (when `affiliate_ref`) in the same transaction.
        NotUnique: the tenant already has an order with this idempotency key."""
        ...

    async def order_by_key(self, tenant: str, idempotency_key: str) -> Record | None: ...

    async def order(self, tenant: str, order_id: str) -> Record | None:
        """The tenant's order (None: no such order, or another tenant's)."""
        ...

    async def order_for_change(self, tenant: str, order_id: str) -> tuple[Record, str | None] | None:
        """The tenant's order and its affiliate's reference (what `affiliate_ref` answers; None: no affiliate, or
        none by that id), as a status change needs them (None: no such order, or another tenant's). PostgreSQL
        answers both in one query."""
        ...

    async def transition(self, tenant: str, order: Record, from_status: str, to_status: str,
                         commission_status: str, affiliate_ref: str | None) -> Record:
        """In one transaction: the row saying the order left `from_status`, the order's new status, its affiliate's
        new summary version. Of changes racing from one status exactly one wins; the others raise NotUnique."""
        ...

    # -- summaries
    async def summary_version(self, tenant: str, affiliate_id: str) -> str | None:
        """The affiliate's summary version (None: no such affiliate)."""
        ...

    async def summary_groups(self, tenant: str, affiliate_id: str, month: str
                             ) -> list[tuple[CommissionStatus, int, int]]:
        """(commission status, exact cents, orders) per status of the affiliate's orders created in `month`."""
        ...
