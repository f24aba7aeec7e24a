"""The public catalog URL per tenant, and its purge from Cloudflare's edge after every product write,
against a local fake of Cloudflare's purge endpoint (tests/engine/fake_cloudflare.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from engine.dev import LocalStack, local_stack

from tests.engine.conftest import EDGE_HEADERS, TenantKeys, engine_env, make_tenant, scrape
from tests.engine.fake_cloudflare import FakeCloudflare, Reply, fake_cloudflare

BASE_URL = "https://api.acme-commerce.example"
ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"


@dataclass
class Edge:
    stack: LocalStack
    client: httpx.Client
    cloudflare: FakeCloudflare
    token: str
    log: Path
    tenants: dict[str, TenantKeys]

    def put_product(self, slug: str, sku: str, price: int = 1000, active: bool = True) -> httpx.Response:
        return self.client.put(f"/v1/products/{sku}", headers=self.tenants[slug].headers(admin=True),
                               json={"name": sku.title(), "price_cents": price, "active": active})

    def metric(self, series: str) -> float:
        for line in scrape(self.client).text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def wait_metric(self, series: str, at_least: float, timeout_s: float = 10.0) -> float:
        """The counter once it reaches `at_least` (the engine counts after Cloudflare's answer arrives)."""
        deadline = time.monotonic() + timeout_s
        while (value := self.metric(series)) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        return value


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp("edge")
    token = "cf-" + secrets.token_urlsafe(30)
    entries: dict[str, dict[str, object]] = {}
    tenants: dict[str, TenantKeys] = {}
    for slug in ("acme", "bravo", "charlie", "delta"):
        entries[slug], tenants[slug] = make_tenant(slug)
    with fake_cloudflare(ZONE_ID, token) as cloudflare:
        env = engine_env() | {"CATALOG_PUBLIC_BASE_URL": BASE_URL, "CLOUDFLARE_ZONE_ID": ZONE_ID,
                              "CATALOG_PURGE_TOKEN": token, "CLOUDFLARE_API_URL": cloudflare.api_url}
        log = tmp / "engine.log"
        # Two workers: the purge, its counters and the start notice, as in production (WEB_CONCURRENCY=2).
        with local_stack(tmp, list(entries.values()), workers=2, env=env, log=log) as stack, \
                httpx.Client(base_url=stack.url, timeout=10, headers=EDGE_HEADERS) as client:
            yield Edge(stack, client, cloudflare, token, log, tenants)
    assert cloudflare.violations == [], "every request the engine sent was one Cloudflare accepts"


def url(slug: str) -> str:
    return f"{BASE_URL}/v1/catalog/{slug}"


def test_a_product_write_purges_exactly_that_tenants_catalog_url_after_answering(edge: Edge) -> None:
    response = edge.put_product("acme", "TEA")
    answered = time.monotonic()

    assert response.status_code == 200
    calls = edge.cloudflare.wait_for(url("acme"), 1)
    time.sleep(0.5)  # a second call, or one for another tenant, would have come by now
    assert [call.files for call in edge.cloudflare.calls] == [[url("acme")]]
    assert calls[0].at > answered, "the write was answered before the purge was sent"
    assert edge.wait_metric('catalog_purges_total{tenant="acme"}', 1) == 1


def test_a_429_is_retried_after_its_retry_after_and_then_purges(edge: Edge) -> None:
    edge.cloudflare.script(url("bravo"), Reply(429, ({"code": 971, "message": "Please wait and consider throttling "
                                                                               "your request speed"},),
                                               headers=(("Retry-After", "1"),)))

    assert edge.put_product("bravo", "TEA").status_code == 200

    calls = edge.cloudflare.wait_for(url("bravo"), 2)
    assert [call.status for call in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0, "not before Cloudflare's Retry-After"
    assert edge.wait_metric('catalog_purges_total{tenant="bravo"}', 1) == 1
    assert edge.metric('catalog_purge_failures_total{tenant="bravo"}') == 0


def test_a_persistent_500_counts_one_failure_and_the_write_still_succeeds(edge: Edge) -> None:
    edge.cloudflare.script(url("charlie"), *[Reply(500)] * 10)

    response = edge.put_product("charlie", "TEA", price=777)

    assert response.status_code == 200 and response.json()["price_cents"] == 777
    calls = edge.cloudflare.wait_for(url("charlie"), 3)
    edge.wait_metric('catalog_purge_failures_total{tenant="charlie"}', 1)
    time.sleep(1.5)  # a fourth attempt would have come by now
    assert [call.status for call in edge.cloudflare.calls_for(url("charlie"))] == [500, 500, 500]
    assert calls[2].at - calls[1].at > calls[1].at - calls[0].at > 0.3, "with a growing backoff"
    assert edge.metric('catalog_purge_failures_total{tenant="charlie"}') == 1
    assert edge.metric('catalog_purges_total{tenant="charlie"}') == 0
    assert edge.client.get("/v1/catalog/charlie").json()["products"] == [
        {"sku": "TEA", "name": "Tea", "category": "", "price_cents": 777}]


def test_a_refusal_is_not_retried_and_the_token_appears_in_no_log_line_or_metric(edge: Edge) -> None:
    """Cloudflare's answer repeats the Authorization header here; the engine's log must not."""
    edge.cloudflare.script(url("delta"), Reply(400, echo_authorization=True))

    assert edge.put_product("delta", "TEA").status_code == 200
    edge.cloudflare.wait_for(url("delta"), 1)
    deadline = time.monotonic() + 10
    while "failed for delta" not in edge.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # a retry would have come by now

    log = edge.log.read_text()
    assert [call.status for call in edge.cloudflare.calls_for(url("delta"))] == [400]
    assert "catalog purge failed for delta after 1 attempt(s): HTTP 400: 1001 refused Bearer [token]" in log
    assert edge.token not in log and edge.token[3:] not in log
    assert edge.token not in scrape(edge.client).text
    assert edge.wait_metric('catalog_purge_failures_total{tenant="delta"}', 1) == 1


def test_the_start_notice_is_written_once_and_names_no_secret(edge: Edge) -> None:
    log = edge.log.read_text()

    assert log.count("catalog purge: on") == 1, log
    assert f"{BASE_URL}/v1/catalog/<tenant> in zone {ZONE_ID}" in log
    assert edge.token not in log


def test_an_unknown_tenants_public_catalog_is_a_404_problem(edge: Edge) -> None:
    for path in ("/v1/catalog/nobody", "/v1/catalog/ACME", "/v1/catalog/acme%0A"):
        response = edge.client.get(path)

        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


def test_the_public_catalog_is_the_keyed_one_without_inactive_products_and_revalidates(edge: Edge) -> None:
    assert edge.put_product("acme", "OLD", active=False).status_code == 200
    assert edge.put_product("acme", "MUG", price=4500).status_code == 200
    time.sleep(1.1)  # past the catalog's second in process memory

    public = edge.client.get("/v1/catalog/acme")
    keyed = edge.client.get("/v1/catalog", headers=edge.tenants["acme"].headers())

    assert public.status_code == 200 and "authorization" not in public.request.headers
    assert [p["sku"] for p in public.json()["products"]] == ["MUG", "TEA"]
    assert public.content == keyed.content and public.headers["etag"] == keyed.headers["etag"]
    assert public.headers["cache-control"] == "public, max-age=60, s-maxage=86400"
    assert "vary" not in public.headers
    etag = public.headers["etag"]
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        revalidated = edge.client.get("/v1/catalog/acme", headers={"If-None-Match": if_none_match})
        assert revalidated.status_code == 304 and revalidated.headers["etag"] == etag
    assert edge.client.get("/v1/catalog/acme", headers={"If-None-Match": '"other"'}).status_code == 200
    assert edge.client.get("/v1/catalog/bravo").json()["products"] == [
        {"sku": "TEA", "name": "Tea", "category": "", "price_cents": 1000}], "each tenant its own"


def test_without_the_purge_settings_purging_is_off_and_says_so() -> None:
    from engine.__main__ import _purge_notice  # pyright: ignore[reportPrivateUsage]
    from engine.settings import Settings

    base = {"pocketbase_url": "http://pb", "pocketbase_email": "a@b.c", "pocketbase_password": "x1",
            "redis_url": "redis://r", "tenants_json": "{}"}
    on = {"catalog_public_base_url": BASE_URL, "cloudflare_zone_id": ZONE_ID, "catalog_purge_token": "tok-123"}

    assert Settings(**base, **on).catalog_purge_missing == []  # pyright: ignore[reportArgumentType]
    for unset in on:
        settings = Settings(**base, **{k: v for k, v in on.items() if k != unset})  # pyright: ignore[reportArgumentType]
        notice = _purge_notice(settings)
        assert notice.startswith("catalog purge: off") and unset.upper() in notice and "tok-123" not in notice
    blank = Settings(**base, **on | {"catalog_purge_token": " "})  # pyright: ignore[reportArgumentType]
    assert blank.catalog_purge_missing == ["CATALOG_PURGE_TOKEN"]
    assert "tok-123" not in repr(Settings(**base, **on))  # pyright: ignore[reportArgumentType]


def _purger_run(cloudflare: FakeCloudflare, tenants: list[str]) -> None:
    from engine.adapters.cloudflare import CatalogPurger

    async def scenario() -> None:
        purger = CatalogPurger(cloudflare.api_url, ZONE_ID, cloudflare.token, BASE_URL, delay_s=0.0,
                               backoff_s=0.05)
        for tenant in tenants:
            purger.catalog_changed(tenant)
        await purger.close(wait_s=10)

    import asyncio

    asyncio.run(scenario())


def _counter(name: str, tenant: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"tenant": tenant}) or 0.0


def test_a_network_error_is_retried_and_the_writes_of_several_tenants_go_in_one_call() -> None:
    with fake_cloudflare(ZONE_ID, "tok-" + secrets.token_hex(8)) as cloudflare:
        cloudflare.script(url("net-a"), Reply(200, drop=True))
        before = _counter("catalog_purges_total", "net-a")

        _purger_run(cloudflare, ["net-b", "net-a", "net-b"])

        assert [sorted(call.files) for call in cloudflare.calls] == [[url("net-a"), url("net-b")]] * 2
        assert [call.status for call in cloudflare.calls] == [0, 200]
        assert _counter("catalog_purges_total", "net-a") == before + 1
        assert cloudflare.violations == []


def test_a_retry_after_beyond_a_minute_is_not_waited_for_and_counts_a_failure() -> None:
    with fake_cloudflare(ZONE_ID, "tok-" + secrets.token_hex(8)) as cloudflare:
        cloudflare.script(url("slow"), Reply(429, headers=(("Retry-After", "300"),)))
        before = _counter("catalog_purge_failures_total", "slow")
        start = time.monotonic()

        _purger_run(cloudflare, ["slow"])

        assert time.monotonic() - start < 5
        assert [call.status for call in cloudflare.calls] == [429]
        assert _counter("catalog_purge_failures_total", "slow") == before + 1


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), ("", None), ("soon", None),
                                                 ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str, seconds: float | None) -> None:
    from engine.adapters.cloudflare import _retry_after  # pyright: ignore[reportPrivateUsage]

    assert _retry_after(header) == seconds
