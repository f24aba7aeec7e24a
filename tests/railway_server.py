"""A stand-in for Railway's API on loopback: it executes each request against Railway's published
schema with graphql-core (so a malformed document fails as it would there) and keeps state.

It behaves as Railway does where the provider depends on it, each rule with its source:

- A deployment is a snapshot of the service at the moment it is made: image, variables, start
  command and replica placement. Railway makes one when `serviceCreate` is given a source ("once you
  create a service and choose a source, Railway will ... deploy it", railwayapp/docs#727), on
  `serviceInstanceDeployV2`, and on `serviceInstanceRedeploy`, which re-runs the image of the live
  deployment whatever source was set since (Crossbill-App/crossbill-web#497). `serviceInstanceUpdate`
  changes settings and deploys nothing (rusty-auth/rustyauth#32).
- Placement is `multiRegionConfig` ({"<region>": {"numReplicas": N}}, a region set to null is
  removed: alchemy-run/alchemy packages/alchemy/src/Railway/ServiceRegion.ts). The legacy `region`
  and `numReplicas` of `serviceInstanceUpdate` are kept but change nothing (alchemy-run/alchemy#1748,
  terraform-community-providers/terraform-provider-railway#35). Nothing placed: one replica in the
  workspace's default region.
- A start command replaces the image's ENTRYPOINT in exec form: words as a shell splits them, no
  variable expansion (docs.railway.com/deployments/start-command).
- An image on a private registry is pulled only with that registry's credentials, and credentials a
  registry refuses fail the pull (docs.railway.com/builds/private-registries): the deployment FAILED.
- A service that does not exist is the GraphQL error "Service not found" (the message
  terraform-community-providers/terraform-provider-railway#93 matches).
- A custom domain (`customDomainCreate`) answers, in `status`, the routing record to add (a CNAME of
  the hostname to a `<id>.up.railway.app` target, purpose TRAFFIC_ROUTE) and, apart from it, a
  verification TXT: `verificationDnsHost` (`_railway-verify.<hostname>`) and `verificationToken`,
  published as `railway-verify=<token>` (docs.railway.com/integrations/api/manage-domains: "The routing
  DNS records are returned in `status.dnsRecords` ... the verification `TXT` token is returned
  separately in `status.verificationToken`. Both are required"; railwayapp/cli src/commands/domain.rs
  prints the TXT as `railway-verify=<token>` at that host; railwayapp/docs#1155 names it
  `_railway-verify.www` for `www.example.com`). Railway verifies the domain, and routes it, only once
  that TXT is in the public DNS ("If the `TXT` record is missing, requests to your custom domain will
  return a `404`", docs.railway.com/networking/domains/working-with-domains), and the TXT is read
  whether or not the CNAME is proxied by Cloudflare (boardsesh/boardsesh#5054). A proxied CNAME shows
  Cloudflare's addresses, so Railway reports "Cloudflare proxy detected" (`cdnProvider`) instead of
  the CNAME's value. A hostname is held by one custom domain at a time (the error's wording here is
  the fake's own). A custom domain that does not exist is "Custom domain not found" (the fake's
  wording too). Deleting a service deletes its domains here: an assumption, which the provider does
  not rely on (it deletes its custom domain itself).
- The public DNS zone the domains are checked against is `RailwayState.dns`: a test publishes there
  what the edge would declare in Cloudflare.

- A health check gates a deployment: Railway "will query the endpoint until it receives an HTTP 200
  response. Only then will the new deployment be made active" (docs.railway.com/deployments/
  healthchecks), so a deployment whose health check never passes ends FAILED and the one before keeps
  serving. Which images fail it is `RailwayConfig.unhealthy_images`.
- `deploymentRollback(id)` rolls back *to* deployment `id`: a new deployment of its image and its
  variables ("Both the Docker image and custom variables are restored", docs.railway.com/deployments/
  deployment-actions), allowed only when it has `canRollback: true` (docs.railway.com/integrations/api/
  manage-deployments); here that is a deployment that ran healthy (SUCCESS, SLEEPING, REMOVED). The
  answer is a Boolean (the schema).
- `deployments(input: {projectId, environmentId, serviceId})` lists deployments, newest first here
  (Railway does not promise an order: the rollout sorts them itself).

Failures can be queued: an HTTP status (401, 429, 500) for the next requests, or a GraphQL error
for one operation.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
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

# Deployments' createdAt count seconds from here, one a deployment.
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# Where a new service's replicas run until `multiRegionConfig` says otherwise (railwayapp/railway-ts-sdk#43).
DEFAULT_REGION = "us-west2"


def image_server(image: str) -> str:
    """The registry an image reference names: its first part when that looks like a host, else Docker Hub."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


@dataclass
class Deployment:
    id: str
    service_id: str
    image: str
    variables: dict[str, str]
    start_command: list[str] | None
    """The process as Railway starts it; None runs the image's own ENTRYPOINT and CMD."""
    replicas: dict[str, int]
    status: str
    reason: str = ""
    polls: int = 0
    created_at: str = ""
    """RFC 3339; later deployments sort after earlier ones."""

    def node(self, service_name: str) -> dict[str, Any]:
        """As `Deployment` in the schema (the fields the rollout reads)."""
        return {"id": self.id, "status": self.status, "createdAt": self.created_at, "serviceId": self.service_id,
                "canRollback": self.status in ("SUCCESS", "SLEEPING", "REMOVED"),
                "service": {"id": self.service_id, "name": service_name}}


@dataclass(frozen=True)
class ZoneRecord:
    """A record of the public DNS, as the edge declares it in Cloudflare."""

    type: str
    content: str
    proxied: bool = False


@dataclass
class RailwayState:
    services: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    domains: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    """Service domains (`*.up.railway.app`)."""
    custom_domains: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    deployments: dict[str, Deployment] = field(default_factory=dict[str, Deployment])
    operations: list[str] = field(default_factory=list[str])
    dns: dict[tuple[str, str], ZoneRecord] = field(default_factory=dict[tuple[str, str], ZoneRecord])
    """The public DNS: (name, type) -> record."""

    def deployments_of(self, service_id: str) -> list[Deployment]:
        return [d for d in self.deployments.values() if d.service_id == service_id]

    def publish(self, name: str, type_: str, content: str, *, proxied: bool = False) -> None:
        self.dns[(name, type_)] = ZoneRecord(type_, content, proxied)

    def custom_domain_status(self, domain_id: str) -> dict[str, Any]:
        """What Railway answers in `CustomDomain.status`, read against the public DNS now."""
        domain = self.custom_domains[domain_id]
        host: str = domain["domain"]
        cname = self.dns.get((host, "CNAME"))
        txt = self.dns.get((domain["verification_host"], "TXT"))
        routed = cname is not None and cname.content == domain["target"]
        verified = txt is not None and txt.content == f"railway-verify={domain['token']}"
        proxied = cname is not None and cname.proxied
        label, _, zone = host.partition(".")
        return {
            "dnsRecords": [{
                "hostlabel": label, "fqdn": host, "zone": zone, "recordType": "DNS_RECORD_TYPE_CNAME",
                "purpose": "DNS_RECORD_PURPOSE_TRAFFIC_ROUTE", "requiredValue": domain["target"],
                "currentValue": "" if cname is None or proxied else cname.content,
                "status": "DNS_RECORD_STATUS_PROPAGATED" if routed else "DNS_RECORD_STATUS_REQUIRES_UPDATE",
            }],
            "cdnProvider": "DETECTED_CDN_PROVIDER_CLOUDFLARE" if proxied else None,
            "verificationDnsHost": domain["verification_host"],
            "verificationToken": domain["token"],
            "verified": verified,
            "certificateStatus": ("CERTIFICATE_STATUS_TYPE_VALID" if verified and routed
                                  else "CERTIFICATE_STATUS_TYPE_VALIDATING_OWNERSHIP"),
        }


@dataclass
class RailwayConfig:
    registries: dict[str, tuple[str, str]] = field(default_factory=dict[str, tuple[str, str]])
    """Private registries (server -> the one username and password they accept)."""
    deploy_polls: int = 1
    """How many times a deployment reads as DEPLOYING before it ends."""
    verification_prefix: str = "_railway-verify"
    """The label before a custom domain's hostname where Railway asks for its verification TXT."""
    unhealthy_images: set[str] = field(default_factory=set[str])
    """Images whose health check never answers 200: their deployments end FAILED."""


class Resolvers:
    """Root resolvers: graphql-core calls `root.<field>(info, **arguments)`."""

    def __init__(self, state: RailwayState, fail_operations: dict[str, str], config: RailwayConfig) -> None:
        self.state = state
        self.fail_operations = fail_operations
        self.config = config

    def _maybe_fail(self, operation: str) -> None:
        message = self.fail_operations.pop(operation, None)
        if message is not None:
            raise GraphQLError(message)

    def _service(self, service_id: str) -> dict[str, Any]:
        if service_id not in self.state.services:
            raise GraphQLError("Service not found")
        return self.state.services[service_id]

    def _deploy(self, service: dict[str, Any], image: str | None = None) -> Deployment:
        """A deployment of the service as it is now (of `image`, for a redeploy)."""
        image = image or (service["source"] or {}).get("image")
        if not image:
            raise GraphQLError("Service has no source to deploy")
        placement = {region: int(cfg["numReplicas"]) for region, cfg in service["multiRegionConfig"].items()
                     if cfg and cfg.get("numReplicas")}
        command = service["instance"].get("startCommand")
        status, reason = self._pull(image, service["registryCredentials"])
        if status == "SUCCESS" and image in self.config.unhealthy_images:
            status, reason = "FAILED", f"the health check of {image} never answered 200"
        deployment = Deployment(id=str(uuid.uuid4()), service_id=service["id"], image=image,
                                variables=dict(service["variables"]),
                                start_command=shlex.split(command) if command else None,
                                replicas=placement or {DEFAULT_REGION: 1}, status=status, reason=reason,
                                created_at=(EPOCH + dt.timedelta(seconds=len(self.state.deployments))).strftime(
                                    "%Y-%m-%dT%H:%M:%S.000Z"))
        self.state.deployments[deployment.id] = deployment
        return deployment

    def _pull(self, image: str, credentials: dict[str, str] | None) -> tuple[str, str]:
        server = image_server(image)
        account = self.config.registries.get(server)
        if credentials is not None:
            if account is None or (credentials["username"], credentials["password"]) != account:
                return "FAILED", f"{server} refused the registry credentials"
        elif account is not None:
            return "FAILED", f"{image} is private and the service has no registry credentials"
        return "SUCCESS", ""

    def serviceCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("serviceCreate")
        service_id = str(uuid.uuid4())
        service: dict[str, Any] = {
            "id": service_id, "name": input["name"], "projectId": input["projectId"], "deletedAt": None,
            "source": input.get("source"), "instance": {}, "limits": {}, "multiRegionConfig": {},
            "variables": dict(input.get("variables") or {}), "registryCredentials": input.get("registryCredentials"),
        }
        self.state.services[service_id] = service
        if (input.get("source") or {}).get("image"):
            self._deploy(service)
        return service

    def serviceInstanceUpdate(self, _info: Any, serviceId: str, input: dict[str, Any],
                              environmentId: str | None = None) -> bool:
        self._maybe_fail("serviceInstanceUpdate")
        service = self._service(serviceId)
        # Every field sent is kept, the legacy `region` and `numReplicas` included; only
        # `multiRegionConfig` places replicas.
        service["instance"] = {**service["instance"], **input}
        if "source" in input:
            service["source"] = input["source"]
        if input.get("registryCredentials") is not None:
            service["registryCredentials"] = input["registryCredentials"]
        for region, cfg in (input.get("multiRegionConfig") or {}).items():
            if cfg is None:
                service["multiRegionConfig"].pop(region, None)
            else:
                service["multiRegionConfig"][region] = cfg
        return True

    def serviceInstanceLimitsUpdate(self, _info: Any, input: dict[str, Any]) -> bool:
        self._maybe_fail("serviceInstanceLimitsUpdate")
        self._service(input["serviceId"])["limits"] = {"vCPUs": input["vCPUs"], "memoryGB": input["memoryGB"]}
        return True

    def variableCollectionUpsert(self, _info: Any, input: dict[str, Any]) -> bool:
        self._maybe_fail("variableCollectionUpsert")
        service = self._service(input["serviceId"])
        service["variables"] = dict(input["variables"]) if input.get("replace") else {
            **service["variables"], **input["variables"]}
        if not input.get("skipDeploys") and self.state.deployments_of(service["id"]):
            self._deploy(service)
        return True

    def volumeCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("volumeCreate")
        volume_id = str(uuid.uuid4())
        self.state.volumes[volume_id] = {"id": volume_id, "name": f"vol-{volume_id[:6]}", **input}
        return self.state.volumes[volume_id]

    def serviceDomainCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("serviceDomainCreate")
        domain_id = str(uuid.uuid4())
        name = self._service(input["serviceId"])["name"]
        self.state.domains[domain_id] = {"id": domain_id, "domain": f"{name}-production.up.railway.app", **input}
        return self.state.domains[domain_id]

    def serviceDomainDelete(self, _info: Any, id: str) -> bool:
        self._maybe_fail("serviceDomainDelete")
        return self.state.domains.pop(id, None) is not None

    def customDomainCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("customDomainCreate")
        self._service(input["serviceId"])
        host: str = input["domain"]
        if any(d["domain"].lower() == host.lower() for d in self.state.custom_domains.values()):
            raise GraphQLError(f"Domain {host} is not available")
        domain_id = str(uuid.uuid4())
        state = self.state

        def status(_info: Any) -> dict[str, Any]:  # read when asked, against the DNS as it is then
            return state.custom_domain_status(domain_id)

        self.state.custom_domains[domain_id] = {
            "id": domain_id, "domain": host, "serviceId": input["serviceId"],
            "environmentId": input["environmentId"], "projectId": input["projectId"],
            "targetPort": input.get("targetPort"), "syncStatus": "ACTIVE", "deletedAt": None,
            "target": f"{uuid.uuid4().hex[:8]}.up.railway.app", "token": uuid.uuid4().hex,
            "verification_host": f"{self.config.verification_prefix}.{host}",
            "status": status,
        }
        return self.state.custom_domains[domain_id]

    def _custom_domain(self, domain_id: str) -> dict[str, Any]:
        if domain_id not in self.state.custom_domains:
            raise GraphQLError("Custom domain not found")
        return self.state.custom_domains[domain_id]

    def customDomainUpdate(self, _info: Any, environmentId: str, id: str, targetPort: int | None = None) -> bool:
        self._maybe_fail("customDomainUpdate")
        self._custom_domain(id)["targetPort"] = targetPort
        return True

    def customDomainDelete(self, _info: Any, id: str) -> bool:
        self._maybe_fail("customDomainDelete")
        self._custom_domain(id)
        del self.state.custom_domains[id]
        return True

    def customDomain(self, _info: Any, id: str, projectId: str) -> dict[str, Any]:
        return self._custom_domain(id)

    def domains(self, _info: Any, environmentId: str, projectId: str, serviceId: str) -> dict[str, Any]:
        return {
            "customDomains": [d for d in self.state.custom_domains.values()
                              if d["serviceId"] == serviceId and d["environmentId"] == environmentId],
            "serviceDomains": [d for d in self.state.domains.values()
                               if d["serviceId"] == serviceId and d["environmentId"] == environmentId],
        }

    def serviceInstanceDeployV2(self, _info: Any, environmentId: str, serviceId: str,
                                commitSha: str | None = None) -> str:
        self._maybe_fail("serviceInstanceDeployV2")
        return self._deploy(self._service(serviceId)).id

    def serviceInstanceRedeploy(self, _info: Any, environmentId: str, serviceId: str) -> bool:
        self._maybe_fail("serviceInstanceRedeploy")
        service = self._service(serviceId)
        live = [d for d in self.state.deployments_of(serviceId) if d.status == "SUCCESS"]
        if not live:
            raise GraphQLError("No deployment found for service")
        self._deploy(service, image=live[-1].image)
        return True

    def deployment(self, _info: Any, id: str) -> dict[str, Any]:
        deployment = self.state.deployments.get(id)
        if deployment is None:
            raise GraphQLError("Deployment not found")
        deployment.polls += 1
        status = deployment.status if deployment.polls > self.config.deploy_polls else "DEPLOYING"
        return {"id": deployment.id, "status": status}

    def deployments(self, _info: Any, input: dict[str, Any], first: int | None = None, **_: Any) -> dict[str, Any]:
        found = [d for d in self.state.deployments.values() if d.service_id in self.state.services
                 and (not input.get("serviceId") or d.service_id == input["serviceId"])]
        found.sort(key=lambda d: d.created_at, reverse=True)
        return {"edges": [{"cursor": d.id, "node": d.node(self.state.services[d.service_id]["name"])}
                          for d in found[:first]], "pageInfo": {"hasNextPage": False, "hasPreviousPage": False}}

    def deploymentRollback(self, _info: Any, id: str) -> bool:
        self._maybe_fail("deploymentRollback")
        target = self.state.deployments.get(id)
        if target is None:
            raise GraphQLError("Deployment not found")
        service = self._service(target.service_id)
        if not target.node(service["name"])["canRollback"]:
            raise GraphQLError("Deployment cannot be rolled back")
        # The image and the variables of the deployment rolled back to, restored on the service too.
        service["source"] = {"image": target.image}
        service["variables"] = dict(target.variables)
        self._deploy(service)
        return True

    def serviceDelete(self, _info: Any, id: str, environmentId: str | None = None) -> bool:
        self._maybe_fail("serviceDelete")
        self.state.services.pop(id, None)
        for volume_id in [v for v, vol in self.state.volumes.items() if vol.get("serviceId") == id]:
            del self.state.volumes[volume_id]
        for domain_id in [d for d, dom in self.state.domains.items() if dom.get("serviceId") == id]:
            del self.state.domains[domain_id]
        for domain_id in [d for d, dom in self.state.custom_domains.items() if dom["serviceId"] == id]:
            del self.state.custom_domains[domain_id]
        return True

    def service(self, _info: Any, id: str) -> dict[str, Any]:
        return self._service(id)

    def serviceInstance(self, _info: Any, environmentId: str, serviceId: str) -> dict[str, Any]:
        """The instance as its settings stand now (what serviceInstanceUpdate set, or a dashboard edit)."""
        service = self._service(serviceId)
        return {**service["instance"], "serviceId": serviceId, "environmentId": environmentId,
                "source": service["source"], "serviceName": service["name"]}

    def variables(self, _info: Any, environmentId: str, projectId: str, serviceId: str | None = None,
                  unrendered: bool | None = None) -> dict[str, str]:
        return dict(self._service(serviceId)["variables"]) if serviceId else {}


class FakeRailway:
    def __init__(self, token: str) -> None:
        self.token = token
        self.state = RailwayState()
        self.config = RailwayConfig()
        self.http_failures: deque[int] = deque()
        self.fail_operations: dict[str, str] = {}
        self.requests_seen: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql/v2"
        # A short poll interval: shutdown() waits for it, at every test's teardown.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

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
                root = Resolvers(fake.state, fake.fail_operations, fake.config)
                result = graphql_sync(SCHEMA, body["query"], root_value=root,
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
