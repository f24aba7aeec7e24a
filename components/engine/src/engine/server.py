"""uvicorn's httptools protocol, answering the requests it has read before it answers bytes that are not HTTP.

#23.5: an order followed by bytes that are not HTTP in the same write (a client's bug, a TLS hello sent to the
plain port, a proxy's stray bytes) was answered 400 "Invalid HTTP request received." while the order was
created: httptools parses the whole chunk at once, calls back the complete order (uvicorn starts the app on
it) and then fails on the rest; uvicorn 0.54's `HttpToolsProtocol.data_received` answers that failure with a
400 and closes the connection at once, so the 400 is the only answer the client reads, for a request that
succeeded. uvicorn's h11 protocol does not do this (h11 stops at the end of a request, PAUSED, until its
response is sent, and only then parses what follows), but it parses in pure Python, on every request.

RFC 9112 9.3.2 (pipelining): a server "MUST send the corresponding responses in the same order that the
requests were received". The bytes after a complete request are the next "request"; its 400 comes after the
answer of each request read before it. So here: while a request read from this connection is still being
answered (or queued behind one), a parse error is remembered and nothing more is read; once the last of those
responses is sent, the 400 follows and the connection closes, as uvicorn does. With nothing in flight, a parse
error is answered at once, exactly as uvicorn does. Nor is it deferred while the last request read still
expects its body (`cycle.more_body`: a chunked body that turns invalid partway): that request can never be
completed, its application waits for a body that will not come, and deferring hung the connection for ever
(#23, second audit); it is answered 400 at once and the connection closes, as uvicorn does. Pinned to uvicorn
0.54.0 (components/engine/pyproject.toml), tested with a raw socket (tests/engine/test_faults.py and
test_faults_more.py).
"""

from __future__ import annotations

from typing import cast

import httptools  # pyright: ignore[reportMissingTypeStubs]
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

INVALID = "Invalid HTTP request received."


class HttpProtocol(HttpToolsProtocol):
    """`uvicorn.run(..., http="engine.server:HttpProtocol")`."""

    _pending_400 = False

    def _answering(self) -> bool:
        """Whether a request read from this connection has not been fully answered yet."""
        cycle = cast(RequestResponseCycle | None, self.cycle)  # None before the first request (uvicorn's own init)
        return (cycle is not None and not cycle.response_complete) or bool(self.pipeline)

    def _last_request_read_whole(self) -> bool:
        """Whether the last request read (uvicorn's `self.cycle`, set at each request's headers, pipelined or
        not) has its whole body: uvicorn's `on_message_complete` sets `more_body = False`."""
        cycle = cast(RequestResponseCycle | None, self.cycle)
        return cycle is None or not cycle.more_body

    def data_received(self, data: bytes) -> None:
        if self._pending_400:  # nothing after the bytes that were not HTTP is read
            return
        self._unset_keepalive_if_required()
        parser = self.parser
        assert parser is not None
        try:
            parser.feed_data(data)
        except httptools.HttpParserError:  # pyright: ignore[reportUnknownMemberType]
            self.logger.warning(INVALID)
            if self._answering() and self._last_request_read_whole():
                self._pending_400 = True
                self.flow.pause_reading()
                return
            self.send_400_response(INVALID)
        except httptools.HttpParserUpgrade:  # pyright: ignore[reportUnknownMemberType]
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._pending_400 and not self._answering() and not self.transport.is_closing():
            self.send_400_response(INVALID)
