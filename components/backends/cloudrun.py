"""The cloudrun backend: a Cloud Run v2 service with its own service account and secrets (C1, S3).

Least privilege: the service account holds no project role; it may read exactly its own secrets.
A public service is reachable only through a global external Application Load Balancer
(`INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER`), which answers for its public hostname with a Certificate
Manager certificate and admits only Cloudflare's addresses (Cloud Armor): so the edge reaches it
without a Host-header override, and nobody reaches it but through the edge.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_gcp as gcp
import pulumiverse_time as time

from components.backends.service import ContainerSpec, DnsEntry, Endpoint
from stacks.contracts import ContractError
from stacks.contracts import check as check_contracts
from stacks.contracts import cloudrun as cloudrun_contract

# No `scaling.cpu_utilization` / `concurrency_utilization`: the google-beta provider documents both as
# "(Optional, [Beta])" and its own example for them sets `launch_stage = "BETA"`
# (hashicorp/terraform-provider-google-beta, website/docs/r/cloud_run_v2_service.html.markdown, commit 37a5699
# "Add Terraform support for Cloud Run v2 scaling controls"; the schema in
# google-beta/services/cloudrunv2/resource_cloud_run_v2_service.go). A prod service on a pre-GA launch stage for
# them is not worth it: Cloud Run's default already "optimizes for high performance with a utilization target of
# 60% for both CPU and concurrency" (cloud.google.com/run/docs/configuring/scaling-controls), which is the 60 %
# CPU target the platform wants, well before the 85 % alert (M3).
MAX_CONCURRENCY = 80
CPU_IDLE = False
"""Every container keeps its CPU between requests: warm instances (C1) and agents that scrape on their own."""
# IAM grants propagate in "typically 2 minutes, potentially 7 minutes or longer"
# (https://cloud.google.com/iam/docs/access-change-propagation). A revision whose service account
# cannot read its secrets yet fails to start, so the first one waits this long after the grants.
IAM_PROPAGATION = "120s"


@dataclass(frozen=True)
class Standby:
    """The public service's standby in the failover region (#13 item 7, C8): the same image and settings but
    `env` and `secret_env`, as its own account with its own secrets, behind the same load balancer through a
    serverless NEG of its own. `serving`: the load balancer's backend is the standby's NEG (the edge's API
    origin moves there) and it keeps one warm instance; otherwise none, and no traffic reaches it."""

    region: str
    subnetwork: pulumi.Input[str]
    serving: bool
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict[str, pulumi.Input[str]])
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict[str, pulumi.Input[str]])


@dataclass(frozen=True)
class CloudRunTarget:
    project: str
    region: str
    environment: str
    deletion_protection: bool
    vpc_network: pulumi.Input[str] | None = None
    """Direct VPC egress into this network (to reach Memorystore). Left out, no VPC access."""
    vpc_subnetwork: pulumi.Input[str] | None = None
    serving_revisions: Mapping[str, pulumi.Input[str | None]] = field(
        default_factory=dict[str, pulumi.Input[str | None]])
    """Services whose traffic a canary rollout moves (infra/ops/rollout.py), by service name: the revision
    that serves all their traffic (None before the first rollout). See `traffic`."""
    standby: Standby | None = None
    """The public service's standby in the failover region, and which of the two serves."""


# Tags name the two sides of a rollout in the traffic block and in `trafficStatuses`.
STABLE_TAG, CANARY_TAG = "stable", "canary"
LATEST, REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


def traffic(serving_revision: str | None) -> list[gcp.cloudrunv2.ServiceTrafficArgsDict]:
    """The traffic block of a service under canary rollouts, as the program declares it.

    The program owns it, so a `pulumi up` never undoes a rollout: all traffic to `serving_revision` (the
    revision the last rollout promoted, which the stack exports as `engineServingRevision`), and the
    newest revision tagged `canary` at 0 %. Pinning a revision makes every later deployment keep that
    split: "If you split traffic between multiple revisions or assigned traffic to a previous revision,
    all subsequent deployments use that traffic split pattern going forward"
    (cloud.google.com/run/docs/rollouts-rollbacks-traffic-migration), so a new template is created
    beside it with no traffic, for the rollout to move in steps. This is also exactly what a rollback
    leaves. `ignoreChanges` on the block would instead resend the last state's value, stale after a
    rollout unless every `up` refreshes first (pulumi.com/docs/iac/concepts/options/ignorechanges).
    Before any rollout there is no revision to pin: the latest one serves, as Cloud Run's default.
    The keys are the v2 API's TrafficTarget fields (cloud.google.com/run/docs/reference/rest/v2/
    TrafficTarget), which the provider's `traffics` takes as they are.
    """
    if not serving_revision:
        return [{"type": LATEST, "percent": 100}]
    return [{"type": REVISION, "revision": serving_revision, "percent": 100, "tag": STABLE_TAG},
            {"type": LATEST, "percent": 0, "tag": CANARY_TAG}]


def deploy(name: str, spec: ContainerSpec, target: CloudRunTarget, parent: pulumi.Resource) -> Endpoint:
    standby = target.standby if spec.size.public else None
    labels = {"platform-serving": "false" if standby.serving else "true"} if standby is not None else {}
    service = _service(name, spec, target, parent, region=target.region, ident=f"{spec.name}-{target.environment}",
                       subnetwork=target.vpc_subnetwork, labels=labels,
                       traffics=pulumi.Output.from_input(target.serving_revisions[spec.name]).apply(traffic)
                       if spec.name in target.serving_revisions else traffic(None))
    if not spec.size.public:
        return Endpoint(private_url=service.uri, public_url=None, resources=[service])
    child = pulumi.ResourceOptions(parent=parent)
    # The load balancer does not authenticate callers; its ingress setting is what keeps others out.
    gcp.cloudrunv2.ServiceIamMember(f"{name}-public-invoker", project=target.project, location=target.region,
                                    name=service.name, role="roles/run.invoker", member="allUsers", opts=child)
    standby_service = None
    if standby is not None:
        # The same image and settings in the failover region, as its own account with its own secrets (PLAT-IAM-003),
        # leaving through the failover region's subnetwork to the standby PocketBase and, when serving, its Redis.
        standby_spec = dataclasses.replace(
            spec, env={**spec.env, **standby.env}, secret_env={**spec.secret_env, **standby.secret_env},
            size=dataclasses.replace(spec.size, min_instances=1 if standby.serving else 0))
        standby_service = _service(f"{name}-standby", standby_spec, target, parent, region=standby.region,
                                   ident=f"{spec.name}-{target.environment}-standby", subnetwork=standby.subnetwork,
                                   labels={"platform-serving": "true" if standby.serving else "false",
                                           "platform-standby": "true"},
                                   traffics=traffic(None))
        gcp.cloudrunv2.ServiceIamMember(f"{name}-standby-public-invoker", project=target.project,
                                        location=standby.region, name=standby_service.name, role="roles/run.invoker",
                                        member="allUsers", opts=child)
    assert spec.public_hostname is not None, "a public service names the host the edge forwards to it"
    assert spec.edge_gate is not None, "Cloud Armor admits the edge by the header it adds"
    dns, backend = _load_balancer(name, service, spec.public_hostname, target, parent, standby_service,
                                  spec.edge_gate)
    return Endpoint(private_url=service.uri, public_url=None, resources=[service], dns=dns, routing=[backend])


def _service(name: str, spec: ContainerSpec, target: CloudRunTarget, parent: pulumi.Resource, *, region: str,
             ident: str, subnetwork: pulumi.Input[str] | None, labels: Mapping[str, str],
             traffics: pulumi.Input[Sequence[gcp.cloudrunv2.ServiceTrafficArgsDict]]) -> gcp.cloudrunv2.Service:
    """One Cloud Run service as its own account, reading its own secrets (`<ident>-...`)."""
    check(name, spec)
    child = pulumi.ResourceOptions(parent=parent)
    account = gcp.serviceaccount.Account(
        f"{name}-sa", project=target.project, account_id=ident[:30],
        display_name=f"{spec.name} ({ident.removeprefix(spec.name + '-')}) on Cloud Run", opts=child)

    accessors: list[pulumi.Resource] = []
    versions: list[pulumi.Resource] = []
    # Each container's variables; a sidecar's secrets are named after it (`<service>-<sidecar>-...`).
    all_envs: list[list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgsDict]] = []
    for container in (spec, *spec.sidecars):
        prefix = "" if container is spec else f"{container.name}-"
        envs: list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgsDict] = [
            {"name": key, "value": value} for key, value in sorted(container.env.items())]
        for key, value in sorted(container.secret_env.items()):
            slug = prefix + key.lower().replace("_", "-")
            # Left in place when replaced or no longer declared: prod's traffic stays on the last promoted
            # revision while a new one is judged, and that revision reads this version (and needs this grant)
            # at every instance start ("If the secret retrieval process fails, the instance doesn't start",
            # cloud.google.com/run/docs/configuring/secrets). A rotation, a tenant onboarded or a renamed
            # variable must not stop it scaling or being rolled back to. README: retired secrets.
            kept = pulumi.ResourceOptions(parent=parent, retain_on_delete=True)
            secret = gcp.secretmanager.Secret(
                f"{name}-{slug}", project=target.project, secret_id=f"{ident}-{slug}",
                replication={"auto": {}}, opts=kept)
            version = gcp.secretmanager.SecretVersion(f"{name}-{slug}-v", secret=secret.id,
                                                      secret_data=pulumi.Output.secret(value),
                                                      deletion_policy="ABANDON", opts=child)
            versions.append(version)
            accessors.append(gcp.secretmanager.SecretIamMember(
                f"{name}-{slug}-reader", project=target.project, secret_id=secret.secret_id,
                role="roles/secretmanager.secretAccessor", member=account.member, opts=kept))
            # By number, not `latest`: reading a version just added by its number is strongly consistent
            # (https://cloud.google.com/secret-manager/docs/reference/consistency), and a rotated secret
            # rolls a new revision instead of reaching instances only when they restart.
            envs.append({"name": key, "value_source": {"secret_key_ref": {"secret": secret.secret_id,
                                                                           "version": version.version}}})
        all_envs.append(envs)
    envs = all_envs[0]
    for role in spec.project_roles:
        accessors.append(gcp.projects.IAMMember(f"{name}-{role.split('/')[-1].replace('.', '-').lower()}",
                                                project=target.project, role=role, member=account.member,
                                                opts=child))
    # Google's own sample has the service depend on the versions and the grants
    # (cloudrunv2_job_secret: depends_on = [secret-version-data, secret-access]); the sleep runs on
    # the first create only, and again if the account (so every grant) is replaced.
    settled = time.Sleep(f"{name}-iam-propagation", create_duration=IAM_PROPAGATION,
                         triggers={"member": account.member},
                         opts=pulumi.ResourceOptions(parent=parent, depends_on=accessors)) if accessors else None

    probe_path = spec.health_path or "/"
    # The probes ask the private listener: the load balancer (serverless NEG) sends requests to the container
    # port only, so nothing public reaches it (engine.api.EdgeGuard). A probe names its own port ("port: ...
    # to access on the container", https://cloud.google.com/run/docs/configuring/healthchecks); the sidecars'
    # probes below already ask a port that is not the ingress one.
    probe_port = spec.internal_port or spec.port
    template: gcp.cloudrunv2.ServiceTemplateArgsDict = {
        "service_account": account.email,
        "scaling": {"min_instance_count": spec.size.min_instances, "max_instance_count": spec.size.max_instances},
        "max_instance_request_concurrency": MAX_CONCURRENCY,
        "containers": [{
            "name": spec.name,
            "image": spec.image,
            "ports": {"container_port": spec.port},
            "envs": envs,
            "resources": {
                "limits": {"cpu": _cpu(spec.size.cpu_millis), "memory": f"{spec.size.memory_mib}Mi"},
                # Warm instances keep their CPU between requests (C1: one warm instance).
                "cpu_idle": CPU_IDLE,
                "startup_cpu_boost": True,
            },
            # Up to 180 s: the engine waits for PocketBase, whose VM a deploy may reboot (CR-PROBE-001).
            "startup_probe": {"http_get": {"path": probe_path, "port": probe_port}, "period_seconds": 3,
                              "failure_threshold": 60, "timeout_seconds": 2},
            "liveness_probe": {"http_get": {"path": probe_path, "port": probe_port}, "period_seconds": 15,
                               "failure_threshold": 3, "timeout_seconds": 3},
            # A command replaces the image's entrypoint, as on Railway (an agent's start-up script).
            **({"commands": list(spec.command)} if spec.command else {}),  # pyright: ignore[reportAssignmentType]
        }, *[_sidecar(sidecar, envs) for sidecar, envs in zip(spec.sidecars, all_envs[1:], strict=True)]],
    }
    if target.vpc_network is not None:
        template["vpc_access"] = {"egress": "PRIVATE_RANGES_ONLY", "network_interfaces": [
            {"network": target.vpc_network, "subnetwork": subnetwork}]}
    return gcp.cloudrunv2.Service(
        name,
        project=target.project,
        location=region,
        name=spec.name,
        ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" if spec.size.public else "INGRESS_TRAFFIC_INTERNAL_ONLY",
        deletion_protection=target.deletion_protection,
        # PLAT-IAM-004 lets allUsers invoke only services labelled public.
        labels={"platform-public": "true" if spec.size.public else "false", "platform-environment": target.environment,
                **labels},
        template=template,
        traffics=traffics,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*versions, *accessors,
                                                               *([settled] if settled else [])]),
    )


@dataclass(frozen=True)
class _Draft:
    """A Cloud Run service as the contract reads a planned one (stacks/contracts/rule.py `Planned`), before it is
    declared: its containers' limits and how it runs, as `_service` declares them."""

    type: str
    name: str
    inputs: dict[str, object]


_SIZE_RULES = tuple(rule for rule in cloudrun_contract.RULES if rule.id.startswith(("CR-CPU-", "CR-MEM-")))
"""The contract's rules on an instance's size, concurrency and CPU allocation (the rest read what `plan` sees)."""


def draft(name: str, spec: ContainerSpec) -> _Draft:
    """The service `_service` would declare for `spec`, reduced to what the size rules read."""
    containers = [{"name": part.name, "resources": {
        "cpuIdle": CPU_IDLE, "limits": {"cpu": _cpu(part.size.cpu_millis), "memory": f"{part.size.memory_mib}Mi"}}}
        for part in (spec, *spec.sidecars)]
    return _Draft(cloudrun_contract.SERVICE, name, {
        "template": {"containers": containers, "maxInstanceRequestConcurrency": MAX_CONCURRENCY}})


def check(name: str, spec: ContainerSpec) -> None:
    """Every Cloud Run service the program plans, declared or derived, keeps the Cloud Run contract's size rules
    before it is declared: the program stops with `ContractError` (the contract's own rule lines) rather than ask
    Cloud Run for a revision it refuses."""
    broken = check_contracts([draft(name, spec)], rules=_SIZE_RULES)
    if broken:
        raise ContractError(broken)


def _cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _sidecar(spec: ContainerSpec, envs: list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgsDict],
             ) -> gcp.cloudrunv2.ServiceTemplateContainerArgsDict:
    """A container beside the ingress one: no port; its command replaces the image's entrypoint."""
    container: gcp.cloudrunv2.ServiceTemplateContainerArgsDict = {
        "name": spec.name, "image": spec.image, "envs": envs,
        "resources": {"limits": {"cpu": _cpu(spec.size.cpu_millis), "memory": f"{spec.size.memory_mib}Mi"},
                      "cpu_idle": CPU_IDLE},
    }
    if spec.command:
        container["commands"] = list(spec.command)
    if spec.health_path:
        container["startup_probe"] = {"http_get": {"path": spec.health_path, "port": spec.port}, "period_seconds": 5,
                                      "failure_threshold": 24, "timeout_seconds": 3}
    return container


def _cloudflare_ranges(ranges: cloudflare.GetIpRangesResult) -> list[str]:
    return sorted(ranges.ipv4_cidrs or []) + sorted(ranges.ipv6_cidrs or [])


GATE_HEADER = "x-origin-gate"
"""components/edge.py ORIGIN_GATE_HEADER, as Cloud Armor names it: `request.headers` keys are lowercase."""
RANGES_PER_RULE = 4
"""An advanced match condition holds "up to five subexpressions"
(https://cloud.google.com/armor/docs/rules-language-reference): the header and four ranges."""
_GATE_VALUE = re.compile(r"[A-Za-z0-9]{32,128}")


def _armor_rules(ranges: list[str], gate: pulumi.Input[str]) -> list[gcp.compute.SecurityPolicyRuleArgsDict]:
    """Allow a request only from Cloudflare's addresses AND carrying the edge's `X-Origin-Gate` value; deny the rest.

    Cloudflare's addresses alone admit every Cloudflare customer, who can point a zone of their own at our
    load balancer's address; the header is what only our zone's transform rule adds (components/edge.py).
    Each allow rule is `request.headers['x-origin-gate'] == '<value>' && (inIpRange(origin.ip, r1) || ...)`:
    a missing header matches no allow rule, so the default rule denies it.

    Why a separate value, not the engine's ORIGIN_AUTH_SECRET: a Cloud Armor expression is stored in the
    policy as written, readable by anyone who may read the project's security policies (compute.securityPolicies.get:
    roles/viewer, roles/compute.viewer, ...); Cloud Armor has no secret reference and no hashing in its
    language. Knowing this value gets a request past Cloud Armor, not past the engine, which still compares
    X-Origin-Auth (held in Secret Manager, readable by the engine's own account alone) in constant time. The
    alternative, no header rule at all, lets every Cloudflare customer's requests reach the engine's instances
    (load, and the engine's own 403 as the only barrier).

    The list's structure comes from the ranges alone (known at preview: an invoke), and only each expression
    waits for the gate: at the first preview of an environment the gate's password does not exist yet, so its
    value is unknown, and a whole rules list unknown then would meet PLAT-NET-002's mandatory "rules not known
    until apply" (policies/rules/gcp_network.py) and stop the first deploy."""
    conditions = [ranges[i:i + RANGES_PER_RULE] for i in range(0, len(ranges), RANGES_PER_RULE)]
    value = pulumi.Output.from_input(gate)
    allow: list[gcp.compute.SecurityPolicyRuleArgsDict] = [
        {"priority": 1000 + i, "action": "allow", "description": "Cloudflare's edge, with our zone's header",
         "match": {"expr": {"expression": value.apply(lambda g, group=group: _allow_expression(g, group))}}}
        for i, group in enumerate(conditions)]
    return [*allow, {"priority": 2147483647, "action": "deny(403)", "description": "everyone else",
                     "match": {"versioned_expr": "SRC_IPS_V1", "config": {"src_ip_ranges": ["*"]}}}]


def _allow_expression(gate: str, group: list[str]) -> str:
    assert _GATE_VALUE.fullmatch(gate), "an alphanumeric value: nothing to escape in a CEL string literal"
    return (f"request.headers['{GATE_HEADER}'] == '{gate}' && ("
            + " || ".join(f"inIpRange(origin.ip, '{r}')" for r in group) + ")")


def _load_balancer(name: str, service: gcp.cloudrunv2.Service, hostname: str, target: CloudRunTarget,
                   parent: pulumi.Resource, standby: gcp.cloudrunv2.Service | None, gate: pulumi.Input[str],
                   ) -> tuple[list[DnsEntry], gcp.compute.BackendService]:
    child = pulumi.ResourceOptions(parent=parent)
    project = target.project
    prefix = f"{hostname.split('.')[0]}-{target.environment}"
    neg = gcp.compute.RegionNetworkEndpointGroup(
        f"{name}-neg", project=project, region=target.region, name=f"{prefix}-neg",
        network_endpoint_type="SERVERLESS", cloud_run={"service": service.name}, opts=child)
    serving = neg
    if standby is not None and target.standby is not None:
        standby_neg = gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-standby-neg", project=project, region=target.standby.region, name=f"{prefix}-standby-neg",
            network_endpoint_type="SERVERLESS", cloud_run={"service": standby.name}, opts=child)
        # One backend at a time, never both: two regions serving would be two PocketBase writers. The load
        # balancer's backend is the edge's API origin; Cloud Armor and the certificate stay as they are.
        serving = standby_neg if target.standby.serving else neg
    # Cloudflare publishes its ranges (https://www.cloudflare.com/ips/); read them at deploy time.
    ranges = cloudflare.get_ip_ranges_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    armor = gcp.compute.SecurityPolicy(
        f"{name}-edge-only", project=project, name=f"{prefix}-edge-only", type="CLOUD_ARMOR",
        description="Only Cloudflare's edge may reach the origin",
        rules=ranges.apply(lambda r: _armor_rules(_cloudflare_ranges(r), gate)),
        opts=child)
    backend = gcp.compute.BackendService(
        f"{name}-backend", project=project, name=f"{prefix}-backend", load_balancing_scheme="EXTERNAL_MANAGED",
        protocol="HTTPS", backends=[{"group": serving.id}], security_policy=armor.id,
        log_config={"enable": True, "sample_rate": 1.0}, opts=child)
    # The API host alone reaches the engine. Any other Host (another Cloudflare customer's zone pointed at this
    # address, a bare IP) gets a redirect to a name that cannot exist (RFC 6761 `.invalid`): nothing of ours.
    # "Only one of defaultRouteAction or defaultUrlRedirect must be set" and a host rule's path matcher names
    # the service (pulumi-gcp compute/url_map.py). With the port too: a Host header may carry it (RFC 9110 7.2).
    url_map = gcp.compute.URLMap(
        f"{name}-urlmap", project=project, name=f"{prefix}-urlmap",
        host_rules=[{"hosts": [hostname, f"{hostname}:443"], "path_matcher": "api"}],
        path_matchers=[{"name": "api", "default_service": backend.id}],
        default_url_redirect={"host_redirect": "unknown-host.invalid", "path_redirect": "/", "strip_query": True,
                              "redirect_response_code": "MOVED_PERMANENTLY_DEFAULT"},
        opts=child)
    # DNS authorization: the certificate is issued while the name is proxied by Cloudflare, where an
    # HTTP or load-balancer authorization would never see Google's challenge.
    authorization = gcp.certificatemanager.DnsAuthorization(
        f"{name}-dns-authorization", project=project, name=f"{prefix}-dns", location="global", domain=hostname,
        opts=child)
    certificate = gcp.certificatemanager.Certificate(
        f"{name}-certificate", project=project, name=f"{prefix}-cert", scope="DEFAULT",
        managed={"domains": [hostname], "dns_authorizations": [authorization.id]}, opts=child)
    cert_map = gcp.certificatemanager.CertificateMap(f"{name}-certificate-map", project=project,
                                                     name=f"{prefix}-certs", opts=child)
    gcp.certificatemanager.CertificateMapEntry(
        f"{name}-certificate-map-entry", project=project, name=f"{prefix}-entry", map=cert_map.name,
        hostname=hostname, certificates=[certificate.id], opts=child)
    # Without an SSL policy the proxy runs GCP's default (COMPATIBLE, TLS 1.0 and 1.1 allowed: cloud.google.com/
    # load-balancing/docs/ssl-policies-concepts#defining_an_ssl_policy); S1 asks TLS 1.2 at least (PLAT-TLS-004).
    ssl_policy = gcp.compute.SSLPolicy(
        f"{name}-ssl-policy", project=project, name=f"{prefix}-tls12", min_tls_version="TLS_1_2", profile="MODERN",
        opts=child)
    proxy = gcp.compute.TargetHttpsProxy(
        f"{name}-https-proxy", project=project, name=f"{prefix}-https", url_map=url_map.id,
        ssl_policy=ssl_policy.self_link,
        certificate_map=cert_map.id.apply(lambda i: f"//certificatemanager.googleapis.com/{i}"), opts=child)
    address = gcp.compute.GlobalAddress(f"{name}-address", project=project, name=f"{prefix}-ip", opts=child)
    gcp.compute.GlobalForwardingRule(
        f"{name}-https", project=project, name=f"{prefix}-https", target=proxy.id, ip_address=address.address,
        port_range="443", load_balancing_scheme="EXTERNAL_MANAGED", opts=child)
    # A FIXED_RECORD authorization is `_acme-challenge.<domain>` CNAME `<id>.authorize.certificatemanager.goog.`
    # (https://cloud.google.com/certificate-manager/docs/dns-authorizations).
    challenge = authorization.dns_resource_records.apply(lambda records: (records[0].data or "").rstrip("."))
    return [DnsEntry("api", hostname, "A", address.address, proxied=True),
            DnsEntry("api-certificate", f"_acme-challenge.{hostname}", "CNAME", challenge, proxied=False)], backend
