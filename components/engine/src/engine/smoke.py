"""`python -m engine smoke --url URL --tenant SLUG --admin-key KEY`: a deployed engine, end to end (D6).

Through URL (a deployed stack's edge, `https://api.<zone>`, or a local engine):

1. put the smoke product (sku `smoke-check`, named after this run) with the tenant's admin key;
2. read the tenant's public catalog, `GET /v1/catalog/<tenant>`, until it shows that name: the edge keeps
   the catalog 24 h and the engine purges it after a product write (C5), so this is the edge's copy;
3. put the smoke affiliate, read its month's commission summary;
4. create an order of the product for the affiliate (with an Idempotency-Key), pay it;
5. read the summary again: one more order, its commission approved;
6. clean up, whatever failed before: the order refunded (or cancelled, if it was never paid) and the
   product inactive, so the tenant's catalog and totals are as they were.

Each step prints a line with its time; exit 0 when all passed, 1 at the first failure (naming the step
and what the API answered), 2 on bad arguments. The deploy workflow runs it against integration before
staging is deployed and against staging before prod (.github/workflows/deploy.yml).
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

SKU = "smoke-check"
AFFILIATE = "smoke-affiliate"


class SmokeFailure(Exception):
    pass


@dataclass
class Smoke:
    url: str
    tenant: str
    admin_key: str
    api_key: str | None = None
    catalog_wait_s: float = 90.0
    """How long the edge may take to show the product after its write (the purge, then its propagation)."""
    poll_s: float = 2.0
    timeout_s: float = 15.0
    write: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    run_id: str = field(default_factory=lambda: f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}")
    order_id: str | None = None
    order_status: str | None = None
    product_written: bool = False

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url.rstrip("/"), timeout=self.timeout_s,
                                 headers={"User-Agent": "engine-smoke"})

    def _call(self, method: str, path: str, key: str | None, expect: tuple[int, ...], **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as err:
            raise SmokeFailure(f"{method} {path}: {type(err).__name__}: {err}") from None
        if response.status_code not in expect:
            raise SmokeFailure(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def _step(self, name: str, action: Callable[[], str]) -> None:
        start = time.monotonic()
        try:
            detail = action()
        except SmokeFailure as err:
            self.write(f"FAIL  {name}: {err} ({_took(start)})")
            raise SmokeFailure(f"{name}: {err}") from None
        self.write(f"ok    {name}: {detail} ({_took(start)})")

    # -- the steps ---------------------------------------------------------------------------

    def put_product(self, active: bool = True) -> str:
        body = {"name": f"smoke {self.run_id}", "category": "smoke", "price_cents": 1990, "active": active}
        self.product_written = True
        self._call("PUT", f"/v1/products/{SKU}", self.admin_key, (200,), json=body)
        return f"{SKU} named 'smoke {self.run_id}'"

    def catalog_shows_it(self) -> str:
        deadline = time.monotonic() + self.catalog_wait_s
        reads = 0
        while True:
            reads += 1
            catalog = self._call("GET", f"/v1/catalog/{self.tenant}", None, (200,))
            names = {p.get("sku"): p.get("name") for p in catalog.get("products", [])}
            if names.get(SKU) == f"smoke {self.run_id}":
                return f"/v1/catalog/{self.tenant} shows it after {reads} read(s)"
            if time.monotonic() >= deadline:
                raise SmokeFailure(f"/v1/catalog/{self.tenant} still shows {names.get(SKU)!r} for {SKU} after "
                                   f"{self.catalog_wait_s:.0f} s and {reads} reads: the edge's copy was not purged")
            time.sleep(self.poll_s)

    def summary(self, month: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/v1/affiliates/{AFFILIATE}/commissions", self.order_key,
                                           (200,), params={"month": month})
        return found

    @property
    def order_key(self) -> str:
        return self.api_key or self.admin_key

    def run(self) -> bool:
        started = time.monotonic()
        self.write(f"smoke: {self.url} tenant {self.tenant}, run {self.run_id}")
        month = f"{dt.datetime.now(dt.UTC):%Y-%m}"
        before: dict[str, Any] = {}
        order: dict[str, Any] = {}
        failed: str | None = None
        try:
            self._step("put product", self.put_product)
            self._step("catalog through the edge", self.catalog_shows_it)

            def affiliate() -> str:
                self._call("PUT", f"/v1/affiliates/{AFFILIATE}", self.admin_key, (200,), json={"name": "smoke"})
                before.update(self.summary(month))
                return f"{AFFILIATE}: {before.get('order_count', 0)} order(s) in {month} so far"

            self._step("put affiliate", affiliate)

            def create() -> str:
                created = self._call("POST", "/v1/orders", self.order_key, (201,),
                                     headers={"Idempotency-Key": f"smoke-{self.run_id}"},
                                     json={"affiliate_id": AFFILIATE, "lines": [{"sku": SKU, "quantity": 1}]})
                order.update(created)
                self.order_id, self.order_status = created["id"], created["status"]
                return (f"order {created['id']}: total {created['total_cents']} cents, commission "
                        f"{created['commission_cents']} cents")

            self._step("create order", create)

            def pay() -> str:
                paid = self._call("POST", f"/v1/orders/{self.order_id}/pay", self.order_key, (200,))
                self.order_status = paid["status"]
                if paid["status"] != "paid" or paid["commission_status"] != "approved":
                    raise SmokeFailure(f"the order is {paid['status']}, its commission {paid['commission_status']}")
                return "paid, commission approved"

            self._step("pay order", pay)

            def counted() -> str:
                order_month = str(order.get("created") or month)[:7]
                after = self.summary(order_month)
                base = before if order_month == month else {}
                expected = (int(base.get("order_count", 0)) + 1,
                            int(base.get("approved_cents", 0)) + int(order["commission_cents"]))
                if (after["order_count"], after["approved_cents"]) != expected:
                    raise SmokeFailure(f"the summary reads {after['order_count']} orders, {after['approved_cents']} "
                                       f"cents approved; expected {expected[0]} and {expected[1]}")
                return f"{after['order_count']} orders, {after['approved_cents']} cents approved in {order_month}"

            self._step("affiliate summary", counted)
        except SmokeFailure as err:
            failed = str(err)
        finally:
            if not self._clean_up():
                failed = failed or "clean up"
            self.http.close()
        total = f"{time.monotonic() - started:.1f} s"
        self.write(f"smoke: FAILED at {failed} ({total})" if failed else f"smoke: passed ({total})")
        return failed is None

    def _clean_up(self) -> bool:
        """Undo what the run made, each part on its own, whatever failed before. True if all of it was undone."""
        ok = True
        if self.order_id is not None and self.order_status in ("created", "paid"):
            action = "refund" if self.order_status == "paid" else "cancel"

            def undo_order(action: str = action) -> str:
                self._call("POST", f"/v1/orders/{self.order_id}/{action}", self.order_key, (200,))
                return f"order {self.order_id} {action}{'ed' if action == 'refund' else 'led'}"

            try:
                self._step("clean up the order", undo_order)
            except SmokeFailure:
                ok = False
        if self.product_written:
            try:
                self._step("clean up the product", lambda: self.put_product(active=False) + ", inactive")
            except SmokeFailure:
                ok = False
        return ok


def _took(start: float) -> str:
    elapsed = time.monotonic() - start
    return f"{elapsed * 1000:.0f} ms" if elapsed < 1 else f"{elapsed:.1f} s"


def main(url: str, tenant: str, admin_key: str, api_key: str | None, catalog_wait_s: float) -> int:
    if not url.startswith(("http://", "https://")) or not tenant or not admin_key:
        print("smoke: --url (http[s]://...), --tenant and --admin-key are required", file=sys.stderr)
        return 2
    return 0 if Smoke(url, tenant, admin_key, api_key, catalog_wait_s).run() else 1
