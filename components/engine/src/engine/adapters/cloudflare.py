"""Purging a tenant's public catalog URL from Cloudflare's edge after its products change.

The edge keeps `GET /v1/catalog/{tenant}` for a day (C5) and caches by URL, so after a product write
the engine asks Cloudflare to drop that one URL. What Cloudflare documents, and this code relies on:

- "Purge Cached Content by URL": `POST {api}/zones/{zone_id}/purge_cache`, JSON body
  `{"files": ["https://host/path", ...]}`, a token with the Cache Purge permission as
  `Authorization: Bearer <token>`; at most 30 URLs a call on the Free, Pro and Business plans.
  https://developers.cloudflare.com/api/operations/zone-purge
- The answer is Cloudflare's envelope: 200 `{"success": true, "errors": [], "messages": [],
  "result": {"id": "..."}}`; 4XX `{"success": false, "errors": [{"code": 1012, "message": "..."}],
  "messages": [], "result": null}` (cloudflare/api-schemas, openapi.json, schemas
  `cache-purge_api-response-single-id` and `cache-purge_api-response-common-failure`).
- Purge requests are rate limited per account (Free: 5 a minute, bucket of 25; Pro: 5 a second),
  https://developers.cloudflare.com/cache/how-to/purge-cache/#availability-and-limits ; over the
  limit the API answers 429 with `Retry-After`, "the number of seconds, rounded up, until more
  capacity is available", https://developers.cloudflare.com/fundamentals/api/reference/limits/ .

So a purge is retried on 429 (not before its Retry-After), on 5xx and on network errors, and never
on another 4xx (a bad token or zone stays bad). Writes are coalesced per tenant and the URLs of all
tenants due go in one call, which keeps a bulk import of products within the Free plan's budget.

The purge never delays or fails the write: it runs afterwards in a background task. It waits
`delay_s` after the tenant's latest write first: every engine process keeps the catalog in memory
for up to a second (`services.CATALOG_MEMORY_S`), and a purge sent sooner could let the edge fetch
and keep that older copy for another day. The token never reaches a log line or a metric label.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any, cast

import httpx

from engine import metrics

MAX_URLS_PER_CALL = 30
log = logging.getLogger("engine.purge")


class CatalogPurger:
    def __init__(self, api_url: str, zone_id: str, token: str, public_base_url: str, *, delay_s: float,
                 attempts: int = 3, backoff_s: float = 0.5, max_wait_s: float = 60.0, timeout_s: float = 10.0) -> None:
        self._endpoint = f"{api_url.rstrip('/')}/zones/{zone_id}/purge_cache"
        self._base = public_base_url.rstrip("/")
        self._token = token
        self._delay_s, self._attempts, self._backoff_s, self._max_wait_s = delay_s, attempts, backoff_s, max_wait_s
        self._http = httpx.AsyncClient(timeout=timeout_s, headers={"Authorization": f"Bearer {token}"})
        self._dirty: dict[str, float] = {}
        """tenant -> when its latest write not yet purged was stored (monotonic)."""
        self._worker: asyncio.Task[None] | None = None

    def url(self, tenant: str) -> str:
        return f"{self._base}/v1/catalog/{tenant}"

    def catalog_changed(self, tenant: str) -> None:
        """After a write is stored: purge the tenant's catalog URL soon, in the background."""
        self._dirty[tenant] = time.monotonic()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self, wait_s: float = 5.0) -> None:
        """At shutdown: give the purges under way a few seconds, then report the ones left."""
        if self._worker is not None and not self._worker.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), wait_s)
            except TimeoutError:
                self._worker.cancel()
        if self._dirty:
            for tenant in self._dirty:
                metrics.CATALOG_PURGE_FAILURES.labels(tenant).inc()
            log.warning("catalog purge: shutting down before purging %s", ", ".join(sorted(self._dirty)))
        await self._http.aclose()

    async def _run(self) -> None:
        while self._dirty:
            wait = min(self._dirty.values()) + self._delay_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            now = time.monotonic()
            due = sorted(tenant for tenant, at in self._dirty.items() if at + self._delay_s <= now)
            for tenant in due:  # a write from now on marks its tenant again, for the next round
                del self._dirty[tenant]
            for start in range(0, len(due), MAX_URLS_PER_CALL):
                await self._purge(due[start:start + MAX_URLS_PER_CALL])

    async def _purge(self, tenants: list[str]) -> None:
        failure, attempt = "", 0
        for attempt in range(1, self._attempts + 1):
            wait = self._backoff_s * 2 ** (attempt - 1)
            try:
                response = await self._http.post(self._endpoint, json={"files": [self.url(t) for t in tenants]})
            except httpx.HTTPError as err:
                failure = f"{type(err).__name__} reaching the Cloudflare API"
            else:
                envelope = _envelope(response)
                if response.status_code == 200 and envelope.get("success") is True:
                    for tenant in tenants:
                        metrics.CATALOG_PURGES.labels(tenant).inc()
                    return
                failure = f"HTTP {response.status_code}: {self._scrub(_errors(envelope))}"
                if response.status_code == 429:
                    retry_after = _retry_after(response.headers.get("retry-after"))
                    if retry_after is not None:
                        if retry_after > self._max_wait_s:
                            failure += f" (Retry-After {retry_after:.0f} s)"
                            break
                        wait = max(wait, retry_after)
                elif response.status_code < 500:
                    break  # another 4xx (bad token, unknown zone, bad URL) or a 200 without success
            if attempt < self._attempts:
                await asyncio.sleep(wait)
        for tenant in tenants:
            metrics.CATALOG_PURGE_FAILURES.labels(tenant).inc()
        log.warning("catalog purge failed for %s after %d attempt(s): %s", ", ".join(tenants), attempt, failure)

    def _scrub(self, text: str) -> str:
        """Cloudflare's error text, without the token should it ever be echoed back."""
        return text.replace(self._token, "[token]")[:300]


def _envelope(response: httpx.Response) -> dict[str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        return {}
    return cast(dict[str, Any], body) if isinstance(body, dict) else {}


def _errors(envelope: dict[str, Any]) -> str:
    errors: Any = envelope.get("errors")
    described: list[str] = []
    for item in cast(list[Any], errors) if isinstance(errors, list) else []:
        if isinstance(item, dict):
            error = cast(dict[str, Any], item)
            described.append(f"{error.get('code')} {error.get('message')}")
    return "; ".join(described) or "no error in the answer"


def _retry_after(value: str | None) -> float | None:
    """Seconds from `Retry-After`: delay-seconds, as Cloudflare sends it, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
