"""A stand-in for Railway's API on loopback: it executes each request against Railway's published
schema with graphql-core (so a malformed document fails as it would there) and keeps state.

Failures can be queued: an HTTP status (401, 429, 500) for the next requests, or a GraphQL error
for one operation.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from graphql import GraphQLError, build_schema, graphql_sync

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "railway-public-api.graphql"
# Railway's published schema breaks one rule graphql-core 3.3 enforces on schemas (`Team.id` is
# deprecated while the `Node.id` it implements is not); documents are still fully validated against it.
SCHEMA = build_schema(SCHEMA_FILE.read_text(), assume_valid=True)


@dataclass
class RailwayState:
    services: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    domains: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    redeploys: list[str] = field(default_factory=list[str])
    operations: list[str] = field(default_factory=list[str])


class Resolvers:
    """Root resolvers: graphql-core calls `root.<field>(info, **arguments)`."""

    def __init__(self, state: RailwayState, fail_operations: dict[str, str]) -> None:
        self.state = state
        self.fail_operations = fail_operations

    def _maybe_fail(self, operation: str) -> None:
        message = self.fail_operations.pop(operation, None)
        if message is not None:
            raise GraphQLError(message)

    def serviceCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("serviceCreate")
        service_id = str(uuid.uuid4())
        self.state.services[service_id] = {"id": service_id, "name": input["name"], "projectId": input["projectId"],
                                           "source": input.get("source"), "instance": {}, "limits": {},
                                           "variables": {}}
        return self.state.services[service_id]

    def serviceInstanceUpdate(self, _info: Any, serviceId: str, input: dict[str, Any],
                              environmentId: str | None = None) -> bool:
        self._maybe_fail("serviceInstanceUpdate")
        self.state.services[serviceId]["instance"] = input
        return True

    def serviceInstanceLimitsUpdate(self, _info: Any, input: dict[str, Any]) -> bool:
        self._maybe_fail("serviceInstanceLimitsUpdate")
        self.state.services[input["serviceId"]]["limits"] = {"vCPUs": input["vCPUs"], "memoryGB": input["memoryGB"]}
        return True

    def variableCollectionUpsert(self, _info: Any, input: dict[str, Any]) -> bool:
        self._maybe_fail("variableCollectionUpsert")
        service = self.state.services[input["serviceId"]]
        service["variables"] = dict(input["variables"]) if input.get("replace") else {
            **service["variables"], **input["variables"]}
        return True

    def volumeCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("volumeCreate")
        volume_id = str(uuid.uuid4())
        self.state.volumes[volume_id] = {"id": volume_id, "name": f"vol-{volume_id[:6]}", **input}
        return self.state.volumes[volume_id]

    def serviceDomainCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("serviceDomainCreate")
        domain_id = str(uuid.uuid4())
        name = self.state.services[input["serviceId"]]["name"]
        self.state.domains[domain_id] = {"id": domain_id, "domain": f"{name}-production.up.railway.app", **input}
        return self.state.domains[domain_id]

    def serviceDomainDelete(self, _info: Any, id: str) -> bool:
        self._maybe_fail("serviceDomainDelete")
        return self.state.domains.pop(id, None) is not None

    def serviceInstanceRedeploy(self, _info: Any, environmentId: str, serviceId: str) -> bool:
        self._maybe_fail("serviceInstanceRedeploy")
        self.state.redeploys.append(serviceId)
        return True

    def serviceDelete(self, _info: Any, id: str, environmentId: str | None = None) -> bool:
        self._maybe_fail("serviceDelete")
        self.state.services.pop(id, None)
        for volume_id in [v for v, vol in self.state.volumes.items() if vol.get("serviceId") == id]:
            del self.state.volumes[volume_id]
        for domain_id in [d for d, dom in self.state.domains.items() if dom.get("serviceId") == id]:
            del self.state.domains[domain_id]
        return True

    def service(self, _info: Any, id: str) -> dict[str, Any] | None:
        if id not in self.state.services:
            raise GraphQLError("Service not found")
        return self.state.services[id]


class FakeRailway:
    def __init__(self, token: str) -> None:
        self.token = token
        self.state = RailwayState()
        self.http_failures: deque[int] = deque()
        self.fail_operations: dict[str, str] = {}
        self.requests_seen: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRailway:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests_seen.append(body)
                fake.headers_seen.append(dict(self.headers))
                if fake.http_failures:
                    self._send(fake.http_failures.popleft(), {"errors": [{"message": "injected"}]})
                    return
                if self.headers.get("Project-Access-Token") != fake.token:
                    self._send(401, {"errors": [{"message": "Not Authorized"}]})
                    return
                fake.state.operations.append(body.get("operationName") or "")
                result = graphql_sync(SCHEMA, body["query"], root_value=Resolvers(fake.state, fake.fail_operations),
                                      variable_values=body.get("variables"), operation_name=body.get("operationName"))
                payload: dict[str, Any] = {"data": result.data}
                if result.errors:
                    payload["errors"] = [{"message": e.message} for e in result.errors]
                self._send(200, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

        return Handler
