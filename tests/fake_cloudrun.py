"""A stand-in for the Cloud Run Admin API v2 on loopback: services, their revisions and traffic, with
the shapes of Google's REST reference (cloud.google.com/run/docs/reference/rest/v2):

- `GET v2/{name=projects/*/locations/*/services/*}`: a Service. Its `traffic` is what was asked,
  `trafficStatuses` what serves (a LATEST target shows the revision it resolved to), `latestCreatedRevision`
  and `latestReadyRevision` are full resource names, `reconciling` is true while a change settles, and,
  as in every proto3 JSON answer, a percent of 0 is left out.
- `PATCH v2/{service.name}` with a Service: a long-running Operation (`name`, `done`, then `response`);
  `GET v2/{name=projects/*/locations/*/operations/*}` reads it. A template that differs from the one
  stored makes a new revision (its name `<service>-<generation, 5 digits>-<3 letters>`); traffic alone
  makes none. An `etag` that is not the current one is ABORTED (409), as AIP-154 has it.
- `GET v2/{name=.../services/*/revisions/*}`: a Revision with its `conditions` (Ready).
- Errors are google.rpc.Status: `{"error": {"code", "message", "status"}}`; INVALID_ARGUMENT for
  traffic whose percents do not add up to 100, a revision the service does not have (or not ready),
  a tag twice, or an unknown allocation type; UNAUTHENTICATED without the bearer token.

`deploy()` is what `pulumi up` does through the provider: a template, and the program's traffic block.
"""

from __future__ import annotations

import copy
import json
import random
import re
import string
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LATEST, REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
TAG = re.compile(r"[a-z](?:[-a-z0-9]{0,44}[a-z0-9])?")


class ApiError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


@dataclass
class Revision:
    name: str
    template: dict[str, Any]
    ready: bool
    message: str = ""

    def resource(self, service: str) -> dict[str, Any]:
        condition = ({"type": "Ready", "state": "CONDITION_SUCCEEDED"} if self.ready else
                     {"type": "Ready", "state": "CONDITION_FAILED", "reason": "HealthCheckContainerError",
                      "message": self.message or "The user-provided container failed the configured startup probe checks."})
        return {"name": f"{service}/revisions/{self.name}", "service": service, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.name)),
                "containers": copy.deepcopy(self.template.get("containers", [])), "conditions": [condition],
                "reconciling": False}


@dataclass
class Service:
    name: str
    template: dict[str, Any]
    traffic: list[dict[str, Any]]
    revisions: list[Revision] = field(default_factory=list[Revision])
    generation: int = 1
    etag: str = ""
    settling: int = 0
    """GETs that still answer `reconciling: true` after a change."""
    traffic_changes: list[list[dict[str, Any]]] = field(default_factory=list[list[dict[str, Any]]])

    @property
    def short(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def latest_ready(self) -> Revision | None:
        return next((r for r in reversed(self.revisions) if r.ready), None)

    def resolve(self, target: dict[str, Any]) -> str | None:
        if target.get("type") == LATEST:
            latest = self.latest_ready()
            return latest.name if latest else None
        return target.get("revision")

    def resource(self) -> dict[str, Any]:
        latest_ready = self.latest_ready()
        statuses: list[dict[str, Any]] = []
        for target in self.traffic:
            status = {k: v for k, v in target.items() if v not in (None, 0, "")}
            status["revision"] = self.resolve(target)
            if target.get("tag"):
                status["uri"] = f"https://{target['tag']}---{self.short}-a1b2c3d4e5-rj.a.run.app"
            statuses.append(status)
        reconciling = self.settling > 0
        self.settling = max(self.settling - 1, 0)
        return {
            "name": self.name, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.name)), "generation": str(self.generation),
            "etag": self.etag, "template": copy.deepcopy(self.template),
            "traffic": [{k: v for k, v in t.items() if v not in (None, 0, "")} for t in self.traffic],
            "observedGeneration": str(self.generation), "reconciling": reconciling,
            "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED"},
            "latestCreatedRevision": f"{self.name}/revisions/{self.revisions[-1].name}" if self.revisions else "",
            "latestReadyRevision": f"{self.name}/revisions/{latest_ready.name}" if latest_ready else "",
            "trafficStatuses": statuses, "uri": f"https://{self.short}-a1b2c3d4e5-rj.a.run.app",
        }


class FakeCloudRun:
    def __init__(self, token: str, project: str = "acme-commerce-prod", region: str = "southamerica-east1") -> None:
        self.token = token
        self.parent = f"projects/{project}/locations/{region}"
        self.services: dict[str, Service] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.random = random.Random(7)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> FakeCloudRun:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what `pulumi up` does -------------------------------------------------------------------

    def deploy(self, service: str, image: str, traffic: list[dict[str, Any]], ready: bool = True,
               message: str = "", revision: str | None = None) -> str:
        """The provider's create or update: the template (a new revision when it changed, named `revision`
        if given, as the template's `revision` field does) and the traffic block as the program declares it
        (components/backends/cloudrun.py `traffic`). The newest revision's name."""
        with self.lock:
            name = f"{self.parent}/services/{service}"
            template = {"containers": [{"name": service, "image": image}]}
            found = self.services.get(name)
            if found is None:
                found = self.services[name] = Service(name, template, [], generation=0)
            if found.template != template or not found.revisions:
                found.template = template
                self._new_revision(found, ready, message, revision)
            self._set_traffic(found, traffic)
            return found.revisions[-1].name

    def traffic_of(self, service: str) -> dict[str, int]:
        """Revision -> percent, as it serves now."""
        found = self.services[f"{self.parent}/services/{service}"]
        out: dict[str, int] = {}
        for target in found.traffic:
            name = found.resolve(target)
            if name and target.get("percent"):
                out[name] = out.get(name, 0) + int(target["percent"])
        return out

    # -- the API ------------------------------------------------------------------------------------

    def _new_revision(self, service: Service, ready: bool, message: str, name: str | None = None) -> None:
        service.generation += 1
        suffix = "".join(self.random.choice(string.ascii_lowercase) for _ in range(3))
        service.revisions.append(Revision(name or f"{service.short}-{service.generation:05d}-{suffix}",
                                          copy.deepcopy(service.template), ready, message))

    def _set_traffic(self, service: Service, traffic: list[dict[str, Any]]) -> None:
        targets = [dict(t) for t in traffic] or [{"type": LATEST, "percent": 100}]
        tags = [t["tag"] for t in targets if t.get("tag")]
        if len(tags) != len(set(tags)):
            raise ApiError(400, "INVALID_ARGUMENT", f"traffic tags must be unique: {tags}")
        for target in targets:
            if target.get("type") not in (LATEST, REVISION):
                raise ApiError(400, "INVALID_ARGUMENT", f"traffic type {target.get('type')!r} is not an allocation type")
            if target.get("tag") and not TAG.fullmatch(target["tag"]):
                raise ApiError(400, "INVALID_ARGUMENT", f"tag {target['tag']!r} is not a valid DNS label")
            if target["type"] == REVISION:
                revision = next((r for r in service.revisions if r.name == target.get("revision")), None)
                if revision is None:
                    raise ApiError(400, "INVALID_ARGUMENT", f"Revision named '{target.get('revision')}' not found.")
                if not revision.ready:
                    raise ApiError(400, "INVALID_ARGUMENT", f"Revision '{revision.name}' is not ready and cannot serve "
                                                            "traffic.")
        if sum(int(t.get("percent") or 0) for t in targets) != 100:
            raise ApiError(400, "INVALID_ARGUMENT", "Traffic targets' percents must sum to 100.")
        if targets != service.traffic:
            service.traffic_changes.append(copy.deepcopy(targets))
        service.traffic = targets
        service.etag = f'"{uuid.uuid4().hex[:16]}"'
        service.settling = 1

    def _patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        service = self._service(name)
        if body.get("etag") and body["etag"] != service.etag:
            raise ApiError(409, "ABORTED", "The etag of the service does not match: it was changed since it was read.")
        template = body.get("template", service.template)
        if template != service.template:
            service.template = copy.deepcopy(template)
            self._new_revision(service, True, "")
        self._set_traffic(service, list(body.get("traffic") or []))
        operation = {"name": f"{self.parent}/operations/{uuid.uuid4()}", "done": False,
                     "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service", "name": name}}
        self.operations[operation["name"]] = {**operation, "service": name}
        return operation

    def _operation(self, name: str) -> dict[str, Any]:
        operation = self.operations.get(name)
        if operation is None:
            raise ApiError(404, "NOT_FOUND", f"Operation {name} not found.")
        service = self._service(operation["service"])
        return {"name": name, "metadata": operation["metadata"], "done": True,
                "response": {"@type": "type.googleapis.com/google.cloud.run.v2.Service", **service.resource()}}

    def _service(self, name: str) -> Service:
        service = self.services.get(name)
        if service is None:
            raise ApiError(404, "NOT_FOUND", f"Resource '{name.rsplit('/', 1)[-1]}' of kind 'SERVICE' in region "
                                             f"'{self.parent.rsplit('/', 1)[-1]}' in project was not found.")
        return service

    def answer(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        with self.lock:
            name = path.removeprefix("/v2/").split("?", 1)[0]
            self.requests.append((method, name))
            if method == "GET" and "/operations/" in name:
                return self._operation(name)
            if "/revisions/" in name and method == "GET":
                service_name, _, revision = name.partition("/revisions/")
                service = self._service(service_name)
                found = next((r for r in service.revisions if r.name == revision), None)
                if found is None:
                    raise ApiError(404, "NOT_FOUND", f"Revision '{revision}' not found.")
                return found.resource(service_name)
            if method == "GET":
                return self._service(name).resource()
            if method == "PATCH":
                return self._patch(name, body or {})
            raise ApiError(405, "UNIMPLEMENTED", f"{method} is not part of this fake")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self, method: str) -> None:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                               "message": "Request had invalid authentication credentials."}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                try:
                    self._send(200, fake.answer(method, self.path, body))
                except ApiError as err:
                    self._send(err.code, {"error": {"code": err.code, "status": err.status, "message": err.message}})

            def do_GET(self) -> None:
                self._serve("GET")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
