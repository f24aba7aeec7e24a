"""Control characters in an admin's text are refused alike on both stores (#26 item 1, the outside audit's finding).

PostgreSQL's text and jsonb cannot hold NUL ("The character with the code zero cannot be in a string constant",
https://www.postgresql.org/docs/15/datatype-character.html; jsonb rejects \\u0000,
https://www.postgresql.org/docs/15/datatype-json.html), while PocketBase stores it: a product, an affiliate or a
rules category key with NUL was a 200 on one store and a 503 "storage unavailable" on the other. The API refuses
every C0 control character (U+0000-U+001F) and DEL (U+007F) in those fields with 422 before a store sees them: none
belongs in a name shown on a storefront or a report, and a newline or escape in one breaks the lines of logs and
exports. Ordinary text, accents and emoji included, is stored on both."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine.dev import local_stack

from tests.engine.conftest import EDGE_HEADERS, TenantKeys, engine_env, make_tenant

STORES = ("pocketbase", "postgres")


@pytest.fixture(scope="module", params=STORES)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[httpx.Client, TenantKeys]]:
    entry, keys = make_tenant("acme")
    root: Path = tmp_path_factory.mktemp(str(request.param))
    with local_stack(root, [entry], env=engine_env(), storage=str(request.param)) as stack, \
            httpx.Client(base_url=stack.url, timeout=10, headers=EDGE_HEADERS) as client:
        yield client, keys


CONTROLS = ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f"]
Body = Callable[[str], dict[str, Any]]
WRITES: list[tuple[str, str, Body]] = [
    ("product name", "/v1/products/sku-{n}", lambda c: {"name": f"Cami{c}seta", "price_cents": 100}),
    ("product category", "/v1/products/sku-{n}", lambda c: {"name": "Camiseta", "category": f"rou{c}pas",
                                                           "price_cents": 100}),
    ("affiliate name", "/v1/affiliates/aff-{n}", lambda c: {"name": f"A{c}na"}),
    ("rules category key", "/v1/commission-rules", lambda c: {"default_rate_bps": 100,
                                                              "category_rates_bps": {f"rou{c}pas": 1500}}),
]


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize(("path", "body"), [w[1:] for w in WRITES], ids=[w[0] for w in WRITES])
def test_a_control_character_is_refused_with_422_and_nothing_is_stored(
        api: tuple[httpx.Client, TenantKeys], path: str, body: Body, control: str) -> None:
    client, keys = api
    target = path.format(n=ord(control))

    response = client.put(target, headers=keys.headers(admin=True), json=body(control))

    assert response.status_code == 422, (response.status_code, response.text)
    assert "control character" in response.text
    if "products" in target:
        catalog = client.get("/v1/catalog", headers=keys.headers()).json()
        assert target.rsplit("/", 1)[1] not in str(catalog)
    if "commission-rules" in target:
        rules = client.get(target, headers=keys.headers(admin=True)).json()
        assert not any(control in key for key in rules["category_rates_bps"]), rules


def test_ordinary_text_is_stored(api: tuple[httpx.Client, TenantKeys]) -> None:
    client, keys = api
    admin = keys.headers(admin=True)
    name = "Boné Ünïcode — 👕 \u2018quoted\u2019 \\u0000 as text"

    assert client.put("/v1/products/bone", headers=admin, json={"name": name, "category": "acessórios",
                                                                "price_cents": 2500}).status_code == 200
    assert client.put("/v1/affiliates/ana", headers=admin, json={"name": "Ana Conceição"}).status_code in (200, 201)
    assert client.put("/v1/commission-rules", headers=admin,
                      json={"default_rate_bps": 100, "category_rates_bps": {"acessórios": 900}}).status_code == 200
    catalog = client.get("/v1/catalog", headers=keys.headers()).json()
    assert {"name": name, "category": "acessórios"}.items() <= next(
        p for p in catalog["products"] if p["sku"] == "bone").items(), catalog
    assert client.get("/v1/commission-rules", headers=admin).json()["category_rates_bps"] == {"acessórios": 900}
