"""A pipelined Redis connection for the cache: one socket per process, every command in flight at once.

redis-py's asyncio client sends one command per connection at a time (its single-connection mode holds
a lock for each round trip; its pool checks a connection out per command), spends 40 to 90 µs of
Python on every command, and has no auto-pipelining (redis/redis-py#3767). On a cached read that was
the largest cost after the web framework. Here hiredis, the C parser redis-py itself uses, packs and
parses; the commands issued in one event-loop turn leave in one write and their replies are matched
in order. `bench/redis_client.py` measures both clients in one run.

It does only what the cache needs: AUTH (user and password from the URL), SELECT, TLS with a given CA
(`rediss://`), a deadline on every reply, and a new connection on the next command after a failure.
Errors never carry the URL or the password.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis


class RedisError(Exception):
    """Redis could not be reached, did not answer in time, or answered with an error."""


class ReplyError(RedisError):
    """An error reply (`-ERR ...`, `-WRONGPASS ...`)."""


_NOT_YET = object()

# hiredis's stub declares a one-element tuple and no return type; it packs any number of arguments to bytes.
_pack = cast(Callable[[tuple[str, ...]], bytes], hiredis.pack_command)  # pyright: ignore[reportUnknownMemberType]


class _Pipe(asyncio.Protocol):
    """One connection: commands are queued as futures and answered in the order they were sent."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader(replyError=ReplyError, encoding="utf-8", notEnoughData=_NOT_YET)
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.failure: RedisError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as err:
                self.fail(RedisError(f"Redis sent something that is not RESP: {err}"))
                return
            if reply is _NOT_YET:
                return
            if not self._waiting:
                self.fail(RedisError("Redis sent a reply nobody asked for"))
                return
            future, _ = self._waiting.popleft()
            if future.done():  # its caller stopped waiting; the reply is still consumed, in order
                continue
            if isinstance(reply, ReplyError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisError("the connection to Redis was closed" + (f": {exc}" if exc else "")))

    def send(self, command: tuple[str, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        now = loop.time()
        self._waiting.append((future, now))
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(_pack(command))
        if self._deadline is None:
            self._deadline = loop.call_at(now + self._timeout_s, self._check_deadline)
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is not None and self.failure is None:
            self._transport.write(b"".join(outgoing))

    def _check_deadline(self) -> None:
        """One timer per connection, not per command: it follows the oldest command still waiting."""
        self._deadline = None
        if not self._waiting:
            return
        oldest = self._waiting[0][1]
        loop = asyncio.get_running_loop()
        if loop.time() - oldest >= self._timeout_s:
            self.fail(RedisError(f"Redis did not answer within {self._timeout_s} s"))
        else:
            self._deadline = loop.call_at(oldest + self._timeout_s, self._check_deadline)

    def fail(self, error: RedisError) -> None:
        """Every waiting command gets the error; the connection is dropped and not used again."""
        if self.failure is None:
            self.failure = error
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self._transport is not None:
            self._transport.abort()


def _tls(ca_cert: str | None) -> ssl.SSLContext:
    """With the server's own CA (Memorystore's is unique to the instance), trust that CA alone and do not
    match the host name: Memorystore names the instance by IP in the certificate's CN, which Python's
    check does not read. Without one, the system's CAs and the usual host name check."""
    if not ca_cert:
        return ssl.create_default_context()
    context = ssl.create_default_context(cadata=ca_cert)  # given cadata, no system CA is loaded
    context.check_hostname = False  # the chain is still verified: verify_mode stays CERT_REQUIRED
    return context


class Redis:
    """`await redis.execute("MGET", "a", "b")`: a client for `redis://` and `rediss://` URLs."""

    def __init__(self, url: str, timeout_s: float, ca_cert: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("REDIS_URL: expected redis://[user:password@]host:port/db or rediss://...")
        self._host, self._port = parts.hostname or "localhost", parts.port or 6379
        password, user = unquote(parts.password or ""), unquote(parts.username or "")
        self._auth = (user, password) if user else (password,) if password else ()
        database = parts.path.lstrip("/")
        if database and not database.isdigit():
            raise ValueError("REDIS_URL: the path must be a database number, like /0")
        self._database = int(database or 0)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "rediss":
            self._ssl = _tls(ca_cert)
        self._timeout_s = timeout_s
        self._pipe: _Pipe | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, *command: str) -> Any:
        pipe = self._pipe
        if pipe is None or pipe.failure is not None:
            pipe = await self._connect()
        return await pipe.send(command)

    async def _connect(self) -> _Pipe:
        async with self._connecting:  # many commands may find the connection gone; one reconnects
            if self._pipe is not None and self._pipe.failure is None:
                return self._pipe
            self._pipe = await self._open()
            return self._pipe

    async def _open(self) -> _Pipe:
        loop = asyncio.get_running_loop()
        where = f"{self._host}:{self._port}"
        pipe: _Pipe | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                _, pipe = await loop.create_connection(lambda: _Pipe(self._timeout_s), self._host, self._port,
                                                       ssl=self._ssl, server_hostname=self._host if self._ssl else None)
                handshake = [pipe.send(("AUTH", *self._auth))] if self._auth else []
                if self._database:
                    handshake.append(pipe.send(("SELECT", str(self._database))))
                for reply in handshake:
                    await reply
        except ReplyError as err:
            if pipe is not None:
                pipe.fail(err)
            raise RedisError(f"Redis at {where} refused the connection: {err}") from None
        except (OSError, TimeoutError, RedisError) as err:
            if pipe is not None:
                pipe.fail(RedisError(str(err)))
            raise RedisError(f"cannot reach Redis at {where}: {err or type(err).__name__}") from None
        return pipe

    async def aclose(self) -> None:
        if self._pipe is not None:
            self._pipe.fail(RedisError("the client was closed"))
            self._pipe = None
