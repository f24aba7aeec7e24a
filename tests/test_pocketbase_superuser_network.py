"""Superuser routes are off the engine's path (#22 item 7): the real PocketBase binary, started by the image's
entrypoint with its hooks, listening on every interface. From a non-loopback address (the engine's, here this
machine's own address on its network interface) superuser sign-in, the admin UI, the legacy admins API and any
request carrying a superuser's token are refused; the engine's account still works from there; inside the
container (loopback) the superuser still signs in."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_pocketbase_image import ENGINE_ACCOUNTS, ENV, _free_port, _image_user, pocketbase_home  # pyright: ignore[reportPrivateUsage]

__all__ = ["pocketbase_home"]  # the fixture, used by name


def _outside_address() -> str:
    """This machine's address on a non-loopback interface: where a peer on the network comes from."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # no packet is sent: only the route's source address is chosen
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), address
    return address


@pytest.fixture
def listening(pocketbase_home: Path) -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen([*_image_user(), "sh", str(pocketbase_home / "entrypoint.sh")],
                               env={**os.environ, **ENV, "PB_HOME": str(pocketbase_home), "PB_HTTP": f"0.0.0.0:{port}"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _superuser_sign_in(base: str) -> httpx.Response:
    return httpx.post(f"{base}/api/collections/_superusers/auth-with-password", timeout=10,
                      json={"identity": ENV["PB_SUPERUSER_EMAIL"], "password": ENV["PB_SUPERUSER_PASSWORD"]})


def test_superuser_routes_are_refused_from_the_network_and_served_inside(listening: int) -> None:
    outside = f"http://{_outside_address()}:{listening}"
    inside = f"http://127.0.0.1:{listening}"

    assert _superuser_sign_in(outside).status_code == 403
    # By the collection's id too, as PocketBase also names it (the hook is on the collection, not the URL).
    inside_token = _superuser_sign_in(inside)
    assert inside_token.status_code == 200, inside_token.text
    token = inside_token.json()["token"]
    collection_id = inside_token.json()["record"]["collectionId"]
    by_id = httpx.post(f"{outside}/api/collections/{collection_id}/auth-with-password", timeout=10,
                       json={"identity": ENV["PB_SUPERUSER_EMAIL"], "password": ENV["PB_SUPERUSER_PASSWORD"]})
    assert by_id.status_code == 403
    assert httpx.get(f"{outside}/_/", timeout=10).status_code == 403
    assert httpx.get(f"{inside}/_/", timeout=10).status_code == 200
    assert httpx.get(f"{outside}/api/admins", timeout=10).status_code in (403, 404)
    # A superuser's token taken elsewhere opens nothing from the network.
    assert httpx.get(f"{outside}/api/settings", headers={"Authorization": token}, timeout=10).status_code == 403
    assert httpx.get(f"{inside}/api/settings", headers={"Authorization": token}, timeout=10).status_code == 200

    engine = httpx.post(f"{outside}/api/collections/{ENGINE_ACCOUNTS}/auth-with-password", timeout=10,
                        json={"identity": ENV["PB_ENGINE_EMAIL"], "password": ENV["PB_ENGINE_PASSWORD"]})
    assert engine.status_code == 200, engine.text
    orders = httpx.get(f"{outside}/api/collections/orders/records?perPage=1", timeout=10,
                       headers={"Authorization": engine.json()["token"]})
    assert orders.status_code == 200, orders.text
