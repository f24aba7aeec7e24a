"""TLS in front of PocketBase on the network (#22 item 7, S1), standard library only (the image's python3).

    python3 tlsproxy.py --listen :8443 --upstream 127.0.0.1:8090 --cert C --key K -- pocketbase serve ...

Starts the command (PocketBase, or drtool.py wrapping it), accepts TLS on `--listen` with the certificate the
stack generated at deploy (the engine pins it: POCKETBASE_CA_CERT), and forwards each connection's bytes to
PocketBase, which listens on loopback only. It lives and dies with the command: the command's exit ends it with
the same status; a proxy that cannot serve stops the command, so the container restarts whole, never a
PocketBase nobody can reach or a proxy in front of nothing.

Forwarded connections leave from 127.0.0.2, never 127.0.0.1: PocketBase's hook (pb_hooks/superuser_loopback.pb.js)
serves superusers only to 127.0.0.1, so nothing that came through here, from the network, reaches them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import subprocess
import sys

FORWARD_SOURCE = "127.0.0.2"
"""The address forwarded connections come from: loopback, yet not the 127.0.0.1 the superuser hook admits."""


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS 1.2 at least (ssl's default minimum for a server context since Python 3.10), the default ciphers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        if not writer.can_write_eof():
            writer.close()


async def _forward(upstream: tuple[str, int], client_reader: asyncio.StreamReader,
                   client_writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream, local_addr=(FORWARD_SOURCE, 0))
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
    finally:
        for writer in (up_writer, client_writer):
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


async def serve(listen: tuple[str, int], upstream: tuple[str, int], context: ssl.SSLContext,
                command: list[str]) -> int:
    child = subprocess.Popen(command)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, child.send_signal, sig)
    try:
        server = await asyncio.start_server(lambda r, w: _forward(upstream, r, w), listen[0] or None, listen[1],
                                            ssl=context, ssl_handshake_timeout=10)
    except OSError as err:
        print(f"tlsproxy: cannot listen on {listen[0]}:{listen[1]}: {err}; stopping PocketBase", file=sys.stderr)
        child.terminate()
        await asyncio.to_thread(child.wait)
        return 1
    async with server:
        status = await asyncio.to_thread(child.wait)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tlsproxy")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("the command to run (PocketBase) follows --")
    context = server_context(args.cert, args.key)
    return asyncio.run(serve(_host_port(args.listen), _host_port(args.upstream), context, command))


if __name__ == "__main__":
    sys.exit(main())
