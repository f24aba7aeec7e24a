"""`python -m engine dev` in one command, and OpenTelemetry traces over OTLP when configured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from engine.dev import demo_tenant, local_stack
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def test_engine_dev_prints_one_json_line_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "engine", "dev", "--data", str(tmp_path)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert set(first) == {"url", "tenant", "api_key", "admin_key", "docs"}
        headers = {"Authorization": f"Bearer {first['admin_key']}"}
        assert httpx.put(f"{first['url']}/v1/products/TEA", headers=headers,
                         json={"name": "Tea", "price_cents": 900}).status_code == 200
        products = httpx.get(f"{first['url']}/v1/catalog", headers={"Authorization": f"Bearer {first['api_key']}"}
                             ).json()["products"]
        assert "TEA" in {p["sku"] for p in products}  # beside the demo's own product
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert (tmp_path / "pb" / "data.db").exists(), "--data keeps the data"


def test_each_request_is_one_server_span_exported_over_otlp_when_an_endpoint_is_configured(tmp_path: Path) -> None:
    spans: list[tuple[str, int, dict[str, str]]] = []

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            return

        def do_POST(self) -> None:
            request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v1/traces":
                spans.extend((span.name, span.kind, {a.key: a.value.string_value for a in span.attributes})
                             for resource in request.resource_spans for scope in resource.scope_spans
                             for span in scope.spans)
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tenant, api_key, _ = demo_tenant()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"
    try:
        with local_stack(tmp_path, [tenant]) as stack:
            httpx.get(f"{stack.url}/healthz")
            httpx.get(f"{stack.url}/v1/catalog", headers={"Authorization": f"Bearer {api_key}"})
            deadline = time.monotonic() + 10
            while not any(kind == Span.SPAN_KIND_SERVER for _, kind, _ in spans) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # a second exporter would have flushed by now too
    finally:
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"], os.environ["OTEL_BSP_SCHEDULE_DELAY"]
        server.shutdown()
    server_spans = [(name, attributes) for name, kind, attributes in spans if kind == Span.SPAN_KIND_SERVER]
    assert [name for name, _ in server_spans] == ["GET /v1/catalog"], "one span per request; probes not traced"
    assert server_spans[0][1]["http.route"] == "/v1/catalog"
    # Nor a span of each ASGI message the request sends or receives ("GET /v1/catalog http send", kind internal,
    # opentelemetry-instrumentation-asgi's default): they doubled tracing's CPU per request (bench/README.md).
    assert [name for name, _, _ in spans] == ["GET /v1/catalog"], spans
