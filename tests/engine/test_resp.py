"""The engine's pipelined Redis client against a real redis-server: pairing of replies under
concurrency, AUTH, SELECT, error replies, deadlines, reconnecting after a restart, and TLS with a CA."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from engine.adapters.resp import Redis, RedisError, ReplyError
from engine.dev import free_port, wait_tcp
from pulumi_gcp.redis.outputs import InstanceServerCaCert

from components.cache import ca_bundle


@dataclass
class Server:
    port: int
    password: str
    process: subprocess.Popen[bytes]
    extra: tuple[str, ...] = ()

    def url(self, password: str | None = None, database: int = 0, user: str = "") -> str:
        return f"redis://{user}:{self.password if password is None else password}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def start(self) -> None:
        self.process = _spawn(self.port, self.password, self.extra)


def _spawn(port: int, password: str, extra: tuple[str, ...] = (), tcp_port: int | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["redis-server", "--port", str(port if tcp_port is None else tcp_port), "--bind",
                                "127.0.0.1", "--requirepass", password, "--save", "", "--appendonly", "no", *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_tcp(port, process)
    return process


@pytest.fixture
def server() -> Iterator[Server]:
    port, password = free_port(), secrets.token_hex(16)
    running = Server(port, password, _spawn(port, password))
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


def test_concurrent_commands_each_get_their_own_reply(server: Server) -> None:
    async def scenario() -> None:
        redis = Redis(server.url(), timeout_s=2)
        await asyncio.gather(*(redis.execute("SET", f"k{i}", f"v{i}") for i in range(500)))
        replies = await asyncio.gather(*(redis.execute("MGET", f"k{i}", "missing", f"k{(i + 1) % 500}")
                                         for i in range(500)))
        counts = await asyncio.gather(*(redis.execute("INCR", "counter") for _ in range(200)))
        await redis.aclose()

        assert replies == [[f"v{i}", None, f"v{(i + 1) % 500}"] for i in range(500)]
        assert sorted(counts) == list(range(1, 201)) and counts == sorted(counts), "replies come back in order"

    asyncio.run(scenario())


def test_an_error_reply_fails_that_command_only(server: Server) -> None:
    async def scenario() -> None:
        redis = Redis(server.url(), timeout_s=2)
        await redis.execute("SET", "text", "not a number")
        results = await asyncio.gather(redis.execute("INCR", "text"), redis.execute("GET", "text"),
                                       return_exceptions=True)
        await redis.aclose()

        assert isinstance(results[0], ReplyError) and "not an integer" in str(results[0])
        assert results[1] == "not a number"

    asyncio.run(scenario())


def test_a_caller_that_gives_up_does_not_shift_the_replies_of_the_others(server: Server) -> None:
    async def scenario() -> None:
        redis = Redis(server.url(), timeout_s=2)
        await redis.execute("SET", "a", "1")
        await redis.execute("SET", "b", "2")
        abandoned = asyncio.ensure_future(redis.execute("GET", "a"))
        kept = asyncio.ensure_future(redis.execute("GET", "b"))
        await asyncio.sleep(0)
        abandoned.cancel()
        assert await kept == "2"
        assert await redis.execute("GET", "a") == "1"
        await redis.aclose()

    asyncio.run(scenario())


def test_a_wrong_password_is_refused_without_echoing_it(server: Server) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(8)

    async def scenario() -> str:
        redis = Redis(server.url(password=wrong), timeout_s=2)
        with pytest.raises(RedisError) as raised:
            await redis.execute("PING")
        return str(raised.value)

    message = asyncio.run(scenario())

    assert "WRONGPASS" in message or "invalid" in message
    assert wrong not in message and server.password not in message


def test_a_user_in_the_url_authenticates_as_that_user(server: Server) -> None:
    async def scenario() -> str:
        redis = Redis(server.url(user="default"), timeout_s=2)
        try:
            return await redis.execute("ACL", "WHOAMI")
        finally:
            await redis.aclose()

    assert asyncio.run(scenario()) == "default"


def test_the_database_in_the_url_is_selected(server: Server) -> None:
    async def scenario() -> tuple[str | None, str | None]:
        three, zero = Redis(server.url(database=3), timeout_s=2), Redis(server.url(database=0), timeout_s=2)
        await three.execute("SET", "where", "db3")
        seen = await three.execute("GET", "where"), await zero.execute("GET", "where")
        await three.aclose()
        await zero.aclose()
        return seen

    assert asyncio.run(scenario()) == ("db3", None)


def test_a_server_that_never_answers_fails_the_command_at_the_deadline() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def scenario() -> float:
        redis = Redis(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
        started = time.monotonic()
        with pytest.raises(RedisError, match=r"did not answer within 0\.2 s"):
            await redis.execute("PING")
        return time.monotonic() - started

    try:
        took = asyncio.run(scenario())
    finally:
        listener.close()

    assert 0.2 <= took < 1.0


def test_nothing_listening_is_a_clear_error() -> None:
    port = free_port()

    async def scenario() -> None:
        with pytest.raises(RedisError, match=f"cannot reach Redis at 127.0.0.1:{port}"):
            await Redis(f"redis://127.0.0.1:{port}/0", timeout_s=0.5).execute("PING")

    asyncio.run(scenario())


def test_after_a_restart_the_next_command_reconnects(server: Server) -> None:
    async def scenario() -> None:
        redis = Redis(server.url(), timeout_s=1)
        assert await redis.execute("PING") == "PONG"
        server.stop()
        with pytest.raises(RedisError):
            await redis.execute("PING")
        server.start()
        assert await redis.execute("PING") == "PONG"
        await redis.aclose()

    asyncio.run(scenario())


def test_a_bad_url_names_the_setting_without_the_password() -> None:
    with pytest.raises(ValueError, match="REDIS_URL") as raised:
        Redis("http://user:hunter2@example.com/0", timeout_s=1)
    assert "hunter2" not in str(raised.value)


def test_tls_trusts_the_instances_own_cas_alone_whatever_name_the_certificate_gives(tmp_path: Path) -> None:
    """The Memorystore path: `rediss://` to an IP, and the instance's CAs as the platform passes them
    (REDIS_CA_CERT, from `components.cache.ca_bundle`). Memorystore's certificate names the instance
    by IP in its CN only; the CAs are unique to the instance, and after a rotation there are two."""
    old_ca, new_ca, stranger = trustme.CA(), trustme.CA(), trustme.CA()
    certificate = new_ca.issue_cert("redis-instance.invalid", common_name="127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    new_ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port, password = free_port(), secrets.token_hex(16)
    process = _spawn(port, password, ("--tls-port", str(port), "--tls-cert-file", str(tmp_path / "server.pem"),
                                      "--tls-key-file", str(tmp_path / "server.pem"), "--tls-ca-cert-file",
                                      str(tmp_path / "ca.pem"), "--tls-auth-clients", "no"), tcp_port=0)
    url = f"rediss://:{password}@127.0.0.1:{port}/0"
    bundle = ca_bundle([InstanceServerCaCert(cert=ca.cert_pem.bytes().decode()) for ca in (old_ca, new_ca)])

    async def scenario() -> None:
        trusted = Redis(url, timeout_s=2, ca_cert=bundle)
        assert await trusted.execute("PING") == "PONG"
        await trusted.aclose()
        for ca_cert in (stranger.cert_pem.bytes().decode(), None):  # another CA; the system's CAs
            with pytest.raises(RedisError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                await Redis(url, timeout_s=2, ca_cert=ca_cert).execute("PING")

    try:
        asyncio.run(scenario())
    finally:
        process.terminate()
        process.wait(timeout=10)
