"""PocketBase over its REST API, as the engine's own account (engine/schema.py: an auth collection whose one
account the engine's collections admit, and nothing else; never the superuser, #11.2). Every call is timed
and counted."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, cast

import httpx

from engine import metrics
from engine.storage.port import NotUnique, StoreUnavailable

__all__ = ["MissingCollection", "NotUnique", "PocketBase", "PocketBaseError", "pocketbase_data", "quote"]


class PocketBaseError(StoreUnavailable):
    """PocketBase is unreachable or failed: the request cannot be served (HTTP 503)."""


class MissingCollection(PocketBaseError):
    """PocketBase has no such collection (restarted without the engine's schema): not a record not found."""


MISSING_COLLECTION = "Missing collection context."
"""PocketBase's 404 message for a collection it does not have, apart from a record it does not have ("The
requested resource wasn't found."): pocketbase/pocketbase apis/record_crud.go, `e.NotFoundError("Missing
collection context.", err)` when `FindCachedCollectionByNameOrId` fails; seen from 0.40.6 as
`{"data":{},"message":"Missing collection context.","status":404}` (#23, second audit)."""


@contextmanager
def pocketbase_data(operation: str) -> Generator[None]:
    """Reading what PocketBase answered: a field missing or of another type (something in front of it answered
    200 with JSON of another shape) is PocketBase failing, the 503 problem, never a 500 (#23, second audit)."""
    try:
        yield
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise PocketBaseError(f"PocketBase {operation}: an answer of another shape ({type(err).__name__}: "
                              f"{str(err)[:80]})") from err


def _has_code(data: Any, code: str) -> bool:
    """Whether PocketBase's error data holds a field error with `code`, at any depth (a batch nests them)."""
    if isinstance(data, dict):
        fields = cast(dict[str, Any], data)
        return fields.get("code") == code or any(_has_code(value, code) for value in fields.values())
    return False


def _written_result(result: Any) -> bool:
    """Whether one batch result is a write that succeeded: `{"status": 2xx, "body": {"id": "...", ...}}`."""
    if not isinstance(result, dict):
        return False
    fields = cast(dict[str, Any], result)
    status, body = fields.get("status"), fields.get("body")
    return (isinstance(status, int) and 200 <= status < 300 and isinstance(body, dict)
            and isinstance(cast(dict[str, Any], body).get("id"), str))


def _seconds(value: float) -> str:
    """Seconds for a message: tenths at most ("1.7", "2"), not the float a subtraction left (1.69144)."""
    return f"{round(value, 1):g}"


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


def pocketbase_error_body(response: httpx.Response) -> dict[str, Any] | None:
    """PocketBase's own error document, or None when the answer is not one.

    PocketBase answers every error as JSON `{"status": <code>, "message": "...", "data": {...}}`
    (pocketbase/pocketbase, tools/router/error.go: `ApiError` with `json:"data"`, `json:"message"`,
    `json:"status"`). Something in front of it (a load balancer, a proxy, a VM's port answered by another
    program) answers HTML or plain text: that is not PocketBase's word on the record (#23.4).
    """
    try:
        body: Any = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    fields = cast(dict[str, Any], body)
    if fields.get("status") != response.status_code or not isinstance(fields.get("message"), str):
        return None
    return fields


def _why(operation: str, err: httpx.HTTPError, timeout_s: float) -> str:
    """A failed call in words an operator can act on (no URL, no credentials)."""
    if isinstance(err, httpx.ConnectTimeout):
        return f"PocketBase {operation}: no connection within {timeout_s:g} s (ConnectTimeout)"
    if isinstance(err, httpx.ConnectError):
        return f"PocketBase {operation}: connection refused or failed (ConnectError: {err})"
    if isinstance(err, httpx.TimeoutException):
        return f"PocketBase {operation}: no answer within {timeout_s:g} s ({type(err).__name__})"
    return f"PocketBase {operation}: {type(err).__name__}"


def tls_context(ca_cert: str | None) -> ssl.SSLContext:
    """How the engine verifies an `https://` PocketBase (#22 item 7, S1). With `ca_cert` (the certificate the stack
    generated for PocketBase's VM, components/database.py), that certificate is the only trust anchor and the
    host name is still checked: the URL's IP address must be one the certificate names (Python matches IP
    addresses against the subjectAltName's IP entries, docs.python.org/3/library/ssl.html#ssl.SSLContext.
    check_hostname). Without it, the system's CAs. Never unverified."""
    if not ca_cert:
        return ssl.create_default_context()
    context = ssl.create_default_context(cadata=ca_cert)  # given cadata, no system CA is loaded
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class PocketBase:
    """The engine's PocketBase, which it serves from only once it holds the engine's collections.

    Readiness (#20.1): the engine starts whatever PocketBase does (a standby engine's PocketBase is stopped
    by design) and asks, at most once a `SCHEMA_RECHECK_S`, whether PocketBase accepts its account and has
    all of `required` (the collections of engine/schema.py and the fields the engine reads and writes, which
    PocketBase's image applies at its start). Until it has, every call raises PocketBaseError with the reason
    (the API's 503 problem) and `/readyz` says it. Once it has, that holds until PocketBase says otherwise: a
    refusal of the engine's account (a password rotated on one side) or a missing collection (PocketBase
    restarted on another data directory, or without the hooks) forgets it, so the next call checks again
    and `/readyz` says why (#23, second audit: it had said ready for ever, and a GET of an order answered
    404). Readiness is then one cheap call as the engine's account (`READINESS_COLLECTION`, one row), not
    PocketBase's `/api/health`, which answers 200 whoever asks and whatever schema it holds.
    """

    SCHEMA_RECHECK_S = 1.0
    READINESS_WAIT_S = 2.0
    """How long /readyz waits on PocketBase, whatever the calls' timeout: a probe must get an answer."""
    READINESS_COLLECTION = "orders"

    def __init__(self, url: str, accounts: str, email: str, password: str, timeout_s: float = 5.0,
                 required: dict[str, tuple[str, ...]] | None = None,
                 texts: dict[str, tuple[str, ...]] | None = None, ca_cert: str | None = None) -> None:
        """`accounts`: the auth collection the account is in. `required`: the collections to wait for, each
        with the fields the engine needs in it. `texts`: of those, the fields that must be text (the version
        tokens, engine/schema.py `version_fields`). `ca_cert`: PEM of the certificate an `https://` PocketBase
        presents (POCKETBASE_CA_CERT), trusted alone; see `tls_context`."""
        self._accounts, self._email, self._password = accounts, email, password
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, transport=_Transport(
            verify=tls_context(ca_cert), limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)))
        self._token: str | None = None
        self._signing_in = asyncio.Lock()
        self._required = required or {}
        self._texts = texts or {}
        self._schema_ok = not self._required
        self._schema_problem: tuple[float, str] | None = None
        self._schema_check: asyncio.Future[str | None] | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _authenticate(self) -> None:
        response = await self._http.post(f"/api/collections/{self._accounts}/auth-with-password",
                                         json={"identity": self._email, "password": self._password})
        if response.status_code != 200:
            if response.status_code in (400, 401, 403, 404):  # refused, or no such auth collection: recheck
                self._schema_lost()
            raise PocketBaseError(f"PocketBase refused the engine's account {self._email} in {self._accounts} "
                                  f"(HTTP {response.status_code})")
        token = self._json(response, "auth").get("token") if response.status_code == 200 else None
        if not isinstance(token, str):
            raise PocketBaseError("PocketBase auth: HTTP 200 without a token")
        self._token = token

    # -- readiness ---------------------------------------------------------------------------------

    def _schema_lost(self) -> None:
        """PocketBase refused the account or lacks a collection: check the schema again before serving."""
        if self._required:
            self._schema_ok, self._schema_problem = False, None

    def schema_broken(self, problem: str) -> None:
        """A write PocketBase stored otherwise than sent (a version token of a field of another type, #23 audit
        2): not ready, saying `problem` until the next check, which names the field (`_wrong_types`)."""
        if self._required:
            self._schema_ok, self._schema_problem = False, (time.monotonic(), problem)

    async def schema_problem(self, wait_s: float | None = None) -> str | None:
        """None once PocketBase accepts the engine's account and has every required collection and field; else
        why not. Rechecked at most once a SCHEMA_RECHECK_S however many requests ask (one check, shared).

        `wait_s` (for /readyz): while a check runs longer (PocketBase blackholed: up to the calls' timeout),
        answer the last problem known, or that the check has not answered, instead of waiting for it; the
        check goes on, shielded, for the callers that wait (#23, second audit: /readyz took 5 s)."""
        if self._schema_ok:
            return None
        last = self._schema_problem
        if last is not None and time.monotonic() - last[0] < self.SCHEMA_RECHECK_S:
            return last[1]
        if self._schema_check is None or self._schema_check.done():
            self._schema_check = asyncio.ensure_future(self._check_schema())
        try:
            async with asyncio.timeout(wait_s):
                return await asyncio.shield(self._schema_check)
        except TimeoutError:
            if last is not None:
                return last[1]
            return f"PocketBase schema check: no answer within {_seconds(wait_s or 0.0)} s"

    async def _check_schema(self) -> str | None:
        try:
            gaps = await asyncio.gather(*(self._schema_gap(name, fields) for name, fields in self._required.items()))
            absent = [gap for gap in gaps if gap]
            problem = (f"PocketBase lacks {', '.join(absent)} (its image applies the engine's schema at its "
                       "start)") if absent else None
        except PocketBaseError as err:
            problem = str(err)
        if problem is None:
            self._schema_ok, self._schema_problem = True, None
        else:
            self._schema_problem = (time.monotonic(), problem)
        return problem

    async def _schema_gap(self, collection: str, fields: tuple[str, ...]) -> str | None:
        """What of `collection` and its `fields` PocketBase lacks ("collection orders", "affiliates.summary_version")
        or None, asked as the engine's account with one row at most.

        A field is asked for in a filter: PocketBase refuses a filter on a field its collection does not have
        with 400 (0.40.6: `{"message":"Something went wrong while processing your request.","status":400}`),
        where a write would silently drop it. Only when the whole filter is refused is each field asked apart,
        to name the missing ones."""
        try:
            refused = await self._filter_refused(collection, fields)
        except MissingCollection:
            return f"collection {collection}"
        if refused:
            missing = [field for field in fields if await self._filter_refused(collection, (field,))]
            return ", ".join(f"{collection}.{field}" for field in missing) or f"a filter on {collection}"
        return await self._wrong_types(collection, self._texts.get(collection, ()))

    async def _wrong_types(self, collection: str, texts: tuple[str, ...]) -> str | None:
        """Which of `texts` PocketBase holds as another type, read in one of the collection's records.

        A filter accepts a field of any type, so a version token's field turned number, bool or json passes the
        filter check while PocketBase stores one constant for every token (a number field casts "3fa2..." to 0,
        a bool to false): the cache check is then off (#23, second audit). A record's field answers in its type:
        a text field as a JSON string, a number as a number, a bool as a bool. An empty collection tells
        nothing; then the first write, whose answer is checked (services.Engine), finds it. A json field that
        stores the token as a JSON string is not seen, and needs not be: the tokens still differ."""
        if not texts:
            return None
        response = await self._call("schema", "GET", f"/api/collections/{collection}/records",
                                    params={"perPage": 1, "skipTotal": 1, "fields": ",".join(texts)})
        items = self._items(response, "schema", ",".join(texts))
        wrong = [f"{collection}.{field} as text (it holds {type(items[0][field]).__name__} "
                 f"{str(items[0][field])[:20]!r})" for field in texts if items and not isinstance(items[0][field], str)]
        return ", ".join(wrong) or None

    async def _filter_refused(self, collection: str, fields: tuple[str, ...]) -> bool:
        params: dict[str, str | int] = {"perPage": 1, "skipTotal": 1, "fields": "id"}
        if fields:
            # PocketBase resolves every field of a filter before it runs it, so the answer never needs a row:
            # `id=''` is found empty by the primary key, and `tenant=''` by the tenant-first index SQLite pushes
            # into the commission_totals view's GROUP BY, where a bare `f=''` could scan every order (EXPLAIN
            # QUERY PLAN, SQLite 3.40: "SEARCH orders USING INDEX idx_orders_summary (tenant=?)" with it, "SCAN
            # orders USING INDEX idx_orders_summary" without).
            guard = "id='' && tenant=''" if "tenant" in fields else "id=''"
            named = " || ".join(f"{field}=''" for field in fields)
            params["filter"] = f"{guard} && ({named})"
        response = await self._call("schema", "GET", f"/api/collections/{collection}/records", params=params)
        if response.status_code == 400:
            return True
        self._items(response, "schema")
        return False

    async def unready(self) -> str | None:
        """Why the engine cannot serve from PocketBase now (for /readyz), or None."""
        wait_s = min(self._timeout_s, self.READINESS_WAIT_S)
        started = time.monotonic()
        if (problem := await self.schema_problem(wait_s)) is not None:
            return problem
        wait_s = max(0.1, wait_s - (time.monotonic() - started))
        try:  # a free connection and the sign-in included: calls may hold them all
            async with asyncio.timeout(wait_s):
                response = await self._call("readiness", "GET", f"/api/collections/{self.READINESS_COLLECTION}/records",
                                            params={"perPage": 1, "skipTotal": 1, "fields": "id"})
                self._items(response, "readiness")
        except TimeoutError:
            return f"PocketBase readiness: no answer within {_seconds(wait_s)} s"
        except PocketBaseError as err:
            return str(err)
        return None

    # -- calls -------------------------------------------------------------------------------------

    async def request(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, once PocketBase holds the engine's schema (else PocketBaseError with the reason)."""
        if not self._schema_ok and (problem := await self.schema_problem()) is not None:
            raise PocketBaseError(problem)
        return await self._call(operation, method, path, **kwargs)

    async def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, timed and counted.

        A write held up by SQLite's lock (B1) does not say so: PocketBase waits for the lock (a 10 s busy
        timeout, retried up to 12 times), then answers 400 "Failed to create record." with no detail;
        "database is locked" is only in its own log. Well before that this client gives up (its timeout).
        So a write that times out while PocketBase still answers its health check is counted as locked:
        PocketBase is up and reads go on (WAL), but writes wait for the one writer.

        An error status is PocketBase's only if it comes with PocketBase's error document: an HTML 404 or
        502 from something in front of it is that thing failing, PocketBaseError (503), never "not found"
        or "refused" (#23.4).
        """
        start = time.perf_counter()
        metrics.POCKETBASE_IN_FLIGHT.inc()
        try:
            # The timeout bounds the whole call (a free connection, the sign-in, the answer), not each of
            # httpx's phases: with PocketBase frozen, calls queued for the pool waited 5 s, then 5 s more.
            async with asyncio.timeout(self._timeout_s):
                response = await self._signed_in(method, path, **kwargs)
        except (httpx.HTTPError, TimeoutError) as err:
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            late = isinstance(err, httpx.ReadTimeout | TimeoutError)
            if method != "GET" and late and await self.healthy(timeout_s=1.0):
                metrics.POCKETBASE_LOCKS.labels(operation).inc()
            if isinstance(err, TimeoutError):
                raise PocketBaseError(f"PocketBase {operation}: no answer within {self._timeout_s:g} s") from err
            raise PocketBaseError(_why(operation, err, self._timeout_s)) from err
        except PocketBaseError:
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            raise
        finally:
            metrics.POCKETBASE_IN_FLIGHT.dec()
            metrics.POCKETBASE_LATENCY.labels(operation).observe(time.perf_counter() - start)
        if response.status_code >= 400 and "database is locked" in response.text:  # as /api/sql reports it
            metrics.POCKETBASE_LOCKS.labels(operation).inc()
        if response.status_code in (401, 403):  # the account refused, again after signing in again: recheck
            self._schema_lost()
        if response.status_code >= 500 or response.status_code in (401, 403):
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code}")
        error = pocketbase_error_body(response) if response.status_code >= 400 else None
        if response.status_code >= 400 and error is None:
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code} that is not PocketBase's "
                                  "error document (something in front of it answered)")
        if response.status_code == 404 and error is not None and error.get("message") == MISSING_COLLECTION:
            metrics.POCKETBASE_ERRORS.labels(operation).inc()
            self._schema_lost()
            raise MissingCollection(f"PocketBase {operation}: {path.split('/')[3]}: {MISSING_COLLECTION} "
                                    "(PocketBase lacks the engine's schema)")
        return response

    async def _signed_in(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._token is None:
            await self._sign_in(None)
        token = self._token
        response = await self._http.request(method, path, headers={"Authorization": token or ""}, **kwargs)
        # PocketBase ignores a token it no longer accepts (expired, or of a password rotated at its start)
        # and answers as to a guest; its image answers a guest 401 on records and batches
        # (engine_schema.pb.js), where a rule would otherwise filter it to an empty list. A 403 is a
        # collection of an older schema, superuser-only. Both mean: authenticate again, once.
        if response.status_code in (401, 403):
            await self._sign_in(token)
            response = await self._http.request(method, path, headers={"Authorization": self._token or ""}, **kwargs)
        return response

    async def _sign_in(self, refused: str | None) -> None:
        """Sign in unless another call did since `refused` (the token it had, or None): one sign-in for calls
        that start together, not one each (#23, second audit: the schema check's 7 reads signed in 7 times)."""
        async with self._signing_in:
            if self._token == refused:
                await self._authenticate()

    @staticmethod
    def _json(response: httpx.Response, operation: str) -> dict[str, Any]:
        """The body as a JSON object; a body that is not one (a proxy's page, a cut answer) is PocketBase
        failing, PocketBaseError (503), never a 500 (#23.3)."""
        try:
            body: Any = response.json()
        except ValueError:
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code} with a body that is not "
                                  "JSON") from None
        if not isinstance(body, dict):
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code} with JSON that is not an "
                                  "object")
        return cast(dict[str, Any], body)

    @classmethod
    def _items(cls, response: httpx.Response, operation: str, fields: str | None = None) -> list[dict[str, Any]]:
        """The list's items, each holding the `fields` asked for (all of a record: its id at least)."""
        if response.status_code != 200:
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code}")
        items: Any = cls._json(response, operation).get("items")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in cast(list[Any], items)):
            raise PocketBaseError(f"PocketBase {operation}: a list without its items")
        wanted = fields.split(",") if fields else ["id"]
        if not all(key in item for item in cast(list[dict[str, Any]], items) for key in wanted):
            raise PocketBaseError(f"PocketBase {operation}: items without the fields asked for ({','.join(wanted)})")
        return cast(list[dict[str, Any]], items)

    @classmethod
    def _record(cls, response: httpx.Response, operation: str, fields: tuple[str, ...] = ()) -> dict[str, Any]:
        """A record PocketBase answered: a JSON object with a string id and the `fields` the caller reads; a 200
        of another shape (`{"code":500,"message":"upstream error"}` from something in front) is PocketBase
        failing, never a record (#23, second audit: it gave a 201 with id null)."""
        record = cls._json(response, operation)
        if not isinstance(record.get("id"), str) or not record["id"]:
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code} without a record id")
        if absent := [field for field in fields if field not in record]:
            raise PocketBaseError(f"PocketBase {operation}: a record without {', '.join(absent)}")
        return record

    async def healthy(self, timeout_s: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout_s if timeout_s is not None else self._timeout_s):
                return (await self._http.get("/api/health")).status_code == 200
        except (httpx.HTTPError, TimeoutError):
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
            batch = self._items(response, operation, fields)
            items += batch
            if len(batch) < 500:
                return items
            page += 1

    async def first(self, operation: str, collection: str, filter_: str, *, fields: str | None = None
                    ) -> dict[str, Any] | None:
        params: dict[str, str | int] = {"filter": filter_, "perPage": 1, "skipTotal": 1}
        if fields:
            params["fields"] = fields
        response = await self.request(operation, "GET", f"/api/collections/{collection}/records", params=params)
        items = self._items(response, operation, fields)
        return items[0] if items else None

    async def get(self, operation: str, collection: str, record_id: str, fields: tuple[str, ...] = ()
                  ) -> dict[str, Any] | None:
        """The record (with the `fields` the caller reads), or None when PocketBase itself says it has no such
        record: its 404 document for a record, never its 404 for a missing collection (`_call` raises
        MissingCollection) nor anyone else's error status (`_call` refuses them)."""
        response = await self.request(operation, "GET", f"/api/collections/{collection}/records/{record_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PocketBaseError(f"PocketBase {operation}: HTTP {response.status_code}")
        return self._record(response, operation, fields)

    async def create(self, operation: str, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.request(operation, "POST", f"/api/collections/{collection}/records", json=body)
        return self._written(response, operation)

    async def update(self, operation: str, collection: str, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.request(operation, "PATCH", f"/api/collections/{collection}/records/{record_id}",
                                      json=body)
        return self._written(response, operation)

    async def batch(self, operation: str, requests: list[dict[str, Any]]) -> list[Any]:
        """Several writes in one transaction (PocketBase's batch API): all stored, or none. Their bodies."""
        response = await self.request(operation, "POST", "/api/batch", json={"requests": requests})
        if response.status_code != 200:
            self._written(response, operation)
        try:
            results: Any = response.json()
        except ValueError:
            raise PocketBaseError(f"PocketBase {operation}: HTTP 200 with a body that is not JSON") from None
        # One result per request, each a 2xx with the record written (pocketbase/pocketbase apis/batch.go:
        # `BatchResponse{Status, Body}` per request, in order); anything else is not PocketBase's answer.
        if not isinstance(results, list) or len(cast(list[Any], results)) != len(requests) or not all(
                _written_result(result) for result in cast(list[Any], results)):
            raise PocketBaseError(f"PocketBase {operation}: a batch answer that is not one written record per "
                                  f"request ({len(requests)})")
        return [result["body"] for result in cast(list[dict[str, Any]], results)]

    @classmethod
    def _written(cls, response: httpx.Response, operation: str = "write") -> dict[str, Any]:
        if response.status_code == 400:
            data: Any = cls._json(response, operation).get("data", {})
            if _has_code(data, "validation_not_unique"):
                raise NotUnique(str(data))
            raise PocketBaseError(f"PocketBase refused the write: {data}")
        if response.status_code not in (200, 201):
            raise PocketBaseError(f"PocketBase write: HTTP {response.status_code}")
        return cls._record(response, operation)
