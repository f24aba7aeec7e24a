"""PocketBase over its REST API, as its superuser. Every call is timed and counted."""

from __future__ import annotations

import time
from typing import Any, cast

import httpx

from engine import metrics


class PocketBaseError(Exception):
    """PocketBase is unreachable or failed: the request cannot be served (HTTP 503)."""


class NotUnique(Exception):
    """A write broke a unique index (e.g. the same idempotency key twice)."""


def quote(value: str) -> str:
    """A string literal for a PocketBase filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PocketBase:
    def __init__(self, url: str, email: str, password: str, timeout_s: float = 5.0) -> None:
        self._email, self._password = email, password
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s,
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        self._token: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _authenticate(self) -> None:
        response = await self._http.post("/api/collections/_superusers/auth-with-password",
                                         json={"identity": self._email, "password": self._password})
        if response.status_code != 200:
            raise PocketBaseError(f"PocketBase refused the superuser credentials (HTTP {response.status_code})")
        self._token = response.json()["token"]

    async def request(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        start = time.perf_counter()
        metrics.POCKETBASE_IN_FLIGHT.inc()
        try:
            if self._token is None:
                await self._authenticate()
            response = await self._http.request(method, path, headers={"Authorization": self._token or ""}, **kwargs)
            # PocketBase ignores a token it no longer accepts (expired, or its superuser upserted again
            # as the image does at every start) and answers as to a guest: 403 on these superuser-only
            # collections, not 401. So both mean: authenticate again, once.
            if response.status_code in (401, 403):
                await self._authenticate()
                response = await self._http.request(method, path, headers={"Authorization": self._token or ""},
                                                    **kwargs)
        except httpx.HTTPError as err:
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            raise PocketBaseError(f"PocketBase {operation}: {type(err).__name__}") from err
        finally:
            metrics.POCKETBASE_IN_FLIGHT.dec()
            metrics.POCKETBASE_LATENCY.labels(operation).observe(time.perf_counter() - start)
        if response.status_code >= 400 and "database is locked" in response.text:
            metrics.POCKETBASE_LOCKS.labels(operation).inc()
        if response.status_code >= 500 or response.status_code in (401, 403):
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code}")
        return response

    async def healthy(self) -> bool:
        try:
            return (await self._http.get("/api/health")).status_code == 200
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

    @staticmethod
    def _written(response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 400:
            data: Any = response.json().get("data", {})
            problems = cast(dict[str, Any], data) if isinstance(data, dict) else {}
            if any(isinstance(v, dict) and cast(dict[str, Any], v).get("code") == "validation_not_unique"
                   for v in problems.values()):
                raise NotUnique(str(problems))
            raise PocketBaseError(f"PocketBase refused the write: {data}")
        if response.status_code not in (200, 201):
            raise PocketBaseError(f"PocketBase write: HTTP {response.status_code}")
        return response.json()
