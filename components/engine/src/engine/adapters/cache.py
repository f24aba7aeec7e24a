"""Redis as a cache that may fail: every error is counted and the caller falls back to PocketBase.

After an error Redis is skipped for a few seconds, so a dead Redis costs one timeout, not one per
request.
"""

from __future__ import annotations

import secrets
import time
from typing import cast

from engine import metrics
from engine.adapters.resp import Redis, RedisError


class Cache:
    def __init__(self, url: str, timeout_s: float = 0.25, ca_cert: str | None = None, pause_s: float = 2.0) -> None:
        self._redis = Redis(url, timeout_s, ca_cert if url.startswith("rediss://") else None)
        self._pause_s = pause_s
        self._paused_until = 0.0

    async def close(self) -> None:
        await self._redis.aclose()

    def _available(self) -> bool:
        return time.monotonic() >= self._paused_until

    def _failed(self, cache: str) -> None:
        metrics.CACHE_REQUESTS.labels(cache, "error").inc()
        self._paused_until = time.monotonic() + self._pause_s

    async def healthy(self) -> bool:
        return await self.unready() is None

    async def unready(self) -> str | None:
        """Why Redis does not serve now (for /readyz; its error never carries the URL), or None."""
        try:
            answer = await self._redis.execute("PING")
        except RedisError as err:
            return f"Redis PING: {err}"
        return None if answer == "PONG" else f"Redis PING answered {str(answer)[:40]!r}"

    async def set(self, cache: str, key: str, value: str, ttl_s: int) -> None:
        if not self._available():
            return
        try:
            await self._redis.execute("SET", key, value, "EX", str(ttl_s))
        except RedisError:
            self._failed(cache)

    async def mget(self, cache: str, keys: list[str]) -> list[str | None]:
        """Several keys in one round trip; all None when Redis is unavailable."""
        if not self._available():
            metrics.CACHE_REQUESTS.labels(cache, "skipped").inc()
            return [None] * len(keys)
        try:
            values: object = await self._redis.execute("MGET", *keys)
        except RedisError:
            self._failed(cache)
            return [None] * len(keys)
        # MGET answers an array of one bulk string or nil per key (https://redis.io/docs/latest/commands/mget/:
        # "Array reply: a list of values at the specified keys"). Anything else (+OK, :1, an array of another
        # length, from Redis confused or something in front of it) is the cache failing, not a 500 (#23).
        if not isinstance(values, list) or len(cast(list[object], values)) != len(keys) or not all(
                value is None or isinstance(value, str) for value in cast(list[object], values)):
            self._failed(cache)
            return [None] * len(keys)
        return cast(list[str | None], values)

    async def new_generation(self, cache: str, key: str) -> None:
        """After a write: a generation never used before, so no cached copy matches it.

        Not a counter: if Redis evicted or lost the key, a counter would start again at 1 and make a
        copy cached under an old 1 current again. If Redis is down, the copies expire by their TTL.
        """
        try:
            await self._redis.execute("SET", key, secrets.token_hex(8))
        except RedisError:
            self._failed(cache)

    async def current_generation(self, cache: str, key: str) -> str | None:
        """The key's generation, starting one if there is none (`SET NX GET`, Redis >= 7); None if Redis is down."""
        if not self._available():
            return None
        token = secrets.token_hex(8)
        try:
            existing: object = await self._redis.execute("SET", key, token, "NX", "GET")
        except RedisError:
            self._failed(cache)
            return None
        if existing is not None and not isinstance(existing, str):  # not SET's bulk string or nil
            self._failed(cache)
            return None
        return token if existing is None else existing
