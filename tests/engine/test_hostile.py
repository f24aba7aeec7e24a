"""Issue #15, "exact under concurrency and hostile input", classes 2 to 8, against a real PocketBase and
Redis: replays independent of the catalog, caps of 0, exact money or a 422 naming the field, problem
details for every error, strict validation, the Bearer scheme in any case, the summary's 5-minute TTL
and SQLite lock detection with a real lock. Class 1 (status races) is in test_concurrency.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine.dev import LocalStack, local_stack

from tests.engine.conftest import EDGE_HEADERS, TenantKeys, engine_env, make_tenant, scrape

MONTH = dt.datetime.now(dt.UTC).strftime("%Y-%m")
EXACT = 2**53 - 1


@dataclass
class Hostile:
    stack: LocalStack
    client: httpx.Client
    tenants: dict[str, TenantKeys]

    def admin(self, slug: str) -> dict[str, str]:
        return self.tenants[slug].headers(admin=True)

    def api(self, slug: str) -> dict[str, str]:
        return self.tenants[slug].headers()

    def order(self, slug: str, lines: list[dict[str, Any]], affiliate: str | None = "ana",
              key: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"lines": lines} | ({"affiliate_id": affiliate} if affiliate else {})
        return self.client.post("/v1/orders", json=body,
                                headers=self.api(slug) | {"Idempotency-Key": key or uuid.uuid4().hex})

    def metric(self, series: str) -> float:
        for line in scrape(self.client).text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0


SLUGS = ("acme", "replay", "capzero", "capnone", "money", "sums", "keyowner", "keyreuser")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    entries: dict[str, dict[str, object]] = {}
    tenants: dict[str, TenantKeys] = {}
    for slug in SLUGS:
        entries[slug], tenants[slug] = make_tenant(slug)
    with local_stack(tmp_path_factory.mktemp("hostile"), list(entries.values()), env=engine_env()) as stack, \
            httpx.Client(base_url=stack.url, timeout=15, headers=EDGE_HEADERS) as client:
        running = Hostile(stack, client, tenants)
        for slug in SLUGS:
            assert client.put("/v1/products/MUG", headers=running.admin(slug),
                              json={"name": "Mug", "category": "home", "price_cents": 4500}).status_code == 200
            assert client.put("/v1/affiliates/ana", headers=running.admin(slug), json={"name": "Ana"}
                              ).status_code == 200
            assert client.put("/v1/commission-rules", headers=running.admin(slug),
                              json={"default_rate_bps": 1000}).status_code == 200
        yield running


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and "detail" in body
    assert "Traceback" not in response.text
    return body


# -- 2. an idempotent retry does not depend on the catalog -----------------------------------------

def test_a_retry_replays_the_stored_order_after_its_product_is_deactivated_or_repriced(hostile: Hostile) -> None:
    client, admin = hostile.client, hostile.admin("replay")
    assert client.put("/v1/products/TEA", headers=admin, json={"name": "Tea", "price_cents": 900}).status_code == 200
    lines = [{"sku": "TEA", "quantity": 2}]
    first = hostile.order("replay", lines, key="replay-key-1")
    assert first.status_code == 201

    client.put("/v1/products/TEA", headers=admin, json={"name": "Tea", "price_cents": 950, "active": False})
    after_deactivation = hostile.order("replay", lines, key="replay-key-1")
    client.put("/v1/products/TEA", headers=admin, json={"name": "Tea", "price_cents": 999})
    after_reprice = hostile.order("replay", lines, key="replay-key-1")
    other_body = hostile.order("replay", [{"sku": "TEA", "quantity": 3}], key="replay-key-1")

    assert (after_deactivation.status_code, after_reprice.status_code) == (200, 200), after_deactivation.text
    assert after_deactivation.json() == first.json() == after_reprice.json()
    assert first.json()["total_cents"] == 1800
    _is_problem(other_body, 409)


def test_two_tenants_sending_the_same_idempotency_key_each_get_their_own_order_and_nothing_of_the_other(
        hostile: Hostile) -> None:
    """Idempotency keys are the client's: two tenants' clients can pick the same one (a counter, a date). The
    unique index is on (tenant, key) (README, "The Commission Engine"), so each tenant's key answers only that
    tenant's orders. Tenant B's request that its own catalog refuses is judged as B's: a 422, never A's order
    replayed (same body) nor a 409 telling B that someone used the key (another body)."""
    client, key = hostile.client, f"shared-{uuid.uuid4().hex}"
    assert client.put("/v1/products/ONLYA", headers=hostile.admin("keyowner"),
                      json={"name": "Only at A", "price_cents": 700}).status_code == 200
    owners = hostile.order("keyowner", [{"sku": "ONLYA", "quantity": 1}], key=key)
    assert owners.status_code == 201, owners.text
    secret = owners.json()["id"]

    same_body = hostile.order("keyreuser", [{"sku": "ONLYA", "quantity": 1}], key=key)
    other_body = hostile.order("keyreuser", [{"sku": "ONLYA", "quantity": 2}], key=key)
    for refused in (same_body, other_body):
        problem = _is_problem(refused, 422)
        assert "ONLYA" in json.dumps(problem), problem  # B's own catalog refused it
        assert secret not in refused.text

    own = hostile.order("keyreuser", [{"sku": "MUG", "quantity": 1}], key=key)
    assert own.status_code == 201, own.text
    assert own.json()["id"] != secret and own.json()["total_cents"] == 4500
    retried = hostile.order("keyreuser", [{"sku": "MUG", "quantity": 1}], key=key)
    assert (retried.status_code, retried.json()) == (200, own.json())
    assert client.get(f"/v1/orders/{secret}", headers=hostile.api("keyreuser")).status_code == 404

    owners_retry = hostile.order("keyowner", [{"sku": "ONLYA", "quantity": 1}], key=key)
    assert (owners_retry.status_code, owners_retry.json()) == (200, owners.json())


# -- 3. a cap of 0 is a cap; unset is none -----------------------------------------------------------

def test_a_cap_of_0_is_kept_and_earns_nothing_while_no_cap_earns_the_rate(hostile: Hostile) -> None:
    client = hostile.client
    zero = client.put("/v1/commission-rules", headers=hostile.admin("capzero"),
                      json={"default_rate_bps": 1000, "order_cap_cents": 0})
    none = client.put("/v1/commission-rules", headers=hostile.admin("capnone"), json={"default_rate_bps": 1000})

    assert zero.json()["order_cap_cents"] == 0 and none.json()["order_cap_cents"] is None
    assert client.get("/v1/commission-rules", headers=hostile.admin("capzero")).json()["order_cap_cents"] == 0
    assert client.get("/v1/commission-rules", headers=hostile.admin("capnone")).json()["order_cap_cents"] is None
    assert hostile.order("capzero", [{"sku": "MUG", "quantity": 1}]).json()["commission_cents"] == 0
    assert hostile.order("capnone", [{"sku": "MUG", "quantity": 1}]).json()["commission_cents"] == 450


# -- 4. money is exact or refused ----------------------------------------------------------------------

def test_the_largest_exact_amounts_are_stored_and_read_back_to_the_cent(hostile: Hostile) -> None:
    client, admin = hostile.client, hostile.admin("money")
    assert client.put("/v1/products/BIG", headers=admin, json={"name": "Big", "price_cents": EXACT}).status_code == 200
    assert client.put("/v1/commission-rules", headers=admin, json={"default_rate_bps": 10_000}).status_code == 200

    created = hostile.order("money", [{"sku": "BIG", "quantity": 1, "discount_cents": 0}], affiliate="ana")
    stored = client.get(f"/v1/orders/{created.json()['id']}", headers=hostile.api("money")).json()

    assert created.status_code == 201
    assert (stored["total_cents"], stored["commission_cents"]) == (EXACT, EXACT)
    assert stored["lines"][0]["unit_price_cents"] == EXACT
    assert client.get("/v1/catalog", headers=hostile.api("money")).json()["products"][0]["price_cents"] == EXACT


def test_a_months_commissions_are_summed_exactly_beyond_2_53(hostile: Hostile) -> None:
    client, admin = hostile.client, hostile.admin("sums")
    client.put("/v1/products/BIG", headers=admin, json={"name": "Big", "price_cents": EXACT - 2})
    client.put("/v1/commission-rules", headers=admin, json={"default_rate_bps": 10_000})
    for _ in range(3):
        assert hostile.order("sums", [{"sku": "BIG", "quantity": 1}], affiliate="ana").status_code == 201

    summary = client.get(f"/v1/affiliates/ana/commissions?month={MONTH}", headers=hostile.api("sums")).json()

    assert (summary["pending_cents"], summary["order_count"]) == (3 * (EXACT - 2), 3)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/products/P", {"name": "p", "price_cents": EXACT + 1}, "price_cents"),
    ("/v1/products/P", {"name": "p", "price_cents": 2**63}, "price_cents"),
    ("/v1/products/P", {"name": "p", "price_cents": 10**30}, "price_cents"),
    ("/v1/commission-rules", {"order_cap_cents": EXACT + 1}, "order_cap_cents"),
    ("/v1/orders", {"lines": [{"sku": "MUG", "quantity": 2**63}]}, "lines[0].quantity"),
    ("/v1/orders", {"lines": [{"sku": "MUG", "quantity": 10**30}]}, "lines[0].quantity"),
    ("/v1/orders", {"lines": [{"sku": "MUG", "quantity": 1}, {"sku": "MUG", "quantity": 1,
                                                              "discount_cents": 2**63}]}, "lines[1].discount_cents"),
    # 4,500 cents x 2,001,599,834,387 = 9,007,199,254,741,500: over the bound by the line total alone
    ("/v1/orders", {"lines": [{"sku": "MUG", "quantity": 2_001_599_834_387}]}, "lines[0].quantity"),
    # each line within the bound (3,150,000,000,000,000 cents), their sum not
    ("/v1/orders", {"lines": [{"sku": "MUG", "quantity": 700_000_000_000}] * 3}, "lines"),
])
def test_an_amount_beyond_the_exact_bound_is_422_naming_the_field(hostile: Hostile, path: str, body: dict[str, Any],
                                                                   field: str) -> None:
    headers = hostile.admin("money") if not path.startswith("/v1/orders") else hostile.api("acme") | {
        "Idempotency-Key": uuid.uuid4().hex}
    method = "POST" if path == "/v1/orders" else "PUT"

    response = hostile.client.request(method, path, headers=headers | {"Content-Type": "application/json"},
                                      content=json.dumps(body))

    problem = _is_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [field]


# -- 5. every error is a problem -------------------------------------------------------------------------

def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(("method", "path", "content", "content_type", "status"), [
    ("GET", "/v1/nothing-here", None, None, 404),
    ("GET", "/", None, None, 404),
    ("DELETE", "/v1/catalog", None, None, 405),
    ("POST", "/v1/commission-rules", "{}", "application/json", 405),
    ("POST", "/v1/orders", "{not json", "application/json", 422),
    ("POST", "/v1/orders", _deep(100_000), "application/json", 400),
    ("POST", "/v1/orders", '{"lines": [{"sku": "MUG", "quantity": ' + "9" * 5000 + "}]}", "application/json", 400),
    ("POST", "/v1/orders", b'{"lines": "\xff"}', "application/json", 400),
    ("POST", "/v1/orders", '{"lines": []}', "text/plain", 422),
    ("POST", "/v1/vitals", _deep(100_000), "text/plain", 422),
    ("POST", "/v1/vitals", '{"tenant": ' * 50_000 + "1" + "}" * 50_000, "text/plain", 422),
    ("POST", "/v1/vitals", "\xff", "text/plain", 422),
])
def test_every_error_the_framework_or_a_parser_raises_is_a_problem(hostile: Hostile, method: str, path: str,
                                                                  content: str | bytes | None,
                                                                  content_type: str | None, status: int) -> None:
    headers = hostile.api("acme") | {"Idempotency-Key": uuid.uuid4().hex, "CF-Connecting-IP": uuid.uuid4().hex,
                                     **EDGE_HEADERS}
    if content_type:
        headers["Content-Type"] = content_type

    response = hostile.client.request(method, path, headers=headers, content=content)

    _is_problem(response, status)
    if status == 405:
        assert response.headers["allow"]


# -- 6. patterns match the whole value, in ASCII --------------------------------------------------------

@pytest.mark.parametrize("path", [
    f"/v1/affiliates/ana/commissions?month={MONTH}%0A",
    f"/v1/affiliates/ana/commissions?month={MONTH}%0D",
    "/v1/affiliates/ana/commissions?month=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-11",  # full-width digits 2026
    "/v1/affiliates/ana/commissions?month=2026-%D9%A1%D9%A1",  # Arabic-Indic digits 11
    f"/v1/affiliates/ana%0A/commissions?month={MONTH}",
    f"/v1/affiliates/an%C3%A1/commissions?month={MONTH}",
])
def test_a_value_that_only_starts_like_a_valid_one_is_refused(hostile: Hostile, path: str) -> None:
    _is_problem(hostile.client.get(path, headers=hostile.api("acme")), 422)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/v1/products/MUG%0A", {"name": "x", "price_cents": 1}),
    ("PUT", "/v1/products/M%C3%9CG", {"name": "x", "price_cents": 1}),
    ("PUT", "/v1/affiliates/ana%0A", {"name": "x"}),
    ("PUT", "/v1/commission-rules", {"product_rates_bps": {"MUG\n": 100}}),
])
def test_an_id_with_a_trailing_newline_or_non_ascii_is_refused(hostile: Hostile, method: str, path: str,
                                                               body: dict[str, Any]) -> None:
    _is_problem(hostile.client.request(method, path, headers=hostile.admin("acme"), json=body), 422)


def test_a_vitals_route_ending_in_a_newline_is_refused_and_not_recorded(hostile: Hostile) -> None:
    series = 'web_vitals_ttfb_seconds_count{route="/produto/[slug]\\n",tenant="acme"}'

    response = hostile.client.post("/v1/vitals", headers={"Content-Type": "text/plain", "CF-Connecting-IP": "1.2.3.4",
                                                          **EDGE_HEADERS},
                                   content=json.dumps({"tenant": "acme", "route": "/produto/[slug]\n",
                                                       "metrics": [{"name": "TTFB", "value": 100}]}))

    assert _is_problem(response, 422)["errors"][0]["field"] == "route"
    assert 'route="/produto/[slug]\\n"' not in scrape(hostile.client).text
    assert hostile.metric(series) == 0


# -- 7. the Bearer scheme is case-insensitive -------------------------------------------------------------

def test_the_bearer_scheme_is_case_insensitive_and_required(hostile: Hostile) -> None:
    key = hostile.tenants["acme"].api

    for header in (f"bearer {key}", f"BEARER {key}", f"BeArEr {key}", f"Bearer  {key}"):
        assert hostile.client.get("/v1/catalog", headers={"Authorization": header}).status_code == 200, header
    for header in (key, f"Basic {key}", f"Bearer{key}", f"Bearer {key}x", "Bearer"):
        refused = hostile.client.get("/v1/catalog", headers={"Authorization": header})
        _is_problem(refused, 401)
        assert refused.headers["www-authenticate"] == "Bearer"


# -- 8. what the tests let slip: the summary TTL, and SQLite locks ------------------------------------

def test_a_summary_is_cached_for_five_minutes(hostile: Hostile) -> None:
    from engine.adapters.resp import Redis

    hostile.client.get(f"/v1/affiliates/ana/commissions?month={MONTH}", headers=hostile.api("acme"))

    async def ttl() -> int:
        redis = Redis(hostile.stack.env["REDIS_URL"], timeout_s=2)
        try:
            seconds: int = await redis.execute("TTL", f"summary2:acme:ana:{MONTH}")
            return seconds
        finally:
            await redis.aclose()

    assert 290 <= asyncio.run(ttl()) <= 300, "C6: an affiliate's summary is cached 5 minutes"


def test_a_write_held_up_by_a_real_sqlite_lock_is_counted_as_one_and_answered_503(tmp_path: Path) -> None:
    """A real lock: another connection holds SQLite's write lock on PocketBase's own data.db."""
    entry, tenant = make_tenant("acme")
    env = engine_env() | {"POCKETBASE_TIMEOUT_SECONDS": "2"}
    with local_stack(tmp_path, [entry], env=env) as stack, httpx.Client(base_url=stack.url, timeout=30, headers=EDGE_HEADERS) as client:
        admin = tenant.headers(admin=True)
        client.put("/v1/products/MUG", headers=admin, json={"name": "Mug", "price_cents": 4500})
        body = {"lines": [{"sku": "MUG", "quantity": 1}]}
        assert client.post("/v1/orders", headers=tenant.headers() | {"Idempotency-Key": "warm-the-caches"},
                           json=body).status_code == 201

        def locks() -> float:
            return sum(float(line.split()[-1]) for line in scrape(client).text.splitlines()
                       if line.startswith("pocketbase_lock_errors_total{"))

        lock = sqlite3.connect(tmp_path / "pb" / "data.db", timeout=5, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            locked = client.post("/v1/orders", headers=tenant.headers() | {"Idempotency-Key": "during-the-lock"},
                                 json=body)
            read_meanwhile = client.get(f"/v1/affiliates/x/commissions?month={MONTH}", headers=tenant.headers())
            counted = locks()
        finally:
            lock.execute("ROLLBACK")
            lock.close()

        _is_problem(locked, 503)
        assert read_meanwhile.status_code == 200, "reads go on under the write lock"
        assert counted == 1
        assert 'pocketbase_lock_errors_total{operation="create_order"} 1.0' in scrape(client).text
        time.sleep(1.5)  # PocketBase's own retry of the held-up insert may land now
        retried = [client.post("/v1/orders", headers=tenant.headers() | {"Idempotency-Key": "during-the-lock"},
                               json=body) for _ in range(2)]
        assert retried[0].status_code in (200, 201) and retried[1].status_code == 200
        assert retried[0].json()["id"] == retried[1].json()["id"], "one order for the key, whoever stored it"
        assert locks() == 1, "a write that did not wait for the lock is not counted"
