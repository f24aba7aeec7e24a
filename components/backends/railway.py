"""Railway services through Railway's public GraphQL API, as a Pulumi dynamic provider.

There is no Railway provider on PyPI. Every document sent is in `DOCUMENTS` and validates against
Railway's schema (`tests/test_railway_provider.py`).

Credentials (issue #22 item 1): none is in the stack file or the state. `pulumi preview` decrypts the stack's config
for the pull request's program, so a write credential there reaches code nobody reviewed; the provider instead reads
them from its process environment when it applies, which the deploy job alone sets from its GitHub environment
(`staging`; .github/workflows/deploy.yml). A Pulumi plugin, a dynamic provider included, runs as a child of the CLI
and inherits its environment. Railway has no read-only token (docs/review.md), so previews and the drift job get
none: `check` and `diff` never call Railway, and `read` without a token keeps the state as it is (said in `read`).
- `RAILWAY_TOKEN`: the project token every call sends (`Project-Access-Token`), never a resource input.
- `deploy_variables` (input): service variables whose values the deploy job's environment holds, by name (Locomotive's
  account token, RAILWAY_LOG_DRAIN_TOKEN): set on the service when it is applied, never in the inputs or outputs, and
  left out of what a refresh reads back. A new value reaches Railway on the service's next update.
- `registry_credentials.password_from` (input): the environment variable with the password Railway pulls the
  platform's images with (RAILWAY_REGISTRY_PASSWORD, a read-only registry token): Railway keeps it for every later
  pull, so it is long-lived, and stays out of the state the same way.

A deployment is a snapshot of the service when it is made, so every setting is in place before the
one deployment a create or an update makes (`serviceInstanceDeployV2`), and the provider waits for it:
a deployment that fails fails `pulumi up`. The service is created without a source, because a source
given to `serviceCreate` deploys at once, before the variables, the start command, the placement and
the volume exist (railwayapp/docs#727: "once you create a service and choose a source, Railway will
... deploy it"); terraform-community-providers/terraform-provider-railway creates its services so too.

A public service the edge forwards a hostname to (`ContainerSpec.public_hostname`, `api.<zone>`)
answers for it through a Railway custom domain, since overriding the Host header at Cloudflare is
Enterprise only; it gets no `*.up.railway.app` service domain, which would let anyone skip the edge.
What Railway asks of the zone, and how the domain is verified and served behind Cloudflare's proxy:

- `customDomainCreate` answers the routing record in `status.dnsRecords` (a CNAME of the hostname to
  a `<id>.up.railway.app` target, purpose TRAFFIC_ROUTE) and a verification TXT apart from it, in
  `status.verificationDnsHost` and `status.verificationToken`. "Both are required. Without the `TXT`
  record, the domain remains pending setup and does not verify" (docs.railway.com/integrations/api/
  manage-domains), and until it verifies "requests to your custom domain will return a `404`"
  (docs.railway.com/networking/domains/working-with-domains). The TXT is `railway-verify=<token>` at
  `_railway-verify.<hostname>` (railwayapp/cli src/commands/domain.rs `verification_txt_value`, which
  strips the zone from the host to print it; railwayapp/docs#1155), the fields terraform-community-
  providers/terraform-provider-railway (#70, #72) and alchemy-run/alchemy (src/Railway/CustomDomain.ts)
  expose too.
- The CNAME is proxied (the WAF must see the traffic): Railway documents that setup for Cloudflare
  ("`Proxy status` -> `on`", then "you should see `Cloudflare proxy detected`", working-with-domains),
  and the ownership TXT is read through it (boardsesh/boardsesh#5054: "domains verify proxied"). A
  TXT record cannot be proxied: it is DNS-only.
- The certificate: Railway issues a Let's Encrypt certificate once the domain verifies. For a hostname
  that is not a wildcard no `_acme-challenge` record is asked for (only wildcards get one, DNS-only,
  working-with-domains "Wildcard domains"); the challenge reaches the origin through the proxy (the
  "toggle trick" of docs.railway.com/networking/troubleshooting/ssl takes Cloudflare out of "the
  validation path"), so the edge must let `/.well-known/acme-challenge/` through over HTTP, as its
  HTTPS redirect does (components/edge.py HTTPS_REDIRECT). Until then, and during renewals, Railway
  may serve its `*.up.railway.app` certificate: "For proxied domains (Cloudflare orange cloud), we may
  not always be able to issue a certificate for the domain, but Cloudflare to Railway traffic will be
  encrypted with TLS using the default Railway `*.up.railway.app` certificate". Hence Railway's
  instruction: SSL/TLS mode **Full**, "Full (Strict) **will not work as intended**" (working-with-
  domains "Cloudflare configuration"; troubleshooting/ssl, "Error 526": "Do not use **Full (Strict)**
  mode with Railway").
- The provider cannot wait for verification: the zone's records are made from its outputs, after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi.dynamic as dynamic

from components.backends.service import ContainerSpec, DnsEntry, Endpoint
from components.images import Registry

API_URL = "https://backboard.railway.com/graphql/v2"
TOKEN_ENV = "RAILWAY_TOKEN"
"""The project token's variable in the deploy job's environment (the `staging` GitHub environment's secret)."""
REGISTRY_PASSWORD_ENV = "RAILWAY_REGISTRY_PASSWORD"
"""The password Railway pulls the platform's private images with (a read-only registry token), likewise."""
LOG_DRAIN_TOKEN_ENV = "RAILWAY_LOG_DRAIN_TOKEN"
"""Locomotive's Railway account token (components/observability/cloud.py `log_drain_spec`), likewise."""
DEPLOY_ENVIRONMENT = "staging"
"""The GitHub environment whose secrets hold them: the only stack on Railway."""

_CUSTOM_DOMAIN_FIELDS = """
fragment RailwayCustomDomain on CustomDomain {
  id
  domain
  targetPort
  status {
    dnsRecords { fqdn zone recordType purpose requiredValue }
    verificationDnsHost
    verificationToken
  }
}"""

DOCUMENTS: dict[str, str] = {
    "serviceCreate": """
mutation serviceCreate($input: ServiceCreateInput!) {
  serviceCreate(input: $input) { id name }
}""",
    "serviceInstanceUpdate": """
mutation serviceInstanceUpdate($serviceId: String!, $environmentId: String, $input: ServiceInstanceUpdateInput!) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)
}""",
    "serviceInstanceLimitsUpdate": """
mutation serviceInstanceLimitsUpdate($input: ServiceInstanceLimitsUpdateInput!) {
  serviceInstanceLimitsUpdate(input: $input)
}""",
    "variableCollectionUpsert": """
mutation variableCollectionUpsert($input: VariableCollectionUpsertInput!) {
  variableCollectionUpsert(input: $input)
}""",
    "volumeCreate": """
mutation volumeCreate($input: VolumeCreateInput!) {
  volumeCreate(input: $input) { id name }
}""",
    "serviceDomainCreate": """
mutation serviceDomainCreate($input: ServiceDomainCreateInput!) {
  serviceDomainCreate(input: $input) { id domain }
}""",
    "serviceDomainDelete": """
mutation serviceDomainDelete($id: String!) {
  serviceDomainDelete(id: $id)
}""",
    # The fields terraform-community-providers/terraform-provider-railway reads
    # (internal/provider/resource_custom_domain.graphql) and docs.railway.com/integrations/api/manage-domains.
    "customDomainCreate": """
mutation customDomainCreate($input: CustomDomainCreateInput!) {
  customDomainCreate(input: $input) { ...RailwayCustomDomain }
}""" + _CUSTOM_DOMAIN_FIELDS,
    "customDomainUpdate": """
mutation customDomainUpdate($environmentId: String!, $id: String!, $targetPort: Int) {
  customDomainUpdate(environmentId: $environmentId, id: $id, targetPort: $targetPort)
}""",
    "customDomainDelete": """
mutation customDomainDelete($id: String!) {
  customDomainDelete(id: $id)
}""",
    "domains": """
query domains($environmentId: String!, $projectId: String!, $serviceId: String!) {
  domains(environmentId: $environmentId, projectId: $projectId, serviceId: $serviceId) {
    customDomains { ...RailwayCustomDomain }
  }
}""" + _CUSTOM_DOMAIN_FIELDS,
    # Not `serviceInstanceRedeploy`: it re-runs the image of the live deployment whatever source was set
    # since (Crossbill-App/crossbill-web#497). This one deploys the service as it is now, as the
    # Railway CLI does (railwayapp crate, src/gql/mutations/strings/ServiceInstanceDeploy.graphql).
    "serviceInstanceDeployV2": """
mutation serviceInstanceDeployV2($environmentId: String!, $serviceId: String!) {
  serviceInstanceDeployV2(environmentId: $environmentId, serviceId: $serviceId)
}""",
    "deployment": """
query deployment($id: String!) {
  deployment(id: $id) { id status }
}""",
    # Staging's rollout (infra/ops/rollout.py): the engine's deployments, and a rollback to an earlier one.
    # Railway does not promise an order; the rollout sorts them by createdAt.
    "deployments": """
query deployments($input: DeploymentListInput!, $first: Int) {
  deployments(input: $input, first: $first) {
    edges { node { id status createdAt canRollback serviceId service { name } } }
  }
}""",
    # "You can only rollback to deployments that have `canRollback: true`"; it restores "both the Docker
    # image and custom variables" (docs.railway.com/integrations/api/manage-deployments,
    # docs.railway.com/deployments/deployment-actions). The schema's answer is a Boolean.
    "deploymentRollback": """
mutation deploymentRollback($id: String!) {
  deploymentRollback(id: $id)
}""",
    "serviceDelete": """
mutation serviceDelete($id: String!, $environmentId: String) {
  serviceDelete(id: $id, environmentId: $environmentId)
}""",
    "service": """
query service($id: String!) {
  service(id: $id) { id name projectId deletedAt }
}""",
    # What a refresh reads back (read): the instance's settings and the service's variables, unrendered (a
    # `${{ ... }}` reference is compared as written, not as resolved).
    "serviceInstance": """
query serviceInstance($environmentId: String!, $serviceId: String!) {
  serviceInstance(environmentId: $environmentId, serviceId: $serviceId) {
    source { image }
    startCommand
    healthcheckPath
  }
}""",
    "variables": """
query variables($environmentId: String!, $projectId: String!, $serviceId: String) {
  variables(environmentId: $environmentId, projectId: $projectId, serviceId: $serviceId, unrendered: true)
}""",
}

# Inputs whose change needs a new service rather than an update.
REPLACE_ON = ("project_id", "environment_id", "name", "volume_mount_path")
# What the provider adds to the inputs in its outputs; the rest of the outputs are the inputs.
OUTPUT_ONLY = ("service_id", "volume_id", "domain_id", "domain", "custom_domain_id", "custom_domain_target",
               "custom_domain_verification", "deployment_id", "private_hostname")
# Variables Railway sets on every service itself (docs.railway.com/reference/variables#railway-provided-variables).
RAILWAY_PROVIDED_PREFIX = "RAILWAY_"
# The outputs that describe the custom domain, None without one.
CUSTOM_DOMAIN_OUTPUTS = ("custom_domain_id", "custom_domain_target", "custom_domain_verification")
# Deployment statuses (the schema's DeploymentStatus) that end the wait.
DEPLOYED = ("SUCCESS", "SLEEPING")
NOT_DEPLOYED = ("FAILED", "CRASHED", "REMOVED", "SKIPPED")


class RailwayError(Exception):
    """A Railway API failure, worded for the person running `pulumi up`. Never carries the token."""


class RailwayNotFound(RailwayError):
    """Railway answered that the object does not exist ("Service not found": the message
    terraform-community-providers/terraform-provider-railway#93 treats as deleted)."""


class RailwayClient:
    def __init__(self, token: str, url: str = API_URL, *, attempts: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 30.0) -> None:
        self._token = token
        self._url = url
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s

    def execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": DOCUMENTS[operation], "operationName": operation,
                           "variables": variables}).encode()
        request = urllib.request.Request(self._url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            # A project token: scoped to one project and environment (least privilege, S3).
            "Project-Access-Token": self._token,
        })
        for attempt in range(1, self._attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                    payload: dict[str, Any] = json.loads(response.read())
            except urllib.error.HTTPError as err:
                retryable = err.code == 429 or err.code >= 500
                if retryable and attempt < self._attempts:
                    delay = float(err.headers.get("Retry-After") or self._backoff_s * 2 ** (attempt - 1))
                    time.sleep(min(delay, 30.0))
                    continue
                raise RailwayError(self._http_message(operation, err.code, attempt)) from None
            except (urllib.error.URLError, TimeoutError) as err:
                if attempt < self._attempts:
                    time.sleep(self._backoff_s * 2 ** (attempt - 1))
                    continue
                raise RailwayError(f"Railway {operation}: cannot reach {self._url}: {err}") from None
            errors = payload.get("errors")
            if errors:
                messages = [str(e.get("message", e)) for e in errors]
                error = RailwayNotFound if all(re.search(r"\bnot found\b", m, re.I) for m in messages) else RailwayError
                raise error(f"Railway {operation} failed: {'; '.join(messages)}".replace(self._token, "[token]"))
            return payload.get("data") or {}
        raise AssertionError("unreachable")

    @staticmethod
    def _http_message(operation: str, status: int, attempts: int) -> str:
        if status in (401, 403):
            return (f"Railway {operation}: HTTP {status}: the token was refused; set {TOKEN_ENV} to a project token "
                    f"of this project and environment (the `{DEPLOY_ENVIRONMENT}` GitHub environment's secret "
                    f"{TOKEN_ENV}, docs/first-deploy.md)")
        if status == 429:
            return f"Railway {operation}: HTTP 429: rate limited, gave up after {attempts} attempts; retry later"
        return f"Railway {operation}: HTTP {status} after {attempts} attempts"


class RailwayServiceProvider(dynamic.ResourceProvider):
    """Create, read, update and delete one Railway service with its instance settings, limits,
    variables, optional volume and optional public domain, and deploy it."""

    def __init__(self, url: str = API_URL, backoff_s: float = 1.0, poll_s: float = 5.0,
                 deploy_timeout_s: float = 900.0, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._url = url
        self._backoff_s = backoff_s
        self._poll_s = poll_s
        # Railway's healthcheck alone may take 300 s (docs.railway.com/deployments/healthchecks).
        self._deploy_timeout_s = deploy_timeout_s
        # None: the process environment, read at call time. The provider is pickled into every resource's
        # `__provider` input, so it never holds the environment (or a token) when it is constructed.
        self._environ = environ
        self._client: RailwayClient | None = None

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        """The stack's config holds no Railway credential (infra/config.py refuses platform:railwayToken)."""
        del req

    def _env(self, name: str) -> str:
        return (self._environ if self._environ is not None else os.environ).get(name, "")

    @property
    def has_token(self) -> bool:
        return bool(self._env(TOKEN_ENV))

    @property
    def client(self) -> RailwayClient:
        if self._client is None:
            token = self._env(TOKEN_ENV)
            if not token:
                raise RailwayError(f"no Railway token: the provider reads {TOKEN_ENV} from the deploy job's "
                                   f"environment (the `{DEPLOY_ENVIRONMENT}` GitHub environment's secret {TOKEN_ENV}, "
                                   "docs/first-deploy.md); a preview needs none, `pulumi up` does")
            self._client = RailwayClient(token, self._url, backoff_s=self._backoff_s)
        return self._client

    def _from_deploy(self, service: str, variable: str, source: str) -> str:
        value = self._env(source)
        if not value:
            raise RailwayError(f"Railway service {service}: {variable} comes from {source} in the deploy job's "
                               f"environment, which is not set; set the `{DEPLOY_ENVIRONMENT}` GitHub environment's "
                               f"secret {source} (docs/first-deploy.md)")
        return value

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        failures: list[dynamic.CheckFailure] = []
        replicas = news.get("num_replicas", 1)
        if not isinstance(replicas, int | float) or replicas < 1:
            failures.append(dynamic.CheckFailure("num_replicas", f"{replicas!r}: expected a whole number >= 1"))
        elif news.get("volume_mount_path") and replicas != 1:
            failures.append(dynamic.CheckFailure(
                "num_replicas", f"{replicas}: Railway runs a service with a volume as exactly one replica"))
        if news.get("custom_domain") and not news.get("public_port"):
            failures.append(dynamic.CheckFailure(
                "custom_domain", f"{news['custom_domain']}: only a public service (public_port) answers for it"))
        return dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        keys = sorted(k for k in set(olds) | set(news)
                      if not k.startswith("__") and k in news and olds.get(k) != news.get(k))
        replaces = [k for k in keys if k in REPLACE_ON]
        if not keys:
            return dynamic.DiffResult(changes=False)
        # Only inputs differ (the provider's own code, `__provider`, is the same): answer DIFF_UNKNOWN, so the
        # engine diffs the inputs itself and names each one that changed (pkg/resource/deploy/step_generator.go
        # diffResource), in a preview and in a refresh alike; the replacement keys still apply. Were the code to
        # differ too, the engine would name `__provider` on every service: say plainly that there are changes.
        same_code = all(olds.get(k) == news.get(k) for k in set(olds) | set(news) if k.startswith("__"))
        return dynamic.DiffResult(changes=None if same_code else True, replaces=replaces,
                                  delete_before_replace=bool(replaces))

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        # No source: a source here would deploy before anything else is set (module docstring).
        created = self.client.execute("serviceCreate", {"input": {
            "projectId": props["project_id"], "environmentId": props["environment_id"], "name": props["name"],
        }})
        service_id: str = created["serviceCreate"]["id"]
        made: dict[str, str] = {}
        try:
            outs = self._apply(service_id, {}, props, made)
        except RailwayError:
            # Create is transactional: a half-made service would be invisible to Pulumi. Its custom
            # domain goes first, by itself: a hostname still held would refuse the next attempt.
            try:
                if "custom_domain_id" in made:
                    self._delete_custom_domain(made["custom_domain_id"])
            finally:
                self.client.execute("serviceDelete", {"id": service_id, "environmentId": props["environment_id"]})
            raise
        return dynamic.CreateResult(service_id, outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """What Railway has now, so `pulumi refresh` sees drift (pulumi/pulumi pkg/resource/deploy/step.go
        RefreshStep.Apply: Read's inputs become the ones diffed against the state's). Read back: the name, the
        image, the start command, the health check path and the variables (Railway's own RAILWAY_* ones left
        out); the rest (limits, placement, volume, domains) is kept as the state has it. The variables stay secret:
        the engine marks what Read returns secret where the state had it so (pkg/resource/plugin/provider_plugin.go
        `Read`: `annotateSecrets(newInputs, req.Inputs)`, `annotateSecrets(newState, req.State)`).

        Without a token (a refresh by the drift job or a preview: Railway has no read-only token, so they get none) it
        reads nothing and answers the state as it is: Railway's services are outside drift detection, never reported
        gone. Variables set from the deploy job's environment (`deploy_variables`) are never read back: a refresh would
        put their values in the state."""
        if not self.has_token:
            return dynamic.ReadResult(id_, props, inputs={k: v for k, v in props.items() if k not in OUTPUT_ONLY})
        try:
            found = self.client.execute("service", {"id": id_}).get("service")
        except RailwayNotFound:
            found = None
        if not found or found.get("deletedAt"):
            # Gone from Railway: an empty id tells `pulumi refresh` to drop it from the state.
            return dynamic.ReadResult("", {})
        env = props["environment_id"]
        instance = self.client.execute("serviceInstance", {"environmentId": env, "serviceId": id_})["serviceInstance"]
        variables: dict[str, Any] = self.client.execute("variables", {
            "environmentId": env, "projectId": props["project_id"], "serviceId": id_})["variables"] or {}
        declared = cast(dict[str, Any], props.get("variables") or {})
        from_deploy = set(cast(dict[str, Any], props.get("deploy_variables") or {}))
        source = cast(dict[str, Any], instance.get("source") or {})
        live: dict[str, Any] = {
            "name": found["name"],
            "image": source.get("image"),
            "start_command": instance.get("startCommand"),
            "healthcheck_path": instance.get("healthcheckPath"),
            "variables": {k: v for k, v in variables.items() if k not in from_deploy
                          and (not k.startswith(RAILWAY_PROVIDED_PREFIX) or k in declared)}}
        # A setting the program leaves unset (None) and Railway reports empty is not drift.
        live = {k: v for k, v in live.items() if v is not None or props.get(k) is not None}
        outs: dict[str, Any] = {**props, **live}
        return dynamic.ReadResult(id_, outs, inputs={k: v for k, v in outs.items() if k not in OUTPUT_ONLY})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._apply(id_, olds, news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if props.get("custom_domain_id"):
            self._delete_custom_domain(props["custom_domain_id"])
        self.client.execute("serviceDelete", {"id": id_, "environmentId": props["environment_id"]})

    def _apply(self, service_id: str, olds: dict[str, Any], news: dict[str, Any],
               made: dict[str, str] | None = None) -> dict[str, Any]:
        """Bring the service to `news`, then deploy it once. Returns the outputs kept in the state.
        What it creates that must be undone by itself is noted in `made`."""
        env = news["environment_id"]
        from_deploy = {name: self._from_deploy(news["name"], name, str(source))
                       for name, source in sorted(cast(dict[str, Any], news.get("deploy_variables") or {}).items())}
        credentials = news.get("registry_credentials")
        pull: dict[str, str] | None = None
        if credentials:
            source = str(credentials["password_from"])
            pull = {"username": credentials["username"],
                    "password": self._from_deploy(news["name"], "its registry password", source)}
        self.client.execute("serviceInstanceLimitsUpdate", {"input": {
            "serviceId": service_id, "environmentId": env,
            "vCPUs": float(news["vcpus"]), "memoryGB": float(news["memory_gb"]),
        }})
        self.client.execute("variableCollectionUpsert", {"input": {
            "projectId": news["project_id"], "environmentId": env, "serviceId": service_id,
            "variables": {**(news.get("variables") or {}), **from_deploy}, "replace": True, "skipDeploys": True,
        }})
        volume_id = olds.get("volume_id")
        if news.get("volume_mount_path") and not volume_id:
            volume = self.client.execute("volumeCreate", {"input": {
                "projectId": news["project_id"], "environmentId": env, "serviceId": service_id,
                "mountPath": news["volume_mount_path"], "region": news["region"],
            }})
            volume_id = volume["volumeCreate"]["id"]
        custom = self._custom_domain(service_id, olds, news, made if made is not None else {})
        # A service that answers for its own hostname has no *.up.railway.app domain: the edge is its way in.
        domain_id, domain = olds.get("domain_id"), olds.get("domain")
        service_domain = bool(news.get("public_port")) and not news.get("custom_domain")
        if service_domain and not domain_id:
            created = self.client.execute("serviceDomainCreate", {"input": {
                "serviceId": service_id, "environmentId": env, "targetPort": int(news["public_port"]),
            }})
            domain_id, domain = created["serviceDomainCreate"]["id"], created["serviceDomainCreate"]["domain"]
        elif not service_domain and domain_id:
            self.client.execute("serviceDomainDelete", {"id": domain_id})
            domain_id = domain = None
        instance: dict[str, Any] = {
            "source": {"image": news["image"]},
            "multiRegionConfig": placement(olds.get("region"), news["region"], int(news["num_replicas"])),
            "startCommand": news.get("start_command"),
            "healthcheckPath": news.get("healthcheck_path"),
            "restartPolicyType": "ON_FAILURE",
            "restartPolicyMaxRetries": 10,
        }
        if pull is not None:
            instance["registryCredentials"] = pull
        self.client.execute("serviceInstanceUpdate", {"serviceId": service_id, "environmentId": env,
                                                      "input": instance})
        deployed = self.client.execute("serviceInstanceDeployV2", {"environmentId": env, "serviceId": service_id})
        deployment_id: str = deployed["serviceInstanceDeployV2"]
        self._wait_for(deployment_id, news)
        return {**news, "service_id": service_id, "volume_id": volume_id, "domain_id": domain_id, "domain": domain,
                **custom, "deployment_id": deployment_id, "private_hostname": f"{news['name']}.railway.internal"}

    def _custom_domain(self, service_id: str, olds: dict[str, Any], news: dict[str, Any],
                       made: dict[str, str]) -> dict[str, Any]:
        """The service's custom domain as `news` has it: kept while its hostname is, its port moved in
        place, deleted when the hostname changes or goes. Returns its outputs (CUSTOM_DOMAIN_OUTPUTS)."""
        host: str | None = news.get("custom_domain") if news.get("public_port") else None
        old_id: str | None = olds.get("custom_domain_id")
        if old_id and olds.get("custom_domain") != host:
            self._delete_custom_domain(old_id)
            old_id = None
        if not host:
            return dict.fromkeys(CUSTOM_DOMAIN_OUTPUTS)
        port = int(news["public_port"])
        if old_id:
            # Sent on every update, not only when public_port changed: a domain drifted to another port (the
            # dashboard, or PORT, which is the engine's private listener on Railway) is put back on the public one.
            self._move_custom_domain(news["environment_id"], old_id, port)
            return {key: olds.get(key) for key in CUSTOM_DOMAIN_OUTPUTS}
        # An update that failed after making it left it on the service, out of the state: adopt it.
        found = self._find_custom_domain(service_id, news, host) if olds else None
        if found is None:
            found = self.client.execute("customDomainCreate", {"input": {
                "projectId": news["project_id"], "environmentId": news["environment_id"], "serviceId": service_id,
                "domain": host, "targetPort": port,
            }})["customDomainCreate"]
            made["custom_domain_id"] = found["id"]
        else:
            self._move_custom_domain(news["environment_id"], found["id"], port)
        return custom_domain_outputs(host, found)

    def _find_custom_domain(self, service_id: str, news: dict[str, Any], host: str) -> dict[str, Any] | None:
        listed = self.client.execute("domains", {"environmentId": news["environment_id"],
                                                 "projectId": news["project_id"], "serviceId": service_id})
        return next((d for d in listed["domains"]["customDomains"] if d["domain"].lower() == host.lower()), None)

    def _move_custom_domain(self, environment_id: str, domain_id: str, port: int) -> None:
        self.client.execute("customDomainUpdate", {"environmentId": environment_id, "id": domain_id,
                                                   "targetPort": port})

    def _delete_custom_domain(self, domain_id: str) -> None:
        with contextlib.suppress(RailwayNotFound):  # already gone (an earlier attempt, or the dashboard)
            self.client.execute("customDomainDelete", {"id": domain_id})

    def _wait_for(self, deployment_id: str, news: dict[str, Any]) -> None:
        """Until the deployment runs; a deployment that does not is an error naming what it ran."""
        deadline = time.monotonic() + self._deploy_timeout_s
        while True:
            status = self.client.execute("deployment", {"id": deployment_id})["deployment"]["status"]
            if status in DEPLOYED:
                return
            if status in NOT_DEPLOYED:
                raise RailwayError(f"Railway deployment {deployment_id} of {news['name']} ({news['image']}) ended "
                                   f"{status}: its build and deploy logs are on the deployment in Railway")
            if time.monotonic() >= deadline:
                raise RailwayError(f"Railway deployment {deployment_id} of {news['name']} ({news['image']}) is still "
                                   f"{status} after {self._deploy_timeout_s:.0f} s")
            time.sleep(self._poll_s)


def placement(old_region: str | None, region: str, replicas: int) -> dict[str, Any]:
    """`multiRegionConfig`: the replicas in `region`, and none left where they were.

    Railway places replicas by this map alone: `region` and `numReplicas` on `serviceInstanceUpdate`
    are legacy fields it ignores (alchemy-run/alchemy#1748; terraform-community-providers/
    terraform-provider-railway#35 and #79). A region set to null is removed from the map
    (alchemy-run/alchemy packages/alchemy/src/Railway/ServiceRegion.ts).
    """
    config: dict[str, Any] = {region: {"numReplicas": replicas}}
    if old_region and old_region != region:
        config[old_region] = None
    return config


def verification_host(hostname: str) -> str:
    """Where Railway asks for a custom domain's verification TXT (module docstring)."""
    return f"_railway-verify.{hostname}".lower()


def verification_value(token: str) -> str:
    """The verification TXT's content: the token after one `railway-verify=` (Railway's CLI strips any
    it already carries: railwayapp/cli src/commands/domain.rs `verification_txt_value`)."""
    while token.startswith("railway-verify="):
        token = token.removeprefix("railway-verify=")
    return f"railway-verify={token}"


def custom_domain_outputs(host: str, domain: dict[str, Any]) -> dict[str, Any]:
    """The outputs the zone's records are made from, out of Railway's answer for the custom domain."""
    status = domain["status"]
    routes = [r for r in status["dnsRecords"]
              if r["purpose"] == "DNS_RECORD_PURPOSE_TRAFFIC_ROUTE" and r["recordType"] == "DNS_RECORD_TYPE_CNAME"]
    if len(routes) != 1:
        raise RailwayError(f"Railway custom domain {host}: expected one CNAME routing it in status.dnsRecords, "
                           f"got {[(r['recordType'], r['purpose']) for r in status['dnsRecords']]}")
    dns_host, token = status.get("verificationDnsHost"), status.get("verificationToken")
    if not dns_host or not token:
        raise RailwayError(f"Railway custom domain {host}: its answer has no verification TXT "
                           "(status.verificationDnsHost, status.verificationToken); without it the domain answers 404")
    # A host or, as the Railway CLI prints it, a label under the zone.
    zone = str(routes[0]["zone"] or "").rstrip(".")
    dns_host = dns_host.rstrip(".").lower()
    if zone and dns_host != zone and not dns_host.endswith(f".{zone}"):
        dns_host = f"{dns_host}.{zone}"
    if dns_host != verification_host(host):
        raise RailwayError(f"Railway asks for the verification TXT of {host} at {dns_host}; the edge declares it at "
                           f"{verification_host(host)} (components/backends/railway.py, verification_host)")
    return {"custom_domain_id": domain["id"], "custom_domain_target": str(routes[0]["requiredValue"]).rstrip("."),
            "custom_domain_verification": verification_value(token)}


def custom_domain_dns(hostname: str, target: pulumi.Input[str], verification: pulumi.Input[str]) -> list[DnsEntry]:
    """The records the zone needs for a custom domain: the hostname proxied to Railway's target (the
    WAF sees every request), and the verification TXT, which is DNS-only (module docstring)."""
    label = hostname.split(".")[0]
    return [DnsEntry(label, hostname, "CNAME", target, proxied=True),
            DnsEntry(f"{label}-verification", verification_host(hostname), "TXT", verification, proxied=False)]


def start_command(argv: Sequence[str]) -> str:
    """A container command as Railway's start command. Railway runs it in exec form in place of the
    image's ENTRYPOINT, splitting words as a shell does but expanding nothing
    (docs.railway.com/deployments/start-command), so each word is quoted and nothing else: a word
    with a single quote in it is double-quoted, escaping only `"` and `\\`."""
    words: list[str] = []
    for word in argv:
        if "'" not in word:
            words.append(shlex.quote(word))
        else:
            words.append('"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return " ".join(words)


def image_server(image: str) -> str:
    """The registry an image reference names: its first part when that looks like a host, else Docker Hub."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


class RailwayService(dynamic.Resource, module="railway", name="Service"):
    """A Railway service. Type token `pulumi-python:dynamic/railway:Service`."""

    service_id: pulumi.Output[str]
    domain: pulumi.Output[str | None]
    custom_domain_id: pulumi.Output[str | None]
    custom_domain_target: pulumi.Output[str]
    """The CNAME target Railway gave the custom domain (read only for a service with one)."""
    custom_domain_verification: pulumi.Output[str]
    """The content of its verification TXT, `railway-verify=<token>` (likewise)."""
    private_hostname: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, pulumi.Input[Any]],
                 opts: pulumi.ResourceOptions | None = None, provider: RailwayServiceProvider | None = None) -> None:
        super().__init__(provider or RailwayServiceProvider(), name,
                         {**props, "service_id": None, "volume_id": None, "domain_id": None, "domain": None,
                          **dict.fromkeys(CUSTOM_DOMAIN_OUTPUTS), "deployment_id": None, "private_hostname": None},
                         opts)


# ---------------------------------------------------------------------------------------------
# The backend: a ContainerSpec as a Railway service


@dataclass(frozen=True)
class RailwayTarget:
    project_id: str
    environment_id: str
    region: str
    registry: Registry | None = None
    """The private registry the platform's images are pushed to: Railway pulls them with its
    credentials (docs.railway.com/builds/private-registries; a Pro plan feature)."""


def registry_credentials(image: pulumi.Input[str], registry: Registry | None) -> pulumi.Output[Any] | None:
    """The registry's username and where the provider finds the password Railway pulls with (REGISTRY_PASSWORD_ENV,
    from the deploy job's environment), for an image on its server; None for any other image (credentials a registry
    does not know fail the pull). Railway keeps them for every later pull: a read-only registry token, never the
    deploy's push credential, which is short-lived (the deploy job's `docker login`)."""
    if registry is None or (isinstance(image, str) and image_server(image) != registry.server):
        return None
    return pulumi.Output.from_input(image).apply(
        lambda name: {"username": registry.username, "password_from": REGISTRY_PASSWORD_ENV}
        if image_server(name) == registry.server else None)


def deploy(name: str, spec: ContainerSpec, target: RailwayTarget, parent: pulumi.Resource) -> Endpoint:
    # Railway's healthcheck asks the PORT variable's port, its domain the target port (`public_port`)
    # (https://docs.railway.com/reference/healthchecks, "Configure the healthcheck port"): a service with a
    # private listener is checked there, which the domain never forwards to.
    variables: dict[str, pulumi.Input[str]] = {**spec.env, **spec.secret_env,
                                               "PORT": str(spec.internal_port or spec.port)}
    hostname = spec.public_hostname if spec.size.public else None
    service = RailwayService(
        name,
        {
            "project_id": target.project_id,
            "environment_id": target.environment_id,
            "name": spec.name,
            "image": spec.image,
            "region": target.region,
            # Railway has no autoscaling: the replica count is fixed (validated min == max).
            "num_replicas": spec.size.max_instances,
            # Railway bills usage under these caps, so the cap is the peak size (C2, C3).
            "vcpus": spec.size.peak_cpu_millis / 1000,
            "memory_gb": spec.size.peak_memory_mib / 1024,
            "healthcheck_path": spec.ready_path or spec.health_path,
            "start_command": start_command(spec.command) if spec.command else None,
            "variables": pulumi.Output.secret(pulumi.Output.all(**variables)),
            # Names of environment variables, not values: the provider reads them when it applies.
            "deploy_variables": dict(spec.deploy_env),
            "registry_credentials": registry_credentials(spec.image, target.registry),
            "volume_mount_path": spec.volume_path,
            "public_port": spec.port if spec.size.public else None,
            # The hostname the edge forwards: a custom domain instead of a *.up.railway.app one.
            "custom_domain": hostname,
        },
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["variables"]),
    )
    # Derived from the service's URN, not a plain string: a client given this URL (the engine given PocketBase's
    # and Redis's) then depends on this service, so Pulumi creates it only after this service's `create`
    # returned, which is once its deployment runs (`_wait_for`). A plain string let all three start together,
    # and the engine's wait for its dependencies could expire first (#20 item 14). The URN, unlike the
    # service id, is known at preview, so the client's variables stay known (and diffable) in a preview.
    private = service.urn.apply(lambda _urn: f"http://{spec.name}.railway.internal:{spec.port}")
    if hostname is None:
        public = service.domain.apply(lambda d: f"https://{d}") if spec.size.public else None
        return Endpoint(private_url=private, public_url=public, resources=[service])
    return Endpoint(private_url=private, public_url=service.custom_domain_id.apply(lambda _: f"https://{hostname}"),
                    dns=custom_domain_dns(hostname, service.custom_domain_target, service.custom_domain_verification),
                    resources=[service])
