"""The offline plan: run the program under Pulumi's mock engine and record what it would declare.

Pulumi has no offline `preview` (pulumi/pulumi#12289). This runs the real program against
`pulumi.runtime.MockMonitor`, so every resource is registered exactly as the engine would see it,
with its inputs; secrets arrive still marked secret and are masked, never printed.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pulumi
import pulumi.runtime
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_in_stack

from infra import program
from infra.analyzer import AnalyzerInput
from infra.config import RawConfig, load_model
from infra.model import StackModel
from stacks import contracts

PROJECT = "platform"
SECRET = "[secret]"
UNKNOWN = "[unknown]"
PLAN_FORMAT = 1

CLOUDFLARE_IPV4 = ("173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18",
                   "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17",
                   "162.158.0.0/15", "104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22")
CLOUDFLARE_IPV6 = ("2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32",
                   "2a06:98c0::/29", "2c0f:f248::/32")

# Pulumi's wire format: a secret is {SIG_KEY: SECRET_SIG, "value": ...}; unknowns are this string.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@dataclass(frozen=True)
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    """Secrets masked: what `plan` prints and diffs."""
    wire_inputs: dict[str, Any] = field(default_factory=dict[str, Any], repr=False, compare=False)
    """As the engine hands them to a policy pack: secrets marked (holding plan-time stand-ins)."""
    dependencies: frozenset[str] = field(default=frozenset[str](), repr=False, compare=False)
    """URNs the engine creates before this resource: `depends_on` and every input's resource."""
    provider: str | None = field(default=None, repr=False, compare=False)
    """`<provider URN>::<id>` of an explicit provider; None: the default one, configured by the stack."""


@dataclass(frozen=True)
class Plan:
    stack: str
    config_file: str
    resources: tuple[PlannedResource, ...]
    outputs: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "project": PROJECT,
            "stack": self.stack,
            "configFile": self.config_file,
            "resources": [
                {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "custom": r.custom,
                 "inputs": r.inputs}
                for r in sorted(self.resources, key=lambda r: r.urn)
            ],
            "outputs": self.outputs,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    default_providers: tuple[PlannedResource, ...] = ()
    """The providers the engine registers by itself, one per package a resource without an explicit provider uses
    (`default_providers`); the pack judges them as it judges the rest."""

    def analyzer_inputs(self) -> list[AnalyzerInput]:
        """The custom resources as the engine would hand them to a policy pack, its default providers included."""
        return [AnalyzerInput(r.urn, r.type, r.name, r.wire_inputs, r.parent)
                for r in (*self.default_providers, *self.resources) if r.custom]

    def count_by_type(self) -> Counter[str]:
        return Counter(r.type for r in self.resources if r.custom)


def mask(value: Any) -> Any:
    """Secrets become `[secret:<digest>]`, unknowns `[unknown]`; the rest is kept, as plain JSON.

    The digest lets a diff see that a secret changed. It never covers a real secret: a plan cannot
    decrypt `secure:` config (that arrives as a placeholder) and generated secrets are mock values.
    """
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:  # pyright: ignore[reportUnknownMemberType]
            inner = json.dumps(mask(value.get("value")), sort_keys=True)  # pyright: ignore[reportUnknownMemberType]
            return f"{SECRET[:-1]}:{hashlib.sha256(inner.encode()).hexdigest()[:8]}]"
        return {str(k): mask(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if value == _UNKNOWN_VALUE or isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has only doubles; the provider schemas say integer
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def wire(value: Any) -> Any:
    """JSON-able wire form: secrets stay {sig: secret, value}, unknowns become the engine's sentinel."""
    if isinstance(value, dict):
        return {str(k): wire(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list | tuple):
        return [wire(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, Unknown):
        return _UNKNOWN_VALUE
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _fake(name: str, *, length: int = 32) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


TLS_CERT_PLACEHOLDER = "-----BEGIN CERTIFICATE-----\nPLAN-SELF-SIGNED-CERTIFICATE\n-----END CERTIFICATE-----\n"
TLS_KEY_PLACEHOLDER = "-----BEGIN PRIVATE KEY-----\nPLAN-PRIVATE-KEY\n-----END PRIVATE KEY-----\n"
"""What the `tls` provider computes at create (`tls:PrivateKey.privateKeyPem`, `tls:SelfSignedCert.certPem`), as
PEM-shaped stand-ins: the VM's user-data, which carries them, is then known to the plan (the boot emulation
replaces them with a real pair)."""


GLOBAL_COLLECTIONS = {"gcp:compute/securityPolicy:SecurityPolicy": "securityPolicies",
                      "gcp:compute/targetHttpsProxy:TargetHttpsProxy": "targetHttpsProxies",
                      "gcp:compute/targetHttpProxy:TargetHttpProxy": "targetHttpProxies"}


class PlanMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs, plus the few computed outputs the program reads."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = cast(dict[str, Any], args.inputs)  # pyright: ignore[reportUnknownMemberType]
        state = dict(inputs)
        if args.typ == "cloudflare:index/customHostname:CustomHostname":
            state["ownershipVerification"] = {"name": f"_cf-custom-hostname.{inputs['hostname']}",
                                              "type": "txt", "value": _fake(args.name, length=36)}
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = _fake(args.name, length=int(inputs.get("length", 32)))
            # Computed at create, like the result: "A bcrypt hash of the generated random password"
            # (pulumi_random RandomPassword.bcrypt_hash); `$2a$10$` and 53 characters, as Go's bcrypt writes it.
            state["bcryptHash"] = "$2a$10$" + _fake(f"{args.name}-bcrypt", length=53)
        elif args.typ == "tls:index/privateKey:PrivateKey":
            state["privateKeyPem"] = TLS_KEY_PLACEHOLDER
        elif args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            state["certPem"] = TLS_CERT_PLACEHOLDER
        elif args.typ == "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken":
            # Computed at create (cloudflare provider v6: `client_id`, `client_secret`).
            state["clientId"] = _fake(f"{args.name}-client-id", length=32) + ".access"
            state["clientSecret"] = _fake(f"{args.name}-client-secret", length=64)
        elif args.typ == "cloudflare:index/apiToken:ApiToken":
            state["value"] = _fake(args.name, length=40)
        elif args.typ == "pulumi-python:dynamic/railway:Service" and inputs.get("custom_domain"):
            # What customDomainCreate answers (components/backends/railway.py): a CNAME target, a TXT token.
            state["custom_domain_target"] = f"{_fake(args.name, length=8)}.up.railway.app"
            state["custom_domain_verification"] = f"railway-verify={_fake(f'{args.name}-verification')}"
        elif args.typ == "gcp:compute/address:Address" and inputs.get("addressType") == "INTERNAL" \
                and not inputs.get("address"):
            # GCP allocates an internal address from the subnetwork's range (one asked for is kept as asked);
            # a stand-in from 10.20.0.0/24.
            state["address"] = f"10.20.0.{int(_fake(args.name, length=2), 16) % 200 + 10}"
        elif args.typ == "docker:index/image:Image" and inputs.get("skipPush") is False:
            # What a push answers: the manifest digest under the repository's name (pulumi_docker Image.repo_digest,
            # "repository@<algorithm>:<hash>"); a stand-in digest of the content-tagged name.
            name = str(inputs["imageName"])
            repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
            state["repoDigest"] = f"{repository}@sha256:{_fake(name, length=64)}"
        elif args.typ == "gcp:serviceaccount/account:Account":
            # The address GCP gives an account, so rules can tell it from the default compute one.
            state["email"] = f"{inputs['accountId']}@{inputs.get('project')}.iam.gserviceaccount.com"
            state["member"] = f"serviceAccount:{state['email']}"
        collection = GLOBAL_COLLECTIONS.get(args.typ)
        if collection is not None and isinstance(inputs.get("name"), str):
            # GCP's id of these: `projects/{{project}}/global/<collection>/{{name}}` (pulumi_gcp compute/
            # security_policy.py, target_https_proxy.py, target_http_proxy.py, "Import"), what a preview of an
            # existing stack passes on as `.id`; the rules resolve references by it.
            return f"projects/{inputs.get('project')}/global/{collection}/{inputs['name']}", state
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "cloudflare:index/getIpRanges:getIpRanges":
            # What https://www.cloudflare.com/ips/ publishes (the API's /ips answers the same).
            return {"ipv4Cidrs": list(CLOUDFLARE_IPV4), "ipv6Cidrs": list(CLOUDFLARE_IPV6)}, []
        if args.token == "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken":
            tunnel = cast(dict[str, Any], args.args).get("tunnelId")  # pyright: ignore[reportUnknownMemberType]
            return {"token": _fake(f"tunnel-token-{tunnel}", length=64)}, []
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            # The deployer's OAuth access token (`ya29.` ...), valid an hour.
            return {"accessToken": "ya29." + _fake("deployer-access-token", length=60), "project": "",
                    "region": "", "zone": "", "id": "client-config"}, []
        return {}, []


class PlanMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent, kind and raw inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.planned: list[PlannedResource] = []
        self.stack_outputs: dict[str, Any] = {}
        # The SDK gives each executor thread that answers an RPC an event loop; close them at the end.
        self.thread_loops: set[asyncio.AbstractEventLoop] = set()
        self.default_requests: set[tuple[str, str, str]] = set()
        """(package, version, plugin URL) of every custom resource registered without an explicit provider."""

    def RegisterResource(self, request: Any) -> Any:  # gRPC method names
        response = super().RegisterResource(request)  # pyright: ignore[reportUnknownMemberType]
        secret_outputs = list(request.additionalSecretOutputs)
        if secret_outputs:
            # The engine marks these outputs secret (RandomPassword.result, ApiToken.value, ...);
            # the SDK's mock monitor does not, so a plan would otherwise pass them on in clear.
            state = rpc.deserialize_properties(response.object, keep_unknowns=True)
            for key in secret_outputs:
                if key in state:
                    state[key] = {_SIG_KEY: _SECRET_SIG, "value": state[key]}
            response.object.CopyFrom(_serialize(state))
        if request.custom and not request.provider and not request.type.startswith("pulumi:providers:"):
            self.default_requests.add((request.type.split(":", 1)[0], request.version, request.pluginDownloadURL))
        if request.type != "pulumi:pulumi:Stack":
            self.thread_loops.add(asyncio.get_event_loop())  # set by the SDK for this thread
            raw = rpc.deserialize_properties(request.object, keep_unknowns=True)
            self.planned.append(PlannedResource(
                urn=response.urn, type=request.type, name=request.name,
                parent=request.parent or None, custom=bool(request.custom), inputs=mask(raw),
                wire_inputs=wire(raw), dependencies=frozenset(request.dependencies),
                provider=request.provider or None,
            ))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if "::pulumi:pulumi:Stack::" in request.urn:
            self.stack_outputs = mask(rpc.deserialize_properties(request.outputs, keep_unknowns=True))
        return super().RegisterResourceOutputs(request)  # pyright: ignore[reportUnknownMemberType]


def _serialize(state: dict[str, Any]) -> Any:
    """On the executor thread's loop (the SDK gave it one; it is not running): the monitor answers there."""
    return asyncio.get_event_loop().run_until_complete(rpc.serialize_properties(state, {}))


def run_plan(raw: RawConfig, stack: str,
             declare: Callable[[StackModel], None] = program.declare, mocks: PlanMocks | None = None) -> Plan:
    """Validate the config (raising `ConfigError` before anything is declared), then run the program."""
    return run_program(load_model(raw), raw, stack, declare, mocks)


def run_program(model: StackModel, raw: RawConfig, stack: str,
                declare: Callable[[StackModel], None] = program.declare, mocks: PlanMocks | None = None) -> Plan:
    """Run the program for an already validated model under the mock engine; `mocks` answer what providers
    compute (infra/boot.py answers what they compute at create, to boot the planned containers)."""
    monitor = PlanMonitor(mocks or PlanMocks())
    # A loop of our own, set before the runtime is configured so every future it makes is bound to it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The SDK makes several futures and outputs per resource, and the cyclic collector rescans
    # them all on every full pass: with it paused, a 1,000-tenant plan takes half the time, grows
    # linearly, and peaks 7 % higher in memory (bench/README.md). A plan is a bounded batch run.
    collector_was_enabled = gc.isenabled()
    gc.disable()
    try:
        # What a previous in-process run left behind (as `pulumi.runtime.test` clears it too).
        pulumi_settings.SETTINGS.rpc_manager.clear()  # pyright: ignore
        pulumi_settings.SETTINGS.outputs.clear()  # pyright: ignore
        pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=True, monitor=monitor)
        # set_mocks registers a root stack of its own; the program's runs in a fresh one, as under the CLI.
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_all_config(dict(raw.values), sorted(raw.secret_keys))
        loop.run_until_complete(run_in_stack(lambda: declare(model)))
    finally:
        # The mock monitor answers from the loop's executor threads; end them with the loop.
        loop.run_until_complete(loop.shutdown_default_executor())
        for thread_loop in monitor.thread_loops - {loop}:
            thread_loop.close()
        loop.close()
        asyncio.set_event_loop(None)
        if collector_was_enabled:
            gc.enable()
    return Plan(stack=stack, config_file=raw.file, resources=tuple(monitor.planned),
                outputs=monitor.stack_outputs, default_providers=default_providers(monitor, raw, stack))


def _qname(text: str) -> str:
    """sdk/go/common/tokens/names.go IntoQName: `/`-separated names of [A-Za-z0-9_.-], empty segments dropped."""
    return "/".join(re.sub(r"[^A-Za-z0-9_.-]", "_", part) for part in text.split("/") if part) or "_"


DYNAMIC_PACKAGES = frozenset({"pulumi-python", "pulumi-nodejs"})


def default_providers(monitor: PlanMonitor, raw: RawConfig, stack: str) -> tuple[PlannedResource, ...]:
    """What the engine registers for every resource without an explicit provider (github.com/pulumi/pulumi,
    pkg/resource/deploy/default_providers.go newRegisterDefaultProviderEvent): `pulumi:providers:<package>`, one per
    package, version and plugin URL the SDK asks for, named by providers/provider.go DefaultName, whose inputs are
    the package's stack config (target.go GetPackageConfig: its namespace's keys without the namespace; for a dynamic
    provider every key, namespaced), secure values secret, and `version`. The plugin URL goes under `__internal`,
    which analyzers never see (SkipInternalKeys)."""
    out: dict[str, PlannedResource] = {}
    for package, version, url in sorted(monitor.default_requests):
        name = "default" + (f"_{re.sub(r'[.+-]', '_', version)}" if version else "") \
            + (f"_{_qname(url)}" if url else "")
        config: dict[str, Any] = {}
        for key, value in sorted(raw.values.items()):
            namespace, _, short = key.partition(":")
            if package in DYNAMIC_PACKAGES or namespace == package:
                config[key if package in DYNAMIC_PACKAGES else short] = \
                    {_SIG_KEY: _SECRET_SIG, "value": value} if key in raw.secret_keys else value
        if version:
            config["version"] = version
        token = f"pulumi:providers:{package}"
        out[name + token] = PlannedResource(
            urn=f"urn:pulumi:{stack}::{PROJECT}::{token}::{name}", type=token, name=name, parent=None, custom=True,
            inputs=mask(config), wire_inputs=wire(config))
    return tuple(out.values())


def contract_violations(plan: Plan, model: StackModel) -> list[contracts.Violation]:
    """Every planned resource, derived ones included, against its service's documented rules
    (stacks/contracts): what the provider would refuse, or what would fail on its first start."""
    return contracts.check(plan.resources, contracts.Context(zone_plan=model.zone.plan))


# ---------------------------------------------------------------------------------------------
# Rendering


_KEY_INPUTS = ("name", "hostname", "domain", "settingId", "key", "type", "content", "value", "phase",
               "proxied", "sensitive", "framework", "expiresOn", "origin", "length")


def _key_inputs(inputs: Mapping[str, Any]) -> str:
    shown: list[str] = []
    for key in _KEY_INPUTS:
        if key in inputs and len(shown) < 5:
            value = inputs[key]
            text = json.dumps(value) if not isinstance(value, str) else value
            if isinstance(value, dict | list):
                text = f"{len(value)} entries"  # pyright: ignore[reportUnknownArgumentType]
            shown.append(f"{key}={text if len(text) <= 60 else text[:57] + '...'}")
    if "rules" in inputs and isinstance(inputs["rules"], list):
        shown.append(f"rules={len(inputs['rules'])}")  # pyright: ignore[reportUnknownArgumentType]
    return "  ".join(shown)


def render_tree(plan: Plan) -> str:
    children: dict[str | None, list[PlannedResource]] = defaultdict(list)
    known = {r.urn for r in plan.resources}
    for r in plan.resources:
        children[r.parent if r.parent in known else None].append(r)
    lines = [f"Plan for stack {plan.stack!r} ({plan.config_file}), project {PROJECT!r}:"]

    def walk(parent: str | None, depth: int) -> None:
        for r in sorted(children[parent], key=lambda r: (r.custom, r.type, r.name)):
            details = _key_inputs(r.inputs) if r.custom else ""
            lines.append(f"{'  ' * (depth + 1)}{'+' if r.custom else '■'} {r.type}  {r.name}"
                         + (f"  {details}" if details else ""))
            walk(r.urn, depth + 1)

    walk(None, 0)
    counts = plan.count_by_type()
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    lines.append(f"Resources: {sum(counts.values())} to declare ({summary})")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PlanDiff:
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[tuple[dict[str, Any], list[str]]]

    def render(self) -> str:
        lines = ["Changes against the earlier plan:"]
        lines += [f"  + {r['type']}  {r['name']}" for r in self.added]
        lines += [f"  ~ {r['type']}  {r['name']}  ({', '.join(keys)})" for r, keys in self.changed]
        lines += [f"  - {r['type']}  {r['name']}" for r in self.removed]
        lines.append(f"Diff: {len(self.added)} to add, {len(self.changed)} to change, "
                     f"{len(self.removed)} to remove")
        return "\n".join(lines) + "\n"


def diff_plans(before: Mapping[str, Any], after: Mapping[str, Any]) -> PlanDiff:
    """Compare two `Plan.to_json()` documents by URN; a change lists the inputs that differ."""
    old = {r["urn"]: r for r in before["resources"]}
    new = {r["urn"]: r for r in after["resources"]}
    changed: list[tuple[dict[str, Any], list[str]]] = []
    for urn in sorted(old.keys() & new.keys()):
        a, b = old[urn]["inputs"], new[urn]["inputs"]
        keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if keys:
            changed.append((new[urn], keys))
    return PlanDiff(added=[new[u] for u in sorted(new.keys() - old.keys())],
                    removed=[old[u] for u in sorted(old.keys() - new.keys())], changed=changed)
