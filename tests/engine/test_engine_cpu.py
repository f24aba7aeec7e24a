"""What the engine's own CPU per request depends on, checked without timing anything (bench/engine_load.py measures
the CPU; these pin the causes it found)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

from engine.api import create_app
from engine.settings import Settings


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
