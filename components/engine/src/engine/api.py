"""The HTTP API, versioned under /v1. Errors are RFC 9457 problem details."""

import asyncio
import hmac
import importlib.util
import ipaddress
import json
import logging
import os
import re
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import metrics
from engine.adapters.cache import Cache
from engine.adapters.cloudflare import CatalogPurger
from engine.domain.model import MAX_EXACT, CommissionRules, DomainError, LineRequest, Product, TransitionError
from engine.registry import Principal, TenantRegistry, shard_documents
from engine.schema import ACCOUNTS
from engine.services import CATALOG_MEMORY_S, Engine, IdempotencyConflict, NotFound, order_view
from engine.settings import Settings
from engine.storage import Store, StoreUnavailable, WritesPaused
from engine.vitals import BeaconError, Recorder, validate
from engine.writes_paused import RETRY_AFTER_S, WritesPausedProbe

# Patterns match the whole value, in ASCII: pydantic's (Rust) `$` is the end of the text, and MONTH is
# used with fullmatch, so neither lets a trailing newline or a full-width digit through.
ID = r"^[A-Za-z0-9_-]{1,64}$"
MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)
Id = Annotated[str, Field(pattern=ID)]
Cents = Annotated[int, Field(ge=0, le=MAX_EXACT)]


CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _no_controls(value: str) -> str:
    """An admin's text holds no C0 control character (U+0000-U+001F) nor DEL. PostgreSQL's text and jsonb cannot
    hold NUL (https://www.postgresql.org/docs/15/datatype-character.html, .../datatype-json.html) while PocketBase
    stores it, so the two stores would answer differently (a 503 on one); the other controls have no place in a name
    shown on a storefront or a report and break the lines of logs and exports. Refused before any store sees it."""
    found = CONTROLS.search(value)
    if found:
        raise ValueError(f"control character U+{ord(found.group()):04X} at position {found.start()}; expected "
                         "printable text")
    return value


Text = AfterValidator(_no_controls)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LineIn(_Body):
    sku: Id
    quantity: Annotated[int, Field(ge=1, le=MAX_EXACT)]
    discount_cents: Cents = 0


class OrderIn(_Body):
    affiliate_id: Id | None = None
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=200)]


class ProductIn(_Body):
    name: Annotated[str, Field(min_length=1, max_length=200), Text]
    category: Annotated[str, Field(max_length=64), Text] = ""
    price_cents: Cents
    active: bool = True


class AffiliateIn(_Body):
    name: Annotated[str, Field(max_length=200), Text] = ""


class RulesIn(_Body):
    default_rate_bps: Annotated[int, Field(ge=0, le=10_000)] = 0
    category_rates_bps: dict[Annotated[str, Text], Annotated[int, Field(ge=0, le=10_000)]] = {}
    product_rates_bps: dict[Id, Annotated[int, Field(ge=0, le=10_000)]] = {}
    order_cap_cents: Cents | None = None
    """None: no cap. 0 is a cap of 0: an affiliate earns nothing on this tenant's orders."""


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
                        status_code=status, media_type="application/problem+json")


class Metrics:
    """Pure ASGI middleware: count and time every request by route template, method, status, tenant."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, capture)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            tenant = scope.get("state", {}).get("tenant", "-")
            labels = (path, scope["method"], str(status[0]), tenant)
            metrics.HTTP_REQUESTS.labels(*labels).inc()
            metrics.HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - start)


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

PRIVATE_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
"""What the private network may ask without the edge's secret: the telemetry agent's scrape and the platform's
probes. Nothing else is served to a request that did not come through the edge."""
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "via", "cf-connecting-ip", "cf-ray", "x-real-ip")
"""Headers every proxy in front of the engine adds to what it forwards: Google's external Application Load
Balancer appends to X-Forwarded-For and adds Via (https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header),
Cloudflare (and cloudflared) add CF-Connecting-IP, CF-Ray and X-Forwarded-For
(https://developers.cloudflare.com/fundamentals/reference/http-headers/), Railway's edge X-Forwarded-For and
X-Real-IP. A caller can add them but a proxy's own cannot be removed: their presence only ever refuses the
private paths; their absence never grants anything by itself."""


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class EdgeGuard:
    """Pure ASGI middleware: only the edge reaches the engine, whatever Host a request names (#22.2).

    Cloudflare adds `X-Origin-Auth: <secret>` to every request it forwards for the API host (a request header
    transform rule, components/edge.py). With ORIGIN_AUTH_SECRET set, a request without it (compared in constant
    time) is refused 403 whatever its Host, path or method: Host is the caller's word (another case, a trailing
    dot, a port, another Cloudflare customer's zone pointed at our origin), so it decides nothing.

    The private paths (/metrics, /healthz, /readyz) are served without the secret only over the private network,
    which the engine establishes from the socket, never from a header:
    - on the private listener (INTERNAL_PORT, `scope["server"]`): a port that neither the load balancer (it sends to
      the container port only), the Cloudflare Tunnel (it routes to the public port), nor Railway's public domain
      (its target port) forwards to; the telemetry agent scrapes it and the platform's probes ask it;
    - from a loopback peer (the container's own HEALTHCHECK, a sidecar in the same network namespace) carrying
      none of the headers a proxy adds (PROXY_HEADERS).
    `/metrics` is never served to a request that came through the edge (it carries the secret) or a proxy.
    Only a request that came through the edge has its client address taken from `CF-Connecting-IP`.
    Without ORIGIN_AUTH_SECRET (a developer's machine) everything is served, as before the edge existed.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], origin_auth_secret: str | None,
                 internal_port: int | None = None) -> None:
        self.app = app
        self.secret = (origin_auth_secret or "").encode() or None
        self.internal_port = internal_port

    def _private(self, scope: dict[str, Any], headers: dict[str, bytes]) -> bool:
        server = scope.get("server") or ("", None)
        if self.internal_port is not None and server[1] == self.internal_port:
            return True
        client = scope.get("client") or ("", 0)
        return _loopback(str(client[0])) and not any(name in headers for name in PROXY_HEADERS)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # A WebSocket handshake is a request to the origin like any other (its scope is `websocket`, not `http`):
        # guarded the same. Only `lifespan` (the server's own, no request) passes untouched.
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", ())}
        given = headers.get("x-origin-auth")
        via_edge = self.secret is not None and given is not None and hmac.compare_digest(given, self.secret)
        client = scope.get("client") or ("-", 0)
        state = scope.setdefault("state", {})
        state["client_ip"] = headers["cf-connecting-ip"].decode("latin-1") if via_edge and "cf-connecting-ip" in \
            headers else client[0]
        state["via_edge"] = via_edge
        path = scope.get("path", "")
        if self.secret is None:
            await self.app(scope, receive, send)
            return
        if path in PRIVATE_PATHS and not via_edge and self._private(scope, headers):
            await self.app(scope, receive, send)
            return
        if self.internal_port is not None and (scope.get("server") or ("", None))[1] == self.internal_port:
            await _refuse(scope, receive, send, problem(404, "Not Found", "no such resource"))
            return
        if not via_edge:
            await _refuse(scope, receive, send, problem(403, "Forbidden", "forbidden"))
            return
        if path == "/metrics":
            await _refuse(scope, receive, send, problem(404, "Not Found", "no such resource"))
            return
        await self.app(scope, receive, send)


async def _refuse(scope: dict[str, Any], receive: Any, send: Any, response: JSONResponse) -> None:
    """The refusal as an HTTP response; to a WebSocket handshake the same response as a denial ("websocket.http.
    response", https://asgi.readthedocs.io/en/latest/extensions.html#websocket-denial-response: Starlette's Response
    sends it for a websocket scope), or where the server lacks that extension a close before accepting, which the
    server answers 403 (https://asgi.readthedocs.io/en/latest/specs/www.html#close-send-event)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    await response(scope, receive, send)


class _Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread. There is
# one per request, reading the header itself: each dependency and declared parameter costs FastAPI several µs
# per request, and the cached reads are measured against a bare endpoint (bench/engine_load.py).
async def _principal(request: Request) -> Principal:
    registry: TenantRegistry = request.app.state.registry
    # RFC 9110 11.1: the scheme is case-insensitive, and one or more spaces separate it from the key.
    scheme, _, key = (request.headers.get("authorization") or "").partition(" ")
    key = key.strip(" ")
    found = registry.authenticate(key) if key and scheme.lower() == "bearer" else None
    if found is None:
        raise _Problem(401, "Unauthorized", "a valid tenant API key is required as `Authorization: Bearer <key>`",
                       {"WWW-Authenticate": "Bearer"})
    request.scope.setdefault("state", {})["tenant"] = found.tenant.slug  # the metrics label
    return found


async def _admin(who: Annotated[Principal, Depends(_principal)]) -> Principal:
    if not who.admin:
        raise _Problem(403, "Forbidden", "this needs the tenant's admin key")
    return who


Who = Annotated[Principal, Depends(_principal)]
Admin = Annotated[Principal, Depends(_admin)]


def _logging() -> None:
    """The engine's own log lines (warnings of background work, such as a failed purge) on stderr."""
    logger = logging.getLogger("engine")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


OPTIONAL_IMPORTS_RETRIED = ("sniffio",)
"""Modules a library imports inside a function on every call, optionally. httpcore's `current_async_library()`
runs `import sniffio` at every lock, event and cancellation shield it creates, several per PocketBase call, and
falls back to "asyncio" when it fails; anyio stopped installing sniffio in 4.11 (agronholm/anyio#1021), and Python
does not cache a failed import, so every call searched sys.path: 11 % of the engine's CPU on the mix
(bench/README.md; encode/httpcore#1103, still open)."""


def _refuse_missing_optional_imports() -> None:
    """A module of OPTIONAL_IMPORTS_RETRIED that is not installed is entered in sys.modules as None: importing it
    then raises ModuleNotFoundError at once, without a search ("If the value is None, the import raises
    ModuleNotFoundError", https://docs.python.org/3/reference/import.html#the-module-cache). The caller's answer
    is the same; an installed module is left alone."""
    for name in OPTIONAL_IMPORTS_RETRIED:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # pyright: ignore[reportArgumentType]


def create_app(settings: Settings) -> FastAPI:
    registry = TenantRegistry.from_documents([settings.tenants_json, *shard_documents(os.environ)])
    _logging()
    _refuse_missing_optional_imports()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        store = open_store(settings)
        cache = Cache(settings.redis_url, settings.redis_timeout_seconds, settings.redis_ca_cert)
        purger = None
        if not settings.catalog_purge_missing:
            purger = CatalogPurger(settings.cloudflare_api_url, settings.cloudflare_zone_id or "",
                                   settings.catalog_purge_token or "", settings.catalog_public_base_url or "",
                                   delay_s=CATALOG_MEMORY_S + 1.0)
        app.state.engine = Engine(store, cache, settings.summary_cache_seconds, settings.catalog_cache_seconds,
                                  purger)
        # Only a PocketBase store is paused by a migration (infra/ops/migrate_db.py), from PocketBase's side.
        paused_probe = WritesPausedProbe(settings.pocketbase_url, ACCOUNTS, settings.pocketbase_email or "",
                                         settings.pocketbase_password or "", settings.pocketbase_ca_cert) \
            if settings.storage == "pocketbase" and settings.pocketbase_url else None
        app.state.writes_paused = paused_probe
        watch = asyncio.create_task(_watch_start(store, settings))
        yield
        watch.cancel()
        if paused_probe is not None:
            await paused_probe.close()
        if purger is not None:
            await purger.close()
        await store.close()
        await cache.close()
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # this worker's in-flight gauges leave the sums
            multiprocess.mark_process_dead(os.getpid())  # pyright: ignore[reportUnknownMemberType]

    # FastAPI's own OpenTelemetry hooks stay off: traces come from `_tracing` when OTLP is configured (one server
    # span per request, tested), metrics from the Metrics middleware; off, they cost no lookup per request.
    # The API's map (/openapi.json, which /docs reads) only where its reference is served: not to the world.
    app = FastAPI(title="Commission Engine", version="0.1.0", lifespan=lifespan, redoc_url=None,
                  docs_url="/docs" if settings.api_docs else None,
                  openapi_url="/openapi.json" if settings.api_docs else None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.registry = registry

    def eng() -> Engine:
        engine: Engine = app.state.engine  # set by the lifespan
        return engine

    recorder = Recorder()
    tenants = {t.slug: t for t in registry.tenants}
    tenant_slugs = set(tenants)
    app.add_middleware(Metrics)  # pyright: ignore[reportArgumentType]
    app.add_middleware(EdgeGuard, origin_auth_secret=settings.origin_auth_secret,  # pyright: ignore[reportArgumentType]
                       internal_port=settings.internal_port)

    @app.exception_handler(_Problem)
    async def _problem(_: Request, exc: _Problem) -> JSONResponse:
        response = problem(exc.status, exc.title, exc.detail)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own errors (no such route, method not allowed, an unreadable body) as problems too."""
        titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed"}
        response = problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        """A bug: a problem without the traceback (the server logs it)."""
        return problem(500, "Internal error", "the engine failed to answer this request; it is logged")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(err["loc"]), "message": err["msg"]} for err in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return problem(422, "Invalid request", str(exc), errors=[{"field": exc.field_path, "message": exc.message}])

    @app.exception_handler(TransitionError)
    async def _transition(_: Request, exc: TransitionError) -> JSONResponse:
        return problem(409, "Illegal status change", str(exc), current_status=exc.current.value)

    @app.exception_handler(IdempotencyConflict)
    async def _idempotency(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return problem(409, "Idempotency-Key reused", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, "Not found", str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        probe: WritesPausedProbe | None = getattr(request.app.state, "writes_paused", None)
        if isinstance(exc, WritesPaused) or (request.method in WRITE_METHODS and probe is not None
                                             and await probe.paused()):
            # A migration holds the writes (PostgreSQL read-only: WritesPaused; PocketBase refusing the engine's
            # account: engine/writes_paused.py): nothing was stored; the same request, with the same
            # Idempotency-Key, succeeds once the store takes writes again.
            response = problem(503, "Writes paused", "the order store is being moved and takes no writes for a "
                               "few seconds; retry after Retry-After seconds with the same Idempotency-Key",
                               error="writes_paused")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        return problem(503, "Storage unavailable", "the order store is unreachable or busy; retry later (an order "
                       "retried with the same Idempotency-Key is created once)")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """200 `{"ready": true, "checks": {...}}` when both dependencies serve; else the 503 problem naming each
        one that does not and why (`reasons`), with the same `checks`. PocketBase serves once it accepts the
        engine's account and holds its collections (PocketBase.schema_problem), then while `/api/health`
        answers; Redis while it answers PING. `/healthz` (liveness, the startup probe) asks neither: an
        engine whose PocketBase is stopped (prod's standby) starts and waits, ready on its own when it serves."""
        store = eng().store
        stored, redis = await asyncio.gather(store.unready(), eng().cache.unready())
        reasons = {name: why for name, why in ((store.name, stored), ("redis", redis)) if why is not None}
        checks = {store.name: stored is None, "redis": redis is None}
        if not reasons:
            return JSONResponse({"ready": True, "checks": checks})
        if request.scope.get("state", {}).get("via_edge"):
            # Through the edge (the rollout reads `checks` there, infra/ops/rollout.py `dependencies_down`): which
            # dependency is down, never why; the reasons name addresses and hosts, and stay on the private listener.
            return problem(503, "Not ready", "not serving: " + ", ".join(reasons), ready=False, checks=checks)
        return problem(503, "Not ready", "; ".join(f"{name}: {why}" for name, why in reasons.items()), ready=False,
                       checks=checks, reasons=reasons)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        registry_ = None
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry_ = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry_)
        return Response(generate_latest(registry_) if registry_ else generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/vitals", status_code=204)
    async def vitals(request: Request) -> Response:
        """Web-vitals beacons from storefronts; no key (browsers send them), so all is validated."""
        client: str = request.scope.get("state", {}).get("client_ip", "-")  # EdgeGuard: the edge's word only
        if not recorder.allow(client):
            raise _Problem(429, "Too many beacons", "this client sent too many beacons this minute")
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            raise _Problem(422, "Invalid request", "the body is not JSON") from None
        except RecursionError:
            raise _Problem(422, "Invalid request", "the body is nested too deeply") from None
        if not isinstance(body, dict):
            raise _Problem(422, "Invalid request", "expected a JSON object {tenant, route, metrics}")
        beacon = cast(dict[str, Any], body)
        try:
            tenant, route, measurements = validate(beacon.get("tenant"), beacon.get("route"), beacon.get("metrics"),
                                                   tenant_slugs)
        except BeaconError as err:
            return problem(422, "Invalid request", str(err), errors=[{"field": err.field, "message": err.message}])
        recorder.record(tenant, route, measurements)
        return Response(status_code=204)

    def catalog_headers(etag: str) -> dict[str, str]:
        # A browser keeps it a minute, the edge a day (C5): a product write purges the edge's copy,
        # and nothing can purge a browser's, so its max-age stays short.
        return {"ETag": etag, "Cache-Control": f"public, max-age={settings.catalog_browser_seconds}, "
                                               f"s-maxage={max(settings.edge_seconds, 0)}"}

    @app.get("/v1/catalog")
    async def catalog(who: Who, if_none_match: Annotated[str | None, Header()] = None) -> Response:
        body, etag = await eng().catalog_with_etag(who.tenant)
        headers = catalog_headers(etag) | {"Vary": "Authorization"}
        if _etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @app.get("/v1/catalog/{tenant}")
    async def public_catalog(tenant: str, request: Request) -> Response:
        """The same document without a key, at one URL per tenant: what the edge caches, and purges."""
        found = tenants.get(tenant)
        if found is None:
            raise _Problem(404, "Not found", "no tenant has this slug")
        request.scope.setdefault("state", {})["tenant"] = found.slug  # the metrics label
        body, etag = await eng().catalog_with_etag(found)
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=catalog_headers(etag))
        return Response(body, media_type="application/json", headers=catalog_headers(etag))

    @app.post("/v1/orders", status_code=201)
    async def create_order(body: OrderIn, who: Who, response: Response,
                           idempotency_key: Annotated[str, Header(pattern=r"^[A-Za-z0-9_.:-]{8,128}$")]) -> Any:
        order, created = await eng().create_order(who.tenant, idempotency_key, body.affiliate_id, [
            LineRequest(line.sku, line.quantity, line.discount_cents) for line in body.lines])
        if not created:
            response.status_code = 200
        return order

    @app.get("/v1/orders/{order_id}")
    async def get_order(order_id: Annotated[str, Path(max_length=64)], who: Who) -> Any:
        return order_view(await eng().order(who.tenant, order_id))

    for action in ("pay", "cancel", "refund"):
        def make(action: str = action) -> Callable[..., Awaitable[Any]]:
            async def transition(order_id: Annotated[str, Path(max_length=64)], who: Who) -> Any:
                return await eng().transition(who.tenant, order_id, action)
            return transition
        app.post(f"/v1/orders/{{order_id}}/{action}", name=f"{action}_order")(make())

    @app.get("/v1/affiliates/{affiliate_id}/commissions")
    async def commissions(affiliate_id: Annotated[str, Path(pattern=ID)], month: str, who: Who) -> Any:
        if not MONTH.fullmatch(month):
            raise _Problem(422, "Invalid request", f"month: {month!r}; expected YYYY-MM")
        return Response(await eng().summary(who.tenant, affiliate_id, month), media_type="application/json")

    @app.put("/v1/products/{sku}")
    async def put_product(sku: Annotated[str, Path(pattern=ID)], body: ProductIn, who: Admin) -> Any:
        product = Product(sku, body.name, body.category, body.price_cents, body.active)
        return await eng().put_product(who.tenant, product, actor=who.key_id)

    @app.put("/v1/affiliates/{affiliate_id}")
    async def put_affiliate(affiliate_id: Annotated[str, Path(pattern=ID)], body: AffiliateIn, who: Admin) -> Any:
        return await eng().put_affiliate(who.tenant, affiliate_id, body.name, actor=who.key_id)

    @app.get("/v1/commission-rules")
    async def get_rules(who: Admin) -> Any:
        return await eng().rules(who.tenant)

    @app.put("/v1/commission-rules")
    async def put_rules(body: RulesIn, who: Admin) -> Any:
        return await eng().put_rules(who.tenant, CommissionRules(**body.model_dump()), actor=who.key_id)

    _tracing(app, settings)
    return app


def open_store(settings: Settings) -> Store:
    """The order store the settings choose (STORAGE): PocketBase (default) or PostgreSQL."""
    if settings.storage == "postgres":
        from engine.storage.postgres import PostgresStore

        return PostgresStore.from_settings(settings)
    from engine.adapters.pocketbase import PocketBase
    from engine.schema import required, version_fields
    from engine.storage.pocketbase import PocketBaseStore

    return PocketBaseStore(PocketBase(settings.pocketbase_url or "", ACCOUNTS, settings.pocketbase_email or "",
                                      settings.pocketbase_password or "", settings.pocketbase_timeout_seconds,
                                      required(), version_fields(), ca_cert=settings.pocketbase_ca_cert))


async def _watch_start(store: Store, settings: Settings) -> None:
    """From the start: check the store's schema every second (so the engine turns ready on its own, #20.1)
    and, if it is still not served after `pocketbase_start_wait_seconds`, say once what to look at. The engine
    keeps serving (liveness, and 503s): a standby engine's PocketBase is stopped by design."""
    logger = logging.getLogger("engine")
    deadline = time.monotonic() + settings.pocketbase_start_wait_seconds
    while (problem := await store.schema_problem()) is not None:
        if time.monotonic() >= deadline and store.name != "pocketbase":
            logger.warning("not ready: %s (POSTGRES_HOST=%s, POSTGRES_DB=%s, still so after %.0f s). The schema is "
                           "applied by `python -m engine migrate` as the migrator account, before the engine starts.",
                           problem, settings.postgres_host, settings.postgres_db,
                           settings.pocketbase_start_wait_seconds)
            deadline = float("inf")
        elif time.monotonic() >= deadline:
            logger.warning(
                "not ready: %s (POCKETBASE_URL=%s, still so after %.0f s). PocketBase's image applies the engine's "
                "collections and its account in %s at its start (pb_hooks/engine_schema.pb.js with "
                "engine_schema.json, from PB_ENGINE_EMAIL and PB_ENGINE_PASSWORD): is it that image, of this "
                "engine's version, given the password the engine has as POCKETBASE_PASSWORD? A standby's "
                "PocketBase is stopped until failover: then this is expected.", problem, settings.pocketbase_url,
                settings.pocketbase_start_wait_seconds, ACCOUNTS)
            deadline = float("inf")
        await asyncio.sleep(1.0)


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match by weak comparison (RFC 9110 13.1.2): a list, `*`, or a W/ tag (the edge may weaken it)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "request"


def _tracing(app: FastAPI, settings: Settings) -> None:
    """OpenTelemetry traces over OTLP/HTTP, when an endpoint is configured (A1, M7)."""
    if not settings.otel_exporter_otlp_endpoint:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name,
                                                        "deployment.environment": settings.environment}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(provider)
    # One server span per request. Not also a span per ASGI message it receives or sends (the instrumentation's
    # default, "<route> http send", kind internal, twice a response): `exclude_spans` drops them
    # (opentelemetry-instrumentation-fastapi 0.66b2, FastAPIInstrumentor.instrument_app); in process they were half
    # of tracing's CPU per request, which is several times the rest of the framework's (bench/README.md).
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"])


def app_from_env() -> FastAPI:
    """The uvicorn factory: settings from the environment."""
    return create_app(Settings())  # pyright: ignore[reportCallIssue]
