"""The engine against a real PocketBase and a real Redis: orders, idempotency, lifecycle, tenant
isolation, the summary cache, the catalog, metrics, and what happens when Redis or PocketBase fail."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine.dev import LocalStack

from tests.engine.conftest import EDGE_HEADERS, Running, TenantKeys, scrape

MONTH = dt.datetime.now(dt.UTC).strftime("%Y-%m")


def _setup_tenant(client: httpx.Client, tenant: TenantKeys, affiliate: str = "ana") -> None:
    admin = tenant.headers(admin=True)
    for sku, category, price in (("COFFEE", "food", 1999), ("MUG", "home", 4500)):
        assert client.put(f"/v1/products/{sku}", headers=admin,
                          json={"name": sku.title(), "category": category, "price_cents": price}).status_code == 200
    assert client.put(f"/v1/affiliates/{affiliate}", headers=admin, json={"name": affiliate}).status_code == 200
    assert client.put("/v1/commission-rules", headers=admin, json={
        "default_rate_bps": 500, "category_rates_bps": {"food": 250}, "product_rates_bps": {"MUG": 1000}}
    ).status_code == 200


def _order(client: httpx.Client, tenant: TenantKeys, lines: list[dict[str, Any]], affiliate: str | None = "ana",
           key: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"lines": lines} | ({"affiliate_id": affiliate} if affiliate else {})
    return client.post("/v1/orders", headers=tenant.headers() | {"Idempotency-Key": key or uuid.uuid4().hex},
                       json=body)


@pytest.fixture(scope="module")
def ready(engine: Running) -> Running:
    _setup_tenant(engine.client, engine.a)
    _setup_tenant(engine.client, engine.b)
    return engine


def test_an_order_is_stored_with_its_lines_and_commission(ready: Running) -> None:
    response = _order(ready.client, ready.a, [{"sku": "COFFEE", "quantity": 3, "discount_cents": 100},
                                              {"sku": "MUG", "quantity": 1}])

    assert response.status_code == 201
    order = response.json()
    assert (order["total_cents"], order["commission_cents"]) == (10397, 597)
    assert (order["status"], order["commission_status"], order["currency"]) == ("created", "pending", "BRL")
    stored = ready.client.get(f"/v1/orders/{order['id']}", headers=ready.a.headers()).json()
    assert stored["lines"] == order["lines"] and stored["commission_cents"] == 597


def test_the_same_idempotency_key_and_body_return_the_same_order_and_another_body_is_409(ready: Running) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    lines = [{"sku": "MUG", "quantity": 2}]

    first = _order(ready.client, ready.a, lines, key=key)
    again = _order(ready.client, ready.a, lines, key=key)
    other = _order(ready.client, ready.a, [{"sku": "MUG", "quantity": 3}], key=key)

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json() == first.json()
    assert other.headers["content-type"] == "application/problem+json"


def test_every_illegal_status_change_is_409(ready: Running) -> None:
    def new() -> str:
        return _order(ready.client, ready.a, [{"sku": "MUG", "quantity": 1}]).json()["id"]

    def act(order_id: str, action: str) -> int:
        return ready.client.post(f"/v1/orders/{order_id}/{action}", headers=ready.a.headers()).status_code

    created = new()
    assert act(created, "refund") == 409
    paid = new()
    assert act(paid, "pay") == 200
    assert [act(paid, a) for a in ("pay", "cancel")] == [409, 409]
    assert act(paid, "refund") == 200
    assert [act(paid, a) for a in ("pay", "cancel", "refund")] == [409, 409, 409]
    cancelled = new()
    assert act(cancelled, "cancel") == 200
    assert [act(cancelled, a) for a in ("pay", "cancel", "refund")] == [409, 409, 409]


def test_another_tenant_gets_404_on_an_order_id_never_the_data(ready: Running) -> None:
    order = _order(ready.client, ready.a, [{"sku": "MUG", "quantity": 1}]).json()

    for path, method in ((f"/v1/orders/{order['id']}", "GET"), (f"/v1/orders/{order['id']}/pay", "POST")):
        response = ready.client.request(method, path, headers=ready.b.headers())
        assert response.status_code == 404
        assert order["id"] not in response.text or "no order" in response.json()["detail"]
    assert ready.client.get(f"/v1/orders/{order['id']}", headers=ready.a.headers()).json()["status"] == "created"


def test_another_tenant_sees_none_of_an_affiliates_commissions_or_the_catalog(ready: Running) -> None:
    admin_b = ready.b.headers(admin=True)
    ready.client.put("/v1/products/ONLY-B", headers=admin_b, json={"name": "B only", "price_cents": 1})
    _order(ready.client, ready.a, [{"sku": "MUG", "quantity": 1}])

    summary_b = ready.client.get(f"/v1/affiliates/ana/commissions?month={MONTH}", headers=ready.b.headers()).json()
    catalog_a = ready.client.get("/v1/catalog", headers=ready.a.headers()).json()

    order_ids_b = summary_b["order_count"]
    assert "ONLY-B" not in [p["sku"] for p in catalog_a["products"]]
    summary_a = ready.client.get(f"/v1/affiliates/ana/commissions?month={MONTH}", headers=ready.a.headers()).json()
    assert summary_a["order_count"] > 0
    assert order_ids_b == 0


def test_an_api_key_cannot_use_the_admin_endpoints_and_no_key_is_401(ready: Running) -> None:
    assert ready.client.put("/v1/products/X", headers=ready.a.headers(), json={"name": "x", "price_cents": 1}
                            ).status_code == 403
    assert ready.client.get("/v1/catalog").status_code == 401
    assert ready.client.get("/v1/catalog", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_reader_never_sees_a_summary_older_than_its_last_write(ready: Running) -> None:
    client, tenant = ready.client, ready.a
    client.put("/v1/affiliates/bia", headers=tenant.headers(admin=True), json={"name": "Bia"})

    def summary() -> dict[str, Any]:
        return client.get(f"/v1/affiliates/bia/commissions?month={MONTH}", headers=tenant.headers()).json()

    assert summary()["order_count"] == 0
    order = _order(client, tenant, [{"sku": "MUG", "quantity": 1}], affiliate="bia").json()
    assert (summary()["pending_cents"], summary()["order_count"]) == (450, 1)
    client.post(f"/v1/orders/{order['id']}/pay", headers=tenant.headers())
    after_pay = summary()
    assert (after_pay["pending_cents"], after_pay["approved_cents"]) == (0, 450)
    client.post(f"/v1/orders/{order['id']}/refund", headers=tenant.headers())
    assert summary()["reversed_cents"] == 450


def test_an_old_copy_of_a_summary_that_redis_still_holds_after_a_write_is_never_served(ready: Running) -> None:
    """Whatever Redis holds (a copy an invalidation never reached, or one put back), a write makes it unusable:
    the copy carries the summary version PocketBase held when it was made, and every write sets a new one (#23)."""
    from engine.adapters.resp import Redis

    client, tenant = ready.client, ready.a
    client.put("/v1/affiliates/caio", headers=tenant.headers(admin=True), json={"name": "Caio"})
    key = f"summary2:{tenant.slug}:caio:{MONTH}"

    def summary() -> dict[str, Any]:
        return client.get(f"/v1/affiliates/caio/commissions?month={MONTH}", headers=tenant.headers()).json()

    async def redis(*command: str) -> Any:
        connection = Redis(ready.stack.env["REDIS_URL"], timeout_s=2)
        try:
            return await connection.execute(*command)
        finally:
            await connection.aclose()

    for expected in (1, 2, 3):
        summary()
        summary()  # cached now
        old = asyncio.run(redis("GET", key))
        _order(client, tenant, [{"sku": "MUG", "quantity": 1}], affiliate="caio")
        asyncio.run(redis("SET", key, old))  # Redis holds the copy from before the write
        assert summary()["order_count"] == expected


def test_a_repeated_summary_read_is_served_from_the_cache(ready: Running) -> None:
    url = f"/v1/affiliates/ana/commissions?month={MONTH}"
    ready.client.get(url, headers=ready.a.headers())
    before = _metric(ready, 'cache_requests_total{cache="summary",result="hit"}')

    ready.client.get(url, headers=ready.a.headers())

    assert _metric(ready, 'cache_requests_total{cache="summary",result="hit"}') == before + 1


def test_the_catalog_has_an_etag_answers_304_and_lets_the_edge_keep_it_a_day(ready: Running) -> None:
    first = ready.client.get("/v1/catalog", headers=ready.a.headers())
    again = ready.client.get("/v1/catalog", headers=ready.a.headers() | {"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200 and again.status_code == 304
    assert "s-maxage=86400" in first.headers["cache-control"]
    assert [p["sku"] for p in first.json()["products"]] == ["COFFEE", "MUG"]


def test_a_bad_line_is_422_naming_the_line_and_field(ready: Running) -> None:
    response = _order(ready.client, ready.a, [{"sku": "MUG", "quantity": 1}, {"sku": "MUG", "quantity": 1,
                                                                            "discount_cents": 9999}])

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "lines[1].discount_cents"


def test_metrics_expose_requests_by_route_method_status_and_tenant(ready: Running) -> None:
    ready.client.get("/v1/catalog", headers=ready.a.headers())

    text = scrape(ready.client).text

    assert 'http_requests_total{method="GET",route="/v1/catalog",status="200",tenant="acme"}' in text
    for name in ("http_request_duration_seconds_bucket", "pocketbase_request_duration_seconds_bucket",
                 "cache_requests_total", "http_requests_in_flight"):
        assert name in text


def test_readyz_reports_both_dependencies(ready: Running) -> None:
    assert ready.client.get("/readyz").json() == {"ready": True, "checks": {"pocketbase": True, "redis": True}}


def _metric(running: Running, series: str) -> float:
    for line in scrape(running.client).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_with_redis_killed_the_engine_keeps_serving_from_pocketbase(own_engine: Running) -> None:
    client, tenant = own_engine.client, own_engine.a
    _setup_tenant(client, tenant)
    own_engine.stack.stop("redis")

    order = _order(client, tenant, [{"sku": "MUG", "quantity": 1}])
    summary = client.get(f"/v1/affiliates/ana/commissions?month={MONTH}", headers=tenant.headers())

    assert order.status_code == 201
    assert summary.status_code == 200 and summary.json()["pending_cents"] == 450
    # /readyz: "200, or a 503 problem naming each dependency not serving and why" (README, the engine's
    # routes); the engine serves orders meanwhile, but a Redis that does not answer is named.
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503, not_ready.text
    assert not_ready.json()["checks"] == {"pocketbase": True, "redis": False}
    assert "redis" in not_ready.json()["detail"].lower(), not_ready.text
    text = scrape(client).text
    errors = sum(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith("cache_requests_total") and 'result="error"' in line)
    assert errors >= 1, "the outage is counted"


def test_with_pocketbase_restarted_writes_fail_cleanly_and_no_order_is_lost(own_engine: Running) -> None:
    client, tenant = own_engine.client, own_engine.a
    _setup_tenant(client, tenant)
    before = [_order(client, tenant, [{"sku": "MUG", "quantity": 1}]).json()["id"] for _ in range(5)]

    own_engine.stack.stop("pocketbase")
    during = _order(client, tenant, [{"sku": "MUG", "quantity": 1}], key="written-while-down")
    own_engine.stack.start_pocketbase()
    time.sleep(0.2)

    assert during.status_code == 503 and during.headers["content-type"] == "application/problem+json"
    for order_id in before:
        assert client.get(f"/v1/orders/{order_id}", headers=tenant.headers()).status_code == 200
    retried = _order(client, tenant, [{"sku": "MUG", "quantity": 1}], key="written-while-down")
    assert retried.status_code == 201, "the failed write left nothing behind under its key"
    summary = client.get(f"/v1/affiliates/ana/commissions?month={MONTH}", headers=tenant.headers()).json()
    assert summary["order_count"] == 6


class _RecordingProxy:
    """PocketBase behind a proxy that notes every request's method and path: what the engine asks of it."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        self.calls: list[tuple[str, str]] = []
        calls, client = self.calls, httpx.Client(base_url=upstream, timeout=10)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                calls.append((self.command, self.path.split("?")[0]))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    answer = client.request(self.command, self.path, headers=headers, content=body)
                except httpx.HTTPError:
                    self.send_error(502)
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_serve_waits_for_pocketbase_and_its_schema_and_never_migrates(tmp_path: Path) -> None:
    """#11.2: PocketBase's image applies the schema at its own start (pb_hooks/engine_schema.pb.js); the engine
    holds no superuser and only reads and writes records: no /api/collections, no /api/settings."""
    stack = LocalStack(tmp_path, [])
    proxy = _RecordingProxy(stack.env["POCKETBASE_URL"])
    engine = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port",
                               str(stack.engine_port)], env={**stack.env, "POCKETBASE_URL": proxy.url},
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # the engine is up before PocketBase, as on a first deployment
        assert engine.poll() is None, "it waits instead of exiting"
        stack.start_pocketbase()
        stack.start_redis()
        ready, deadline = False, time.monotonic() + 30
        while not ready and time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{stack.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready, "the engine serves once PocketBase is up"
    finally:
        engine.terminate()
        engine.wait(timeout=10)
        proxy.close()
        stack.close()
    paths = {path for _, path in proxy.calls}
    assert paths, "the engine checked its collections before serving"
    assert {p for p in paths if not (p == "/api/health" or p.endswith("/auth-with-password")
                                     or (p.startswith("/api/collections/") and "/records" in p))} == set()
    assert [name for name in stack.env if "SUPERUSER" in name] == [], "the engine is given its own account only"


def test_serve_against_a_pocketbase_without_the_engines_schema_says_what_is_missing(tmp_path: Path) -> None:
    """A PocketBase started without the image's hooks has no engine account and no collections: the engine
    serves (liveness, #20.1), answers /readyz 503 saying so, and after its wait logs what to check."""
    from engine.dev import pocketbase_binary, wait_http

    stack = LocalStack(tmp_path, [], env={"POCKETBASE_START_WAIT_SECONDS": "1"})
    bare = subprocess.Popen([pocketbase_binary(), "serve", f"--http=127.0.0.1:{stack.pb_port}",
                             f"--dir={tmp_path / 'pb'}", f"--hooksDir={tmp_path / 'no-hooks'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = None
    try:
        wait_http(f"http://127.0.0.1:{stack.pb_port}/api/health")
        engine = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port",
                                   str(stack.engine_port)], env=stack.env, stderr=subprocess.PIPE, text=True)
        wait_http(f"{stack.url}/healthz", timeout_s=30)
        time.sleep(2.5)  # past the 1 s wait: the diagnostic is logged once
        readyz = httpx.get(f"{stack.url}/readyz", timeout=5)
    finally:
        if engine is not None:
            engine.terminate()
            engine.wait(timeout=10)
        bare.terminate()
        bare.wait(timeout=10)
    stderr = engine.stderr.read() if engine is not None and engine.stderr else ""
    assert readyz.status_code == 503 and "engine_accounts" in readyz.json()["reasons"]["pocketbase"]
    assert "engine_accounts" in stderr and "engine_schema.pb.js" in stderr, stderr


def test_with_two_workers_metrics_are_summed_and_a_previous_servers_are_gone(tmp_path: Path) -> None:
    from engine.dev import local_stack
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from tests.engine.conftest import make_tenant

    entry, tenant = make_tenant("acme")
    (tmp_path / "metrics").mkdir()
    stale = MmapedDict(str(tmp_path / "metrics" / "counter_4242.db"))  # as a server before a restart left it
    stale.write_value(mmap_key("http_requests_total", "http_requests_total", ["route", "method", "status", "tenant"],
                               ["/v1/catalog", "GET", "200", "ghost"], "HTTP requests served"), 1000.0, 0.0)
    stale.close()
    with local_stack(tmp_path, [entry], workers=2) as stack, httpx.Client(base_url=stack.url, timeout=10) as client:
        for _ in range(20):
            client.get("/v1/catalog", headers=tenant.headers())
        text = scrape(client).text

    assert 'tenant="ghost"' not in text
    served = sum(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith('http_requests_total{') and 'tenant="acme"' in line)
    assert served == 20, "both workers' counts, summed"


def test_the_platform_tenant_registry_is_what_the_engine_reads() -> None:
    from engine.registry import TenantRegistry

    from components.api import TenantEntry, tenant_registry

    document = tenant_registry([TenantEntry("acme", "BRL"), TenantEntry("bravo", "USD")], ["k-acme", "k-bravo"],
                               ["a-acme", "a-bravo"])
    registry = TenantRegistry.from_json(document)

    api = registry.authenticate("k-bravo")
    admin = registry.authenticate("a-acme")
    assert api is not None and (api.tenant.slug, api.tenant.currency, api.admin) == ("bravo", "USD", False)
    assert admin is not None and (admin.tenant.slug, admin.admin) == ("acme", True)
    assert registry.authenticate("k-unknown") is None
    assert "k-acme" not in document, "the platform hands the engine hashes only"


def _beacon(ready: Running, body: object, ip: str = "203.0.113.7") -> httpx.Response:
    import json as json_

    # As navigator.sendBeacon sends it: text/plain, no key, from the storefront's browser.
    return ready.client.post("/v1/vitals", content=json_.dumps(body),
                             headers={"Content-Type": "text/plain", "CF-Connecting-IP": ip, **EDGE_HEADERS})


def test_a_web_vitals_beacon_is_recorded_per_tenant_and_route(ready: Running) -> None:
    series = 'web_vitals_lcp_seconds_count{route="/produto/[slug]",tenant="acme"}'
    before = _metric(ready, series)

    response = _beacon(ready, {"tenant": "acme", "route": "/produto/[slug]", "metrics": [
        {"name": "LCP", "value": 2800}, {"name": "INP", "value": 180}, {"name": "CLS", "value": 0.07},
        {"name": "TTFB", "value": 320}]})

    assert response.status_code == 204
    assert _metric(ready, series) == before + 1
    assert _metric(ready, 'web_vitals_lcp_seconds_bucket{le="3.0",route="/produto/[slug]",tenant="acme"}') >= 1
    assert _metric(ready, 'web_vitals_cls_bucket{le="0.1",route="/produto/[slug]",tenant="acme"}') >= 1


@pytest.mark.parametrize(("body", "field"), [
    ({"tenant": "nobody", "route": "/", "metrics": [{"name": "LCP", "value": 1}]}, "tenant"),
    ({"tenant": "acme", "route": "https://shop.example.com/p/123?x=1", "metrics": [{"name": "LCP", "value": 1}]},
     "route"),
    ({"tenant": "acme", "route": "/", "metrics": [{"name": "FID", "value": 1}]}, "metrics[0].name"),
    ({"tenant": "acme", "route": "/", "metrics": [{"name": "CLS", "value": 42}]}, "metrics[0].value"),
])
def test_a_bad_beacon_is_refused_naming_the_field(ready: Running, body: object, field: str) -> None:
    response = _beacon(ready, body, ip="198.51.100.9")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_a_client_sending_too_many_beacons_is_told_to_slow_down(ready: Running) -> None:
    beacon = {"tenant": "acme", "route": "/", "metrics": [{"name": "TTFB", "value": 100}]}

    codes = [_beacon(ready, beacon, ip="192.0.2.44").status_code for _ in range(125)]

    assert codes[:120] == [204] * 120
    assert codes[120:] == [429] * 5


def test_every_metric_the_alert_rules_use_is_exported_by_the_engine_or_a_named_exporter(ready: Running) -> None:
    import re

    from components.observability.spec import load

    spec = load()
    exported = {line.split()[2] for line in scrape(ready.client).text.splitlines()
                if line.startswith("# TYPE ")}
    exported |= {name for names in spec.exporters.values() for name in names}
    from components.observability.dashboards import DASHBOARDS, exprs

    expressions = [a.expr for a in spec.alerts] + [s.errors + s.total for s in spec.slos]
    expressions += [e for build in DASHBOARDS.values() for e in exprs(build())]
    used: set[str] = set()
    for expr in expressions:
        without_labels = re.sub(r"\{[^}]*\}", "", re.sub(r"\[[^\]]*\]", "", expr))
        used |= {m for m in re.findall(r"[a-z_][a-z0-9_]*", without_labels) if m.endswith(
            ("_total", "_bucket", "_count", "_seconds", "_bytes", "_quota", "_period", "_flight", "_cls"))}

    def family(name: str) -> str:
        return re.sub(r"_(bucket|count|sum)$", "", name) if name not in exported else name

    missing = sorted(name for name in used if family(name) not in exported and name not in exported)
    assert missing == []
    assert len(used) >= 12
