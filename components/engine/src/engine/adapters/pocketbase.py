"""PocketBase over its REST API, as the engine's own account (engine/schema.py: an auth collection whose one
account the engine's collections admit, and nothing else; never the superuser, #11.2). Every call is timed
and counted."""

from __future__ import annotations

import time
from typing import Any, cast

import httpx

from engine import metrics


class PocketBaseError(Exception):
    """PocketBase is unreachable or failed: the request cannot be served (HTTP 503)."""


class NotUnique(Exception):
    """A write broke a unique index (e.g. the same idempotency key twice)."""


def _has_code(data: Any, code: str) -> bool:
    """Whether PocketBase's error data holds a field error with `code`, at any depth (a batch nests them)."""
    if isinstance(data, dict):
        fields = cast(dict[str, Any], data)
        return fields.get("code") == code or any(_has_code(value, code) for value in fields.values())
    return False


def quote(value: str) -> str:
    """A string literal for a PocketBase filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport, with one failure of the stack under it raised as what it is.

    On uvloop, a connection PocketBase resets as it opens can reach httpcore already closed: anyio then
    reads the closed transport's socket, None (MagicStack/uvloop#560), and raises AttributeError
    ("'NoneType' object has no attribute 'getpeername'"), which httpx does not map. That is a connection
    that failed, so it is raised as one: the caller answers 503 and /readyz false, not 500. Found by the
    chaos run (infra/ops/chaos.py, tests/test_chaos.py: about one call in eight while PocketBase resets).
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except AttributeError as err:
            raise httpx.ConnectError(f"the connection was reset as it opened ({err})", request=request) from err


class PocketBase:
    def __init__(self, url: str, accounts: str, email: str, password: str, timeout_s: float = 5.0) -> None:
        """`accounts`: the auth collection the account is in."""
        self._accounts, self._email, self._password = accounts, email, password
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, transport=_Transport(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)))
        self._token: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _authenticate(self) -> None:
        response = await self._http.post(f"/api/collections/{self._accounts}/auth-with-password",
                                         json={"identity": self._email, "password": self._password})
        if response.status_code != 200:
            raise PocketBaseError(f"PocketBase refused the engine's account {self._email} in {self._accounts} "
                                  f"(HTTP {response.status_code})")
        self._token = response.json()["token"]

    async def request(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, timed and counted.

        A write held up by SQLite's lock (B1) does not say so: PocketBase waits for the lock (a 10 s busy
        timeout, retried up to 12 times), then answers 400 "Failed to create record." with no detail;
        "database is locked" is only in its own log. Well before that this client gives up (its timeout).
        So a write that times out while PocketBase still answers its health check is counted as locked:
        PocketBase is up and reads go on (WAL), but writes wait for the one writer.
        """
        start = time.perf_counter()
        metrics.POCKETBASE_IN_FLIGHT.inc()
        try:
            if self._token is None:
                await self._authenticate()
            response = await self._http.request(method, path, headers={"Authorization": self._token or ""}, **kwargs)
            # PocketBase ignores a token it no longer accepts (expired, or of a password rotated at its start)
            # and answers as to a guest; its image answers a guest 401 on records and batches
            # (engine_schema.pb.js), where a rule would otherwise filter it to an empty list. A 403 is a
            # collection of an older schema, superuser-only. Both mean: authenticate again, once.
            if response.status_code in (401, 403):
                await self._authenticate()
                response = await self._http.request(method, path, headers={"Authorization": self._token or ""},
                                                    **kwargs)
        except httpx.HTTPError as err:
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            if method != "GET" and isinstance(err, httpx.ReadTimeout) and await self.healthy(timeout_s=1.0):
                metrics.POCKETBASE_LOCKS.labels(operation).inc()
            raise PocketBaseError(f"PocketBase {operation}: {type(err).__name__}") from err
        finally:
            metrics.POCKETBASE_IN_FLIGHT.dec()
            metrics.POCKETBASE_LATENCY.labels(operation).observe(time.perf_counter() - start)
        if response.status_code >= 400 and "database is locked" in response.text:  # as /api/sql reports it
            metrics.POCKETBASE_LOCKS.labels(operation).inc()
        if response.status_code >= 500 or response.status_code in (401, 403):
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code}")
        return response

    async def healthy(self, timeout_s: float | None = None) -> bool:
        try:
            timeout = httpx.Timeout(timeout_s) if timeout_s is not None else httpx.USE_CLIENT_DEFAULT
            return (await self._http.get("/api/health", timeout=timeout)).status_code == 200
        except httpx.HTTPError:
            return False

    async def list(self, operation: str, collection: str, filter_: str, *, fields: str | None = None,
                   sort: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            params: dict[str, str | int] = {"filter": filter_, "perPage": 500, "page": page, "skipTotal": 1}
            if fields:
                params["fields"] = fields
            if sort:
                params["sort"] = sort
            response = await self.request(operation, "GET", f"/api/collections/{collection}/records", params=params)
            batch = response.json()["items"]
            items += batch
            if len(batch) < 500:
                return items
            page += 1

    async def first(self, operation: str, collection: str, filter_: str) -> dict[str, Any] | None:
        response = await self.request(operation, "GET", f"/api/collections/{collection}/records",
                                      params={"filter": filter_, "perPage": 1, "skipTotal": 1})
        items = response.json()["items"]
        return items[0] if items else None

    async def get(self, operation: str, collection: str, record_id: str) -> dict[str, Any] | None:
        response = await self.request(operation, "GET", f"/api/collections/{collection}/records/{record_id}")
        return response.json() if response.status_code == 200 else None

    async def create(self, operation: str, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.request(operation, "POST", f"/api/collections/{collection}/records", json=body)
        return self._written(response)

    async def update(self, operation: str, collection: str, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.request(operation, "PATCH", f"/api/collections/{collection}/records/{record_id}",
                                      json=body)
        return self._written(response)

    async def batch(self, operation: str, requests: list[dict[str, Any]]) -> list[Any]:
        """Several writes in one transaction (PocketBase's batch API): all stored, or none. Their bodies."""
        response = await self.request(operation, "POST", "/api/batch", json={"requests": requests})
        if response.status_code != 200:
            self._written(response)
        return [result.get("body") for result in response.json()]

    @staticmethod
    def _written(response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 400:
            data: Any = response.json().get("data", {})
            if _has_code(data, "validation_not_unique"):
                raise NotUnique(str(data))
            raise PocketBaseError(f"PocketBase refused the write: {data}")
        if response.status_code not in (200, 201):
            raise PocketBaseError(f"PocketBase write: HTTP {response.status_code}")
        return response.json()
