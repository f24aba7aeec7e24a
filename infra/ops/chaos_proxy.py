"""A fault-injecting TCP proxy for the chaos runs (infra/ops/chaos.py): asyncio, on loopback, in a thread.

Between the engine and one dependency (PocketBase or Redis), it forwards bytes both ways, and on demand:

- `latency(s)`: every chunk the client sends reaches the dependency `s` later (each one timed from its
  arrival, so they keep their order and do not add up): every call takes `s` longer;
- `reset()`: every open connection is closed with a TCP RST (SO_LINGER 0), and every new one too, at
  once: the dependency is unreachable, as a crashed host that answers with resets;
- `blackhole()`: nothing moves, either way: open connections stall with their bytes waiting in the
  kernel's buffers, new connections are accepted and then hear nothing, as when packets are dropped;
  when it heals they flow again, as TCP would retransmit;
- `heal()`: back to forwarding.
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

Mode = Literal["pass", "reset", "blackhole"]


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

    async def _set(self, mode: Mode, latency_s: float) -> None:
        assert self._flowing is not None
        self.mode, self.latency_s = mode, latency_s
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "reset":
            self._reset_open()

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
            await asyncio.gather(self._pump(reader, up_writer, delayed=True), self._pump(up_reader, writer))
        finally:
            self._open.discard(entry)
            for end in entry:
                if end is not None and not end.is_closing():
                    end.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, delayed: bool = False) -> None:
        """Bytes from `source` to `sink` while the proxy lets them through; the client's side is delayed."""
        assert self._flowing is not None
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            assert self._flowing is not None
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()

        writer = asyncio.ensure_future(deliver())
        try:
            while True:
                await self._flowing.wait()  # a blackhole reads nothing: the bytes wait in the kernel
                data = await source.read(65536)
                if not data:
                    break
                queue.put_nowait((time.monotonic() + (self.latency_s if delayed else 0.0), data))
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
    then obeys lines on stdin, `NAME reset|blackhole|heal` or `NAME latency SECONDS`, answering `ok`."""
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
            else:
                {"reset": proxy.reset, "blackhole": proxy.blackhole, "heal": proxy.heal}[words[1]]()
            print("ok", flush=True)
    finally:
        for proxy in proxies.values():
            proxy.close()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
