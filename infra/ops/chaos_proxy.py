"""A fault-injecting TCP proxy for the chaos runs (infra/ops/chaos.py): asyncio, on loopback, in a thread.

Between the engine and one dependency (PocketBase or Redis), it forwards bytes both ways, and on demand:

- `latency(s)`: every chunk the client sends reaches the dependency `s` later (each one timed from its
  arrival, so they keep their order and do not add up): every call takes `s` longer;
- `reset()`: every open connection is closed with a TCP RST (SO_LINGER 0), and every new one too, at
  once: the dependency is unreachable, as a crashed host that answers with resets;
- `blackhole()`: nothing moves, either way: open connections stall with their bytes waiting in the
  kernel's buffers, new connections are accepted and then hear nothing, as when packets are dropped;
  when it heals they flow again, as TCP would retransmit;
- `reply_latency(s, only)`: every chunk the dependency sends reaches the client `s` later: the dependency
  has done the work (stored the write, set the key) but its answer is late (#23.1, #23.2); with `only`,
  just on connections that have sent those bytes (e.g. `/api/batch`: a write late, the reads before it not);
- `error(reply)`: Redis's side: every command is answered `reply` (e.g. `-ERR ...`, `-OOM ...`) and never
  reaches Redis (commands are counted with hiredis, the parser Redis clients use);
- `cut()`: every reply is cut half-way, then the connection reset: the command was done, its answer lost;
- `http(status, body, content_type)`: PocketBase's side: every request is answered by this (a proxy's HTML
  404 or 502, a 200 whose body is not JSON) and never reaches PocketBase, as something in front of it;
- `heal()`: back to forwarding.

Switching to `error`, `cut` or `http` closes the open connections (a FIN, as a restarting proxy would), so
a client's next call opens one and meets the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from typing import Any, Literal

Mode = Literal["pass", "reset", "blackhole", "error", "cut", "http"]
REASONS = {200: "OK", 404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable"}


def http_answer(status: int, body: bytes, content_type: str) -> bytes:
    """A complete HTTP/1.1 response that closes its connection."""
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a reset, not a FIN: SO_LINGER on with a zero timeout (socket(7))."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, name: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.name = name
        self.upstream = (host, upstream_port)
        self.mode: Mode = "pass"
        self.latency_s = 0.0
        self.reply_latency_s = 0.0
        self.reply_only = b""
        self.canned = b""
        """What `error` answers each command, or `http` each request."""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{name}", daemon=True)
        self._flowing: asyncio.Event | None = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._server: asyncio.Server | None = None

    # -- control, from any thread ----------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        if self._server is not None:
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def latency(self, seconds: float) -> None:
        self._call(self._set("pass", seconds))

    def reset(self) -> None:
        self._call(self._set("reset", 0.0))

    def blackhole(self) -> None:
        self._call(self._set("blackhole", 0.0))

    def heal(self) -> None:
        self._call(self._set("pass", 0.0))

    def reply_latency(self, seconds: float, only: bytes = b"") -> None:
        self._call(self._set("pass", 0.0, reply_latency_s=seconds, reply_only=only))

    def error(self, reply: str) -> None:
        """Every Redis command answered `reply`, a RESP error line such as `-OOM command not allowed ...`."""
        self._call(self._set("error", 0.0, canned=reply.rstrip("\r\n").encode() + b"\r\n"))

    def cut(self) -> None:
        self._call(self._set("cut", 0.0))

    def http(self, status: int, body: str, content_type: str = "text/html") -> None:
        self._call(self._set("http", 0.0, canned=http_answer(status, body.encode(), content_type)))

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # -- on the proxy's loop -----------------------------------------------------------------------

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        self._reset_open()

    async def _set(self, mode: Mode, latency_s: float, reply_latency_s: float = 0.0, canned: bytes = b"",
                   reply_only: bytes = b"") -> None:
        assert self._flowing is not None
        self.mode, self.latency_s, self.reply_latency_s, self.canned = mode, latency_s, reply_latency_s, canned
        self.reply_only = reply_only
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "reset":
            self._reset_open()
        if mode in ("error", "cut", "http"):
            self._close_open()

    def _close_open(self) -> None:
        """Every connection open through the proxy closed with a FIN, both of its ends."""
        for client, upstream in list(self._open):
            client.close()
            if upstream is not None:
                upstream.close()
        self._open.clear()

    def _reset_open(self) -> None:
        """Every connection open through the proxy, both of its ends, reset (RST)."""
        for client, upstream in list(self._open):
            _rst(client)
            if upstream is not None:
                _rst(upstream)
        self._open.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        if self.mode == "reset":
            _rst(writer)
            return
        if self.mode in ("error", "http"):
            await self._answer_here(reader, writer)
            return
        entry: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
        self._open.add(entry)
        try:
            await self._flowing.wait()  # a blackholed connection hears nothing until it heals
            if entry not in self._open:  # reset while it waited (and already closed)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                _rst(writer)
                return
            self._open.discard(entry)
            entry = (writer, up_writer)
            self._open.add(entry)
            sent: list[bytes] = []  # what this connection's client sent, for `reply_only`
            await asyncio.gather(self._pump(reader, up_writer, delayed=True, sent=sent),
                                 self._pump(up_reader, writer, reply=True, sent=sent))
        finally:
            self._open.discard(entry)
            for end in entry:
                if end is not None and not end.is_closing():
                    end.close()

    async def _answer_here(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """`error`: each Redis command answered with the canned error; `http`: one request read whole (head and
        Content-Length body), answered with the canned response, the connection closed."""
        import hiredis

        canned, mode = self.canned, self.mode
        commands = hiredis.Reader()
        try:
            if mode == "http":
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                writer.write(canned)
                await writer.drain()
                return
            while data := await reader.read(65536):
                commands.feed(data)
                while commands.gets() is not False:
                    writer.write(canned)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, delayed: bool = False,
                    reply: bool = False, sent: list[bytes] | None = None) -> None:
        """Bytes from `source` to `sink` while the proxy lets them through; the client's side is delayed by
        `latency_s`, the dependency's (`reply`) by `reply_latency_s`, and cut half-way in `cut`."""
        assert self._flowing is not None
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            assert self._flowing is not None
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                if reply and self.mode == "cut":
                    sink.write(data[:max(1, len(data) // 2)])
                    await sink.drain()
                    _rst(sink)
                    return
                sink.write(data)
                await sink.drain()

        writer = asyncio.ensure_future(deliver())
        try:
            while True:
                await self._flowing.wait()  # a blackhole reads nothing: the bytes wait in the kernel
                data = await source.read(65536)
                if not data:
                    break
                if delayed and sent is not None and self.reply_only and self.reply_only in data:
                    sent.append(self.reply_only)
                late = reply and (not self.reply_only or (sent is not None and self.reply_only in sent))
                lag = self.latency_s if delayed else self.reply_latency_s if late else 0.0
                queue.put_nowait((time.monotonic() + lag, data))
            queue.put_nowait(None)
            await writer
            with contextlib.suppress(OSError, RuntimeError):
                if sink.can_write_eof():
                    sink.write_eof()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.cancel()



def main(argv: list[str]) -> int:
    """`python -m infra.ops.chaos_proxy NAME=PORT ...`: a proxy per dependency, in a process of its own (so
    the chaos run's load threads never hold up its forwarding). Prints `{"NAME": listening port, ...}`,
    then obeys lines on stdin, answering `ok`: `NAME reset|blackhole|cut|heal`, `NAME latency SECONDS`,
    `NAME reply_latency SECONDS [ONLY]`, `NAME error REPLY...` (the rest of the line) or `NAME http STATUS CONTENT-TYPE
    BODY...`."""
    import json
    import sys

    proxies = {name: FaultProxy(name, int(port)).start()
               for name, port in (arg.split("=", 1) for arg in argv)}
    print(json.dumps({name: proxy.port for name, proxy in proxies.items()}), flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            proxy = proxies[words[0]]
            if words[1] == "latency":
                proxy.latency(float(words[2]))
            elif words[1] == "reply_latency":
                proxy.reply_latency(float(words[2]), words[3].encode() if len(words) > 3 else b"")
            elif words[1] == "error":
                proxy.error(" ".join(words[2:]))
            elif words[1] == "http":
                proxy.http(int(words[2]), " ".join(words[4:]), words[3])
            else:
                {"reset": proxy.reset, "blackhole": proxy.blackhole, "cut": proxy.cut, "heal": proxy.heal}[words[1]]()
            print("ok", flush=True)
    finally:
        for proxy in proxies.values():
            proxy.close()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
