"""The engine talks TLS to PocketBase and verifies it (#22 item 7, S1): the real PocketBase binary started by the
image's entrypoint with the certificate the stack generates (a self-signed ECDSA P-256 certificate naming the VM's
IP address, as components/database.py declares it), served through the image's TLS proxy (tlsproxy.py, Python's
ssl: the same file the image runs), and the engine's own PocketBase client pinned to that certificate
(POCKETBASE_CA_CERT). PocketBase itself answers on loopback only; a peer on the network gets TLS or nothing, and no
superuser through it, even from the VM's own loopback."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from engine.adapters.pocketbase import PocketBase
from engine.schema import ACCOUNTS, required, version_fields

from tests.test_pocketbase_image import ENV, _free_port, _image_user, pocketbase_home  # pyright: ignore[reportPrivateUsage]
from tests.test_pocketbase_superuser_network import _outside_address  # pyright: ignore[reportPrivateUsage]

__all__ = ["pocketbase_home"]  # the fixture, used by name


def self_signed(address: str) -> tuple[str, str]:
    """(certificate PEM, key PEM): what `tls.SelfSignedCert` makes for PocketBase (components/database.py)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pocketbase")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


@dataclass
class Served:
    address: str
    tls_port: int
    loopback_port: int
    cert: str


@pytest.fixture
def served(pocketbase_home: Path) -> Iterator[Served]:
    address = _outside_address()
    cert, key = self_signed(address)
    tls_port, loopback_port = _free_port(), _free_port()
    env = {**os.environ, **ENV, "PB_HOME": str(pocketbase_home),
           "PB_TLS_CERT_B64": base64.b64encode(cert.encode()).decode(),
           "PB_TLS_KEY_B64": base64.b64encode(key.encode()).decode(),
           "PB_TLS_LISTEN": f"0.0.0.0:{tls_port}", "PB_HTTP_LOOPBACK": f"127.0.0.1:{loopback_port}"}
    process = subprocess.Popen([*_image_user(), "sh", str(pocketbase_home / "entrypoint.sh")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{loopback_port}/api/health", timeout=1)
                with socket.create_connection((address, tls_port), timeout=1):
                    break
            except (OSError, httpx.HTTPError):
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                time.sleep(0.1)
        yield Served(address, tls_port, loopback_port, cert)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _engine(url: str, ca_cert: str) -> PocketBase:
    return PocketBase(url, ACCOUNTS, ENV["PB_ENGINE_EMAIL"], ENV["PB_ENGINE_PASSWORD"], 5.0, required(),
                      version_fields(), ca_cert=ca_cert)


async def _unready(url: str, ca_cert: str) -> str | None:
    engine = _engine(url, ca_cert)
    try:
        return await engine.unready()
    finally:
        await engine.close()


def test_the_engine_reaches_pocketbase_over_tls_pinned_to_the_stacks_certificate(served: Served) -> None:
    url = f"https://{served.address}:{served.tls_port}"
    assert asyncio.run(_unready(url, served.cert)) is None

    # Another certificate (an attacker's PocketBase) is refused, and so is the right one on a name it does not carry.
    other, _ = self_signed(served.address)
    assert asyncio.run(_unready(url, other)) is not None
    assert asyncio.run(_unready(f"https://127.0.0.1:{served.tls_port}", served.cert)) is not None
    # Unpinned, the system's CAs: a self-signed certificate is refused, never accepted unverified.
    assert asyncio.run(_unready(url, "")) is not None


def test_plain_http_reaches_nothing_from_the_network(served: Served) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{served.address}:{served.tls_port}/api/health", timeout=5)
    with pytest.raises(httpx.ConnectError):  # PocketBase itself listens on loopback only
        httpx.get(f"http://{served.address}:{served.loopback_port}/api/health", timeout=5)


def test_no_superuser_through_the_tls_proxy_even_from_the_vm(served: Served) -> None:
    body = {"identity": ENV["PB_SUPERUSER_EMAIL"], "password": ENV["PB_SUPERUSER_PASSWORD"]}
    pinned = httpx.create_ssl_context(verify=True)
    pinned.load_verify_locations(cadata=served.cert)
    with httpx.Client(verify=pinned, timeout=10) as client:
        base = f"https://{served.address}:{served.tls_port}"
        assert client.post(f"{base}/api/collections/_superusers/auth-with-password", json=body).status_code == 403
        assert client.get(f"{base}/_/").status_code == 403
    # Inside the container, on PocketBase's own loopback listener, the operator still signs in.
    inside = httpx.post(f"http://127.0.0.1:{served.loopback_port}/api/collections/_superusers/auth-with-password",
                        json=body, timeout=10)
    assert inside.status_code == 200, inside.text

