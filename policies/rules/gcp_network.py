"""Google Cloud's network edge and hosts, judged by what they mean (issue #22 items 9, 12 and 15).

PLAT-TLS-004: every HTTPS target proxy carries an SSL policy of this stack, and every SSL policy allows
TLS 1.2 at least with the MODERN or RESTRICTED profile. Without one a proxy runs GCP's default
(COMPATIBLE, TLS 1.0 and 1.1 allowed: cloud.google.com/load-balancing/docs/ssl-policies-concepts);
`minTlsVersion` takes TLS_1_0..TLS_1_3 and `profile` COMPATIBLE, MODERN, RESTRICTED, CUSTOM or FIPS_202205
(pulumi_gcp/compute/ssl_policy.py). CUSTOM is refused: its feature list is a cipher list no rule reviews.

PLAT-TLS-005: a plain-HTTP target proxy only fronts a URL map that redirects everything to HTTPS.

PLAT-NET-001: no ingress firewall admits the internet (0.0.0.0/0, ::/0, any public range or no source at
all) but Google's load-balancer health checkers, 35.191.0.0/16 and 130.211.0.0/22
(cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges).

PLAT-NET-002: Cloud Armor's default rule (priority 2147483647) denies: an allow-list of Cloudflare's ranges
is no list when everyone else is allowed too (cloud.google.com/armor/docs/security-policy-overview#default-rules).

PLAT-VM-004: a VM has no serial port access (`serial-port-enable`), OS Login on, project-wide SSH keys
blocked, Shielded VM secure boot, no external address, and no literal credential in its metadata
(startup-script, user-data: readable by anyone with compute.instances.get and by every process on the VM
from the metadata server). cloud.google.com/compute/docs/instances/interacting-with-serial-console,
cloud.google.com/compute/docs/oslogin, cloud.google.com/compute/shielded-vm/docs/shielded-vm.

PLAT-LOG-004: VPC flow logs on every subnetwork (checkov CKV_GCP_26, bridgecrewio/checkov
checkov/terraform/checks/resource/gcp/GoogleSubnetworkLoggingEnabled.py: `log_config` set; proxy-only
subnets cannot have them) and Cloud NAT logging of translations (cloud.google.com/nat/docs/monitoring).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Finding, NotApplicable, Resource, Verdict, as_list, as_map, is_unknown

SSL_POLICY_TYPES = ("gcp:compute/sSLPolicy:SSLPolicy", "gcp:compute/regionSslPolicy:RegionSslPolicy")
HTTPS_PROXIES = ("gcp:compute/targetHttpsProxy:TargetHttpsProxy",
                 "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy",
                 "gcp:compute/targetSSLProxy:TargetSSLProxy")
HTTP_PROXIES = ("gcp:compute/targetHttpProxy:TargetHttpProxy",
                "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy")
URL_MAPS = ("gcp:compute/uRLMap:URLMap", "gcp:compute/regionUrlMap:RegionUrlMap")
TLS_VERSIONS = ("TLS_1_2", "TLS_1_3")
EARLY_DATA = (None, "DISABLED", "STRICT")
"""pulumi_gcp compute/target_https_proxy.py `tls_early_data`: STRICT (early data only for safe methods without
query parameters), PERMISSIVE (safe methods, query parameters too), UNRESTRICTED (any method: replayable POSTs),
DISABLED (the default). cloud.google.com/load-balancing/docs/https#tls-early-data: early data can be replayed."""
PROFILES = ("MODERN", "RESTRICTED")


def _ssl_policy_findings(r: Resource) -> list[str]:
    version, profile = r.get("minTlsVersion"), r.get("profile")
    out: list[str] = []
    if version not in TLS_VERSIONS:
        shown = "absent (GCP's default TLS_1_0)" if version is None else repr(version)
        out.append(f"SSL policy {r.get('name')!r} has minTlsVersion {shown}; expected TLS_1_2 or TLS_1_3 (S1)")
    if profile not in PROFILES:
        shown = "absent (GCP's default COMPATIBLE)" if profile is None else repr(profile)
        out.append(f"SSL policy {r.get('name')!r} has profile {shown}; expected MODERN or RESTRICTED")
    return out


def _refers_to(reference: Any, policy: Resource) -> bool:
    """A known reference (a self link, an id or a name) names `policy` by its name, and by its project when the
    reference names one (`projects/{{project}}/global/...`: the same name in another project is another resource)."""
    name, project = policy.get("name"), policy.get("project")
    if not (isinstance(reference, str) and isinstance(name, str)):
        return False
    named = re.search(r"(?:^|/)projects/([^/]+)/", reference)
    if named is not None and isinstance(project, str) and named.group(1) != project:
        return False
    return reference.rstrip("/").rsplit("/", 1)[-1] == name


def check_ssl_policies(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-TLS-004."""
    policies = [r for r in resources if r.type in SSL_POLICY_TYPES]
    out: list[tuple[str, Finding]] = [(r.urn, f) for r in policies for f in _ssl_policy_findings(r)]
    for proxy in (r for r in resources if r.type in HTTPS_PROXIES):
        early = proxy.get("tlsEarlyData")
        if early not in EARLY_DATA:
            out.append((proxy.urn, f"{proxy.get('name')!r} accepts TLS early data {early!r}: 0-RTT requests can be "
                                   "replayed by anyone who saw them; expected tlsEarlyData absent, DISABLED or STRICT"))
        reference = proxy.get("sslPolicy")
        if reference is None:
            out.append((proxy.urn, f"{proxy.get('name')!r} has no SSL policy, so GCP's default applies (TLS 1.0 and "
                                   "1.1 allowed); expected sslPolicy naming a TLS 1.2 MODERN or RESTRICTED policy"))
        elif is_unknown(reference):
            # The policy's self link is known at apply; the stack must declare one, and every one it declares
            # is judged above, so whichever it names is compliant.
            if not policies:
                out.append((proxy.urn, f"{proxy.get('name')!r} names an SSL policy this stack does not declare; "
                                       "expected one of its own, judged here"))
        elif not any(_refers_to(reference, p) for p in policies):
            out.append((proxy.urn, f"{proxy.get('name')!r} uses SSL policy {reference!r}, which this stack does not "
                                   "declare; expected one of its own, judged here"))
    return out


def _redirects_everything(url_map: Resource) -> bool:
    redirect = as_map(url_map.get("defaultUrlRedirect"))
    return redirect.get("httpsRedirect") is True and not url_map.get("defaultService") \
        and not url_map.get("pathMatchers") and not url_map.get("hostRules")


FORWARDING_RULES = ("gcp:compute/globalForwardingRule:GlobalForwardingRule",)


def _forwarding_findings(resources: Sequence[Resource], redirects: Sequence[Resource],
                         maps: Sequence[Resource]) -> list[tuple[str, Finding]]:
    """A forwarding rule's `target` (pulumi_gcp compute/global_forwarding_rule.py: "The URL of the target resource
    to receive the matched traffic") is a target proxy this stack declares: port 443 to an HTTPS proxy (judged by
    PLAT-TLS-004), port 80 to an HTTP proxy whose URL map only redirects to HTTPS; no other port or target. A target
    unknown at preview (a proxy created by this deploy) is one of the stack's, all of which are judged."""
    https = [r for r in resources if r.type in HTTPS_PROXIES]
    http = [r for r in resources if r.type in HTTP_PROXIES]
    out: list[tuple[str, Finding]] = []
    for rule in (r for r in resources if r.type in FORWARDING_RULES):
        target, ports = rule.get("target"), str(rule.get("portRange") or "").strip()
        low, _, high = ports.partition("-")
        port = low if not high or high == low else ports  # "443" or "443-443"; a range is no single port
        name = rule.get("name")
        if port not in ("443", "80"):
            out.append((rule.urn, f"forwarding rule {name!r} forwards port(s) {ports or 'all'!r}; expected 443 to an "
                                  "HTTPS proxy or 80 to a redirect-only HTTP proxy"))
            continue
        if is_unknown(target):
            if not (https if port == "443" else http):
                out.append((rule.urn, f"forwarding rule {name!r} forwards {port} to a target this stack does not "
                                      "declare; expected one of its own proxies"))
            continue
        to_https = [p for p in https if _refers_to(target, p)]
        to_http = [p for p in http if _refers_to(target, p)]
        if port == "443" and not to_https:
            out.append((rule.urn, f"forwarding rule {name!r} forwards 443 to {target!r}, which is no HTTPS proxy of "
                                  "this stack; expected one judged by PLAT-TLS-004"))
        elif port == "80":
            redirecting = [p for p in to_http if any(_refers_to(p.get("urlMap"), m) for m in redirects)
                           and not any(_refers_to(p.get("urlMap"), m) and m not in redirects for m in maps)]
            if not redirecting:
                out.append((rule.urn, f"forwarding rule {name!r} forwards 80 to {target!r}, which is no HTTP proxy of "
                                      "this stack that only redirects to HTTPS; expected a redirect-only proxy (S1)"))
    return out


def check_plain_http(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-TLS-005."""
    maps = [r for r in resources if r.type in URL_MAPS]
    redirects = [m for m in maps if _redirects_everything(m)]
    out: list[tuple[str, Finding]] = _forwarding_findings(resources, redirects, maps)
    for proxy in (r for r in resources if r.type in HTTP_PROXIES):
        reference = proxy.get("urlMap")
        named = [m for m in maps if _refers_to(reference, m)]
        ok = (named and all(m in redirects for m in named)) or (is_unknown(reference) and redirects
                                                                 and len(redirects) >= sum(
                                                                     1 for r in resources if r.type in HTTP_PROXIES))
        if not ok:
            out.append((proxy.urn, f"plain-HTTP proxy {proxy.get('name')!r} serves URL map {reference!r}, which is "
                                   "not a "
                                   "redirect of everything to HTTPS; expected a URL map with only defaultUrlRedirect "
                                   "httpsRedirect true (S1)"))
    return out


# ---------------------------------------------------------------------------------------------
# Firewalls and Cloud Armor

FIREWALL = "gcp:compute/firewall:Firewall"
HEALTH_CHECKERS = frozenset({"35.191.0.0/16", "130.211.0.0/22"})


# An explicit allow set, not Python's `is_private` (which also counts ::ffff:0:0/96, the IPv4-mapped space of every
# address, and IANA special-purpose blocks such as 2001::/23 and 198.18.0.0/15 that are routable or spoofable from
# outside the VPC): RFC 1918, RFC 4193 unique-local IPv6, and Google's documented health-check ranges
# (cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges). IAP's 35.235.240.0/20
# (cloud.google.com/iap/docs/using-tcp-forwarding) is not admitted: nothing in this program uses IAP forwarding.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                           "fc00::/7"))


def _private(cidr: str) -> bool:
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return any(network.version == p.version and network.subnet_of(p) for p in PRIVATE_NETWORKS)  # pyright: ignore[reportArgumentType]


def check_firewall(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-NET-001."""
    if resource.type != FIREWALL:
        return NotApplicable("not a firewall rule")
    # Anything but exactly EGRESS is judged as ingress (pulumi_gcp compute/firewall.py `direction`: INGRESS or
    # EGRESS, default INGRESS): a lowercase or unknown direction is no reason to look away.
    if resource.get("direction") == "EGRESS" or (resource.get("denies") and not resource.get("allows")):
        return NotApplicable("an egress or deny rule")
    if resource.get("disabled") is True:
        return NotApplicable("a disabled rule")
    sources = resource.get("sourceRanges")
    if is_unknown(sources) or any(is_unknown(s) for s in as_list(sources)):
        return [f"firewall {resource.get('name')!r} admits sources not known until apply; expected private ranges"]
    ranges = [str(s) for s in as_list(sources)]
    if not ranges and not resource.get("sourceTags") and not resource.get("sourceServiceAccounts"):
        return [f"firewall {resource.get('name')!r} names no source, so GCP admits 0.0.0.0/0; expected private ranges "
                "or the load balancer's health checkers"]
    public = [c for c in ranges if not _private(c) and c not in HEALTH_CHECKERS]
    if public:
        return [f"firewall {resource.get('name')!r} admits {public} from the internet; expected private ranges or "
                f"only Google's health checkers {sorted(HEALTH_CHECKERS)}"]
    return []


ARMOR_TYPES = ("gcp:compute/securityPolicy:SecurityPolicy", "gcp:compute/regionSecurityPolicy:RegionSecurityPolicy")
DEFAULT_PRIORITY = 2147483647


def check_armor(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-NET-002."""
    if resource.type in BACKEND_SERVICES:
        return check_backend_armor(resource, config)
    if resource.type not in ARMOR_TYPES:
        return NotApplicable("not a Cloud Armor policy")
    rules = [as_map(x) for x in as_list(resource.get("rules"))]
    if is_unknown(resource.get("rules")) and resource.get("rules") is not None:
        return [f"Cloud Armor policy {resource.get('name')!r} has rules not known until apply; expected them known"]
    default = [x for x in rules if x.get("priority") == DEFAULT_PRIORITY]
    if not default:
        return [f"Cloud Armor policy {resource.get('name')!r} declares no default rule, so GCP's allows everyone; "
                "expected priority 2147483647 with action deny(403) or deny(404)"]
    action = default[0].get("action")
    if not (isinstance(action, str) and action.startswith("deny")):
        return [f"Cloud Armor policy {resource.get('name')!r} default rule action is {action!r}; expected deny"]
    out: list[str] = []
    for rule in rules:
        kind = rule.get("action")
        # A rule in preview is evaluated and logged but not enforced (cloud.google.com/armor/docs/
        # security-policy-overview#preview_mode): a deny in preview, the default's above all, denies nothing.
        if isinstance(kind, str) and kind.startswith("deny") and rule.get("preview") not in (None, False):
            out.append(f"Cloud Armor policy {resource.get('name')!r} rule {rule.get('priority')} ({kind}) is in "
                       "preview, so it only logs; expected every deny enforced (preview false)")
        if rule.get("priority") == DEFAULT_PRIORITY or rule.get("preview") is True \
                or (isinstance(kind, str) and kind.startswith("deny")):
            # A preview rule is only logged (cloud.google.com/armor/docs/security-policy-overview#preview_mode).
            continue
        expression = as_map(as_map(rule.get("match")).get("expr")).get("expression")
        if is_unknown(expression):
            continue  # the gate's value is created by this very deploy (a first preview): judged once it is known
        if not gated(expression):
            out.append(f"Cloud Armor policy {resource.get('name')!r} rule {rule.get('priority')} lets requests "
                       f"through ({kind!r}) without requiring the edge's {GATE_HEADER} header: any Cloudflare "
                       "customer's zone pointed at the load balancer passes it; expected an expression "
                       f"`request.headers['{GATE_HEADER}'] == '<value>' && (...)`")
    return out


def check_armor_stack(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-NET-002 over the stack: every policy and backend as check_armor judges it, and a backend's
    `securityPolicy` names a Cloud Armor policy this stack declares (by its name, the last segment of its id or
    self link `projects/{{project}}/global/securityPolicies/{{name}}`, pulumi_gcp compute/security_policy.py), or
    is unknown at preview (a policy created by this deploy: one of the stack's, all judged here). A policy the stack
    does not declare is one no rule has read: it may allow everyone."""
    policies = [r for r in resources if r.type in ARMOR_TYPES]
    out: list[tuple[str, Finding]] = []
    for r in resources:
        verdict = check_armor(r, config)
        if not isinstance(verdict, NotApplicable):
            out += [(r.urn, f) for f in verdict]
        if r.type in BACKEND_SERVICES and not isinstance(verdict, NotApplicable):
            policy = r.get("securityPolicy")
            if is_unknown(policy):
                if not policies:
                    out.append((r.urn, f"backend service {r.get('name')!r} names a Cloud Armor policy this stack does "
                                       "not declare; expected its own, judged here"))
            elif isinstance(policy, str) and policy.strip() and not any(_refers_to(policy, p) for p in policies):
                out.append((r.urn, f"backend service {r.get('name')!r} uses Cloud Armor policy {policy!r}, which this "
                                   "stack does not declare, so no rule has read what it allows; expected its own"))
    return out


BACKEND_SERVICES = ("gcp:compute/backendService:BackendService",)
EXTERNAL_SCHEMES = frozenset({"EXTERNAL_MANAGED", "EXTERNAL"})


def check_backend_armor(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-NET-002: an internet-facing backend service names its Cloud Armor policy; without one the load balancer
    forwards whatever reaches its address (pulumi_gcp compute/backend_service.py `security_policy`,
    `load_balancing_scheme` EXTERNAL / EXTERNAL_MANAGED; default EXTERNAL). Unknown at preview is the engine
    resolving the policy's self link, accepted."""
    if resource.type not in BACKEND_SERVICES:
        return NotApplicable("not a backend service")
    scheme = resource.get("loadBalancingScheme")
    if scheme is not None and scheme not in EXTERNAL_SCHEMES:
        return NotApplicable("an internal backend service")
    policy = resource.get("securityPolicy")
    if is_unknown(policy) or (isinstance(policy, str) and policy.strip()):
        return []
    return [f"backend service {resource.get('name')!r} ({scheme or 'EXTERNAL'}) names no Cloud Armor securityPolicy, "
            "so it serves whoever reaches the load balancer; expected the edge-only policy"]


GATE_HEADER = "x-origin-gate"
"""components/backends/cloudrun.py GATE_HEADER: added by our zone's transform rule alone (components/edge.py)."""
_GATE = re.compile(r"^request\.headers\['" + GATE_HEADER + r"'\] == '[A-Za-z0-9]{32,}' && \((?P<rest>.*)\)$")


def gated(expression: Any) -> bool:
    """Whether a CEL match expression requires the gate header of everything it matches: the header comparison
    ANDed with one parenthesised group that closes at the end (so no `||` escapes the header). Cloud Armor's
    language: cloud.google.com/armor/docs/rules-language-reference (`request.headers['name']`, `&&`, `||`)."""
    if not isinstance(expression, str):
        return False
    match = _GATE.match(" ".join(expression.split()))
    if match is None:
        return False
    depth = 0
    for char in match.group("rest"):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False  # the group closed before the end: `... && (a) || (b)`
    return depth == 0


def check_url_map(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-NET-003: the load balancer answers the hosts it names and nothing else. `defaultService` (or a
    `defaultRouteAction` with backends) serves every Host the host rules do not name: another Cloudflare
    customer's zone pointed at our address, a bare IP. A host rule `*` names every host. pulumi_gcp
    compute/url_map.py: "Only one of defaultRouteAction or defaultUrlRedirect must be set"; a host rule's
    `hosts` may hold `*` wildcards (cloud.google.com/load-balancing/docs/url-map-concepts#host-rules)."""
    if resource.type not in URL_MAPS:
        return NotApplicable("not a URL map")
    name = resource.get("name")
    out: list[str] = []
    if resource.get("defaultService") is not None:
        out.append(f"URL map {name!r} sends every Host its host rules do not name to "
                   f"{resource.get('defaultService')!r}; expected no defaultService, a defaultUrlRedirect away from us")
    if as_list(as_map(resource.get("defaultRouteAction")).get("weightedBackendServices")):
        out.append(f"URL map {name!r} routes every unnamed Host to backends (defaultRouteAction); expected none")
    for rule in map(as_map, as_list(resource.get("hostRules"))):
        wild = [h for h in as_list(rule.get("hosts")) if not isinstance(h, str) or "*" in h]
        if wild:
            out.append(f"URL map {name!r} host rule {wild} matches hosts it does not name; expected exact hosts")
    return out


# ---------------------------------------------------------------------------------------------
# VMs

INSTANCE_TYPES = ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate",
                  "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate",
                  "gcp:compute/instanceFromTemplate:InstanceFromTemplate")
_TRUE = ("true", "1", "yes", "y", "on")
_SCRIPT_KEYS = ("startup-script", "user-data", "shutdown-script", "windows-startup-script-ps1",
                "sysprep-specialize-script-ps1")
# A literal credential assigned in a script: NAME=value / NAME: value / --password value, where the name
# says what it is and the value is a literal, not a $reference or a command substitution.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b[A-Z0-9_.-]*(password|passwd|secret|token|api[_-]?key|private[_-]?key|access[_-]?key)[A-Z0-9_]*"
    r"\s*[=:]\s*['\"]?(?![$'\"\s]|\{\{)([^\s'\"$]{8,})")
_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# Other literal credential forms in a script or URL: an Authorization header with a literal value
# (RFC 9110 11.6.2, `Bearer`/`Basic`/`token`), `docker login -p/--password VALUE` (docs.docker.com/reference/cli/
# docker/login: --password-stdin is the supported form), userinfo in a URL (RFC 3986 3.2.1, `user:password@`),
# and a V4 signed URL (cloud.google.com/storage/docs/access-control/signed-urls: X-Goog-Signature is a bearer
# credential for the object until it expires).
_OTHER_FORMS = (
    (re.compile(r"(?i)authorization\s*:\s*(bearer|basic|token)\s+(?![$'\"\s]|\{\{)[^\s'\"$]{8,}"),
     "an Authorization header with a literal credential"),
    (re.compile(r"(?i)\bdocker\s+login\b[^\n;|&]*?\s(-p|--password)(\s+|=)['\"]?(?![$'\"\s])[^\s'\"$]+"),
     "docker login --password with a literal value"),
    (re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@'\"$]+:(?![$'\"\s])[^/\s@'\"$]+@"), "a URL with a password in it"),
    (re.compile(r"(?i)[?&](X-Goog-Signature|X-Amz-Signature|Signature|sig)="), "a signed URL (a bearer credential)"),
)


def metadata_secrets(metadata: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in metadata.items():
        if not isinstance(value, str):
            continue
        if _KEY_BLOCK.search(value):
            out.append(f"metadata {key!r} carries a private key")
        for match in _SECRET_ASSIGNMENT.finditer(value):
            target = re.split(r"[=:]", match.group(0))[0].strip()
            out.append(f"metadata {key!r} assigns a literal credential to {target!r}")
        for form, what in _OTHER_FORMS:
            if form.search(value):
                out.append(f"metadata {key!r} carries {what}")
        if key.lower() not in _SCRIPT_KEYS and re.search(r"(?i)(password|secret|token|api[_-]?key)", key):
            out.append(f"metadata key {key!r} holds a credential")
    return out


def check_vm_hardening(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-VM-004."""
    if resource.type not in INSTANCE_TYPES:
        return NotApplicable("not a VM")
    name = resource.get("name")
    metadata = as_map(resource.get("metadata"))
    out: list[str] = []
    serial = metadata.get("serial-port-enable", "false")
    if str(serial).lower() in _TRUE or is_unknown(serial):
        out.append(f"VM {name!r} enables its serial port, an interactive console outside the network's firewall; "
                   "expected serial-port-enable absent or false")
    if str(metadata.get("enable-oslogin", "")).lower() not in _TRUE:
        out.append(f"VM {name!r} does not set enable-oslogin TRUE, so SSH keys in metadata grant access without IAM; "
                   "expected enable-oslogin TRUE")
    if str(metadata.get("block-project-ssh-keys", "")).lower() not in _TRUE:
        out.append(f"VM {name!r} accepts project-wide SSH keys; expected block-project-ssh-keys TRUE")
    if as_map(resource.get("shieldedInstanceConfig")).get("enableSecureBoot") is not True:
        out.append(f"VM {name!r} does not use Shielded VM secure boot; expected "
                   "shieldedInstanceConfig.enableSecureBoot true")
    for interface in map(as_map, as_list(resource.get("networkInterfaces"))):
        if as_list(interface.get("accessConfigs")) or as_list(interface.get("ipv6AccessConfigs")):
            out.append(f"VM {name!r} has an external address (accessConfigs); expected none")
    out += [f"VM {name!r}: {m}; expected credentials read from Secret Manager at boot"
            for m in metadata_secrets(metadata)]
    if resource.get("metadataStartupScript") is not None:
        out += [f"VM {name!r}: {m}; expected credentials read from Secret Manager at boot"
                for m in metadata_secrets({"startup-script": resource.get("metadataStartupScript")})]
    return out


# ---------------------------------------------------------------------------------------------
# Flow logs and NAT logging

SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
ROUTER_NAT = "gcp:compute/routerNat:RouterNat"
NETWORK = "gcp:compute/network:Network"
# Subnets for proxies cannot carry flow logs (checkov's PURPOSE_EXCEPTIONS).
NO_FLOW_LOGS = ("INTERNAL_HTTPS_LOAD_BALANCER", "REGIONAL_MANAGED_PROXY", "GLOBAL_MANAGED_PROXY")


def check_network_logs(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-LOG-004."""
    if resource.type == SUBNETWORK:
        if resource.get("purpose") in NO_FLOW_LOGS:
            return NotApplicable("a proxy-only subnet cannot carry flow logs")
        log = as_map(resource.get("logConfig"))
        out: list[str] = []
        if not log:
            out.append(f"subnetwork {resource.get('name')!r} has no flow logs, so who read the database leaves no "
                       "network record (checkov CKV_GCP_26); expected logConfig")
        else:
            sampling = log.get("flowSampling", 0.5)
            if not isinstance(sampling, int | float) or sampling <= 0:
                out.append(f"subnetwork {resource.get('name')!r} samples flows at {sampling!r}; expected more than 0")
            if log.get("filterExpr") not in (None, "true"):
                out.append(f"subnetwork {resource.get('name')!r} filters its flow logs ({log.get('filterExpr')!r}); "
                           "expected every flow")
        return out
    if resource.type == ROUTER_NAT:
        log = as_map(resource.get("logConfig"))
        if log.get("enable") is not True or log.get("filter") not in ("ALL", "TRANSLATIONS_ONLY"):
            return [f"Cloud NAT {resource.get('name')!r} logs {dict(log) or 'nothing'}; expected logConfig enable true "
                    "with filter ALL (every connection it translates)"]
        return []
    if resource.type == NETWORK:
        # pulumi_gcp compute/network.py `auto_create_subnetworks`: "When set to true, the network is created in
        # 'auto subnet mode' and it will create a subnet for each region automatically" (default true); those
        # subnets carry no flow logs and no rule of this pack sees them.
        if resource.get("autoCreateSubnetworks") is not False:
            return [f"network {resource.get('name')!r} creates a subnet in every region (autoCreateSubnetworks "
                    f"{resource.get('autoCreateSubnetworks')!r}, default true), none with flow logs; expected "
                    "autoCreateSubnetworks false and subnetworks of its own"]
        return []
    return NotApplicable("not a subnetwork, network or NAT")
