"""What the engine's own CPU per request depends on, checked without timing anything (bench/engine_load.py measures
the CPU; these pin the causes it found)."""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import json
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import cast

from engine.adapters.cache import Cache
from engine.api import create_app
from engine.domain.model import Product
from engine.registry import Tenant
from engine.services import Engine
from engine.settings import Settings
from engine.storage import Store


class _CountingFinder(importlib.abc.MetaPathFinder):
    """Counts what the import system is asked to find (a failed import is not cached: each one searches sys.path)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        self.asked.append(fullname)
        return None


def _settings() -> Settings:
    return Settings(pocketbase_url="http://127.0.0.1:9", pocketbase_email="e@x.local",  # pyright: ignore[reportCallIssue]
                    pocketbase_password="p" * 24, redis_url="redis://127.0.0.1:9/0",
                    tenants_json='{"version": 1, "tenants": []}')


def test_httpcore_does_not_search_for_a_missing_sniffio_at_every_lock_and_event() -> None:
    """httpcore's `current_async_library()` runs `import sniffio` at every lock, event and shield it creates,
    several per PocketBase call; since anyio 4.11 dropped sniffio nothing installs it, and Python does not cache a
    failed import, so each call searched sys.path (11 % of the engine's CPU on the mix, bench/README.md;
    encode/httpcore#1103). Once the app exists, the missing module is refused from sys.modules, with the same
    answer ("asyncio")."""
    from httpcore._synchronization import current_async_library  # pyright: ignore[reportPrivateUsage]

    create_app(_settings())
    finder = _CountingFinder()
    sys.meta_path.insert(0, finder)
    try:
        answers = {current_async_library() for _ in range(20)}
    finally:
        sys.meta_path.remove(finder)
    assert answers == {"asyncio"}
    assert finder.asked.count("sniffio") == 0


class _SlowCatalogStore:
    """A store whose catalog read waits until released, counting the reads (what a refresh costs the store)."""

    name = "stub"

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.price = 100

    async def products(self, tenant: str) -> list[Product]:
        self.reads += 1
        price = self.price  # the catalog as the read found it when it began
        await self.release.wait()
        return [Product("sku1", "Camiseta", "roupas", price)]

    async def upsert_product(self, tenant: str, product: Product) -> None:
        self.price = product.price_cents


class _NoCache:
    async def new_generation(self, kind: str, key: str) -> None:
        return None


def _engine(store: _SlowCatalogStore) -> Engine:
    # catalog_ttl_s=0: no Redis copy, the catalog read straight from the store at each refresh
    return Engine(cast(Store, store), cast(Cache, _NoCache()), summary_ttl_s=0, catalog_ttl_s=0)


def test_requests_finding_the_catalog_expired_share_one_refresh() -> None:
    """The catalog a process remembers for a second expired for all the requests in flight at once, and each one
    refreshed it (16 % of the engine's samples on the cached catalog at 16 users, bench/README.md #26): one refresh
    per process and tenant, the others wait for it and get its answer."""
    async def scenario() -> tuple[int, set[tuple[str, str]]]:
        store = _SlowCatalogStore()
        engine = _engine(store)
        tenant = Tenant("acme", "BRL")
        waiting = [asyncio.ensure_future(engine.catalog_with_etag(tenant)) for _ in range(16)]
        await asyncio.sleep(0.01)
        store.release.set()
        answers = set(await asyncio.gather(*waiting))
        return store.reads, answers

    reads, answers = asyncio.run(scenario())
    assert reads == 1 and len(answers) == 1


def _price(catalog: str) -> int:
    return int(json.loads(catalog)["products"][0]["price_cents"])


def test_a_product_write_is_not_hidden_by_a_refresh_begun_before_it() -> None:
    """A request after a product write in this process gets the written catalog, not the answer of a refresh that
    began before the write (and that answer is not remembered)."""
    async def scenario() -> tuple[int, int, int, int]:
        store = _SlowCatalogStore()
        engine = _engine(store)
        tenant = Tenant("acme", "BRL")
        before = asyncio.ensure_future(engine.catalog_with_etag(tenant))
        await asyncio.sleep(0.01)
        await engine.put_product(tenant, Product("sku1", "Camiseta", "roupas", 250))
        after = asyncio.ensure_future(engine.catalog_with_etag(tenant))
        await asyncio.sleep(0.01)
        store.release.set()
        (old_body, _), (new_body, _) = await asyncio.gather(before, after)
        remembered, _ = await engine.catalog_with_etag(tenant)
        return _price(old_body), _price(new_body), _price(remembered), store.reads

    assert asyncio.run(scenario()) == (100, 250, 250, 2)
