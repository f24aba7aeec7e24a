"""A local stand-in for Cloudflare's purge endpoint, strict about the request as Cloudflare documents it.

`POST /client/v4/zones/{zone_id}/purge_cache`, `Authorization: Bearer <token>`, `Content-Type:
application/json`, body `{"files": [<absolute URL>, ...]}` with at most 30 URLs
(https://developers.cloudflare.com/api/operations/zone-purge). It answers with Cloudflare's
envelope: `{"success", "errors", "messages", "result": {"id"}}` (cloudflare/api-schemas,
`cache-purge_api-response-single-id`, `cache-purge_api-response-common-failure`), 429 with
`Retry-After` in seconds (https://developers.cloudflare.com/fundamentals/api/reference/limits/).

Anything else is answered as Cloudflare would refuse it, and noted in `violations`, which a test
expects empty. A test scripts the answers for a URL with `script(url, Reply(...), ...)`; once the
script runs out, that URL is purged successfully.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    errors: tuple[dict[str, Any], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    echo_authorization: bool = False
    """A hostile answer: the error message repeats the request's Authorization header."""
    drop: bool = False
    """No answer at all: the connection is closed (a network error for the client)."""


@dataclass(frozen=True)
class Call:
    at: float
    files: list[str]
    status: int


@dataclass
class FakeCloudflare:
    zone_id: str
    token: str
    port: int = 0
    calls: list[Call] = field(default_factory=list[Call])
    violations: list[str] = field(default_factory=list[str])
    scripts: dict[str, list[Reply]] = field(default_factory=dict[str, list[Reply]])
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    def script(self, url: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts[url] = list(replies)

    def calls_for(self, url: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if url in call.files]

    def wait_for(self, url: str, count: int, timeout_s: float = 15.0) -> list[Call]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(found := self.calls_for(url)) >= count:
                return found
            time.sleep(0.05)
        return self.calls_for(url)

    def answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any],
                                                                                             list[tuple[str, str]]]:
        if method != "POST" or path != f"/client/v4/zones/{self.zone_id}/purge_cache":
            self.violations.append(f"{method} {path}")
            return 404, _failure(7003, f"Could not route to {path}, perhaps your object identifier is invalid?"), []
        if headers.get("authorization") != f"Bearer {self.token}":
            self.violations.append("the Authorization header is not `Bearer <token>`")
            return 403, _failure(10000, "Authentication error"), []
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            self.violations.append(f"Content-Type {headers.get('content-type')!r}")
            return 400, _failure(1012, 'Request must contain one of "purge_everything", "files", "tags", "hosts" or '
                                       '"prefixes"'), []
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = None
        body = cast(dict[str, Any], parsed) if isinstance(parsed, dict) else {}
        files = cast(list[Any], body["files"]) if isinstance(body.get("files"), list) else []
        if (set(body) != {"files"} or not 1 <= len(files) <= 30
                or not all(isinstance(f, str) and urlsplit(f).scheme in ("http", "https") and urlsplit(f).netloc
                           for f in files)):
            self.violations.append(f"body {raw[:200]!r}")
            return 400, _failure(1012, 'Request must contain one of "purge_everything", "files", "tags", "hosts" or '
                                       '"prefixes"'), []
        urls: list[str] = [str(f) for f in files]
        reply = Reply(200)
        with self.lock:
            for url in urls:
                if self.scripts.get(url):
                    reply = self.scripts[url].pop(0)
                    break
            self.calls.append(Call(time.monotonic(), urls, 0 if reply.drop else reply.status))
        if reply.drop:
            return 0, {}, []
        if reply.status == 200:
            return 200, {"success": True, "errors": [], "messages": [], "result": {"id": secrets.token_hex(16)}}, []
        errors = [dict(e) for e in reply.errors] or [{"code": 10000 + reply.status, "message": "failed"}]
        if reply.echo_authorization:
            errors = [{"code": 1001, "message": f"refused {headers.get('authorization')}"}]
        return reply.status, {"success": False, "errors": errors, "messages": [], "result": None}, list(reply.headers)


def _failure(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


@contextmanager
def fake_cloudflare(zone_id: str, token: str) -> Generator[FakeCloudflare, None, None]:
    fake = FakeCloudflare(zone_id, token)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra = fake.answer(self.command, self.path, headers, raw)
            if status == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_PUT = do_DELETE = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
