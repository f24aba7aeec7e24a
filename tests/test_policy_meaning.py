"""Issue #22 items 9, 12 and 15 over Pulumi's Analyzer protocol: deny by default over resource types, and
each class of weakening refused while its compliant control at the boundary passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra.analyzer import AnalyzerInput, PolicyPackProcess
from infra.plan import Plan
from policies.pack import RULES_BY_ID
from policies.rules.reviewed_types import REFUSED, REVIEWED

ZONE = "7c9e1f3a5b7d4c6e8f0a1b2c3d4e5f60"


def _r(type_: str, name: str, props: dict[str, Any], stack: str = "prod") -> AnalyzerInput:
    return AnalyzerInput(f"urn:pulumi:{stack}::platform::{type_}::{name}", type_, name, props)


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure()
        yield process


def _mandatory(pack: PolicyPackProcess, resources: list[AnalyzerInput]) -> list[tuple[str, str]]:
    responses = [pack.analyze(r) for r in resources] + [pack.analyze_stack(resources)]
    return [(d.policyName, d.message) for resp in responses for d in resp.diagnostics if d.enforcementLevel == 1]


# ---------------------------------------------------------------------------------------------
# Item 9: an SSL policy is not an IAM grant; TLS 1.1 refused, TLS 1.2 passes

SSL_POLICY, HTTPS_PROXY = "gcp:compute/sSLPolicy:SSLPolicy", "gcp:compute/targetHttpsProxy:TargetHttpsProxy"


def _lb(version: str, profile: str = "MODERN", attached: bool = True) -> list[AnalyzerInput]:
    proxy: dict[str, Any] = {"name": "api-prod-https", "urlMap": "api-prod-urlmap"}
    if attached:
        proxy["sslPolicy"] = "projects/acme/global/sslPolicies/api-prod-tls12"
    return [_r(SSL_POLICY, "engine-ssl-policy", {"name": "api-prod-tls12", "minTlsVersion": version, "profile": profile}),
            _r(HTTPS_PROXY, "engine-https-proxy", proxy)]


def test_an_ssl_policy_of_tls_1_2_passes_and_is_no_iam_grant(pack: PolicyPackProcess) -> None:
    assert _mandatory(pack, _lb("TLS_1_2")) == []


@pytest.mark.parametrize(("version", "profile", "says"), [
    ("TLS_1_1", "MODERN", "minTlsVersion 'TLS_1_1'"),
    ("TLS_1_2", "COMPATIBLE", "profile 'COMPATIBLE'"),
    ("TLS_1_2", "CUSTOM", "profile 'CUSTOM'"),
])
def test_an_ssl_policy_below_tls_1_2_or_compatible_is_refused(pack: PolicyPackProcess, version: str, profile: str,
                                                               says: str) -> None:
    found = _mandatory(pack, _lb(version, profile))
    assert [rule for rule, _ in found] == ["PLAT-TLS-004"] and says in found[0][1], found


def test_an_https_proxy_without_an_ssl_policy_runs_gcps_default_and_is_refused(pack: PolicyPackProcess) -> None:
    found = _mandatory(pack, _lb("TLS_1_2", attached=False))
    assert any(rule == "PLAT-TLS-004" and "no SSL policy" in m for rule, m in found), found


@pytest.mark.parametrize("token", [
    "gcp:projects/iAMMember:IAMMember", "gcp:storage/bucketIAMBinding:BucketIAMBinding",
    "gcp:organizations/iAMPolicy:IAMPolicy", "gcp:projects/iAMCustomRole:IAMCustomRole",
    "gcp:iam/denyPolicy:DenyPolicy", "gcp:storage/objectACL:ObjectACL", "gcp:serviceaccount/key:Key",
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"])
def test_iam_types_are_still_grants(token: str) -> None:
    from policies.rule import Resource
    from policies.rules.iam_gcp import is_grant
    assert is_grant(Resource(token, "x", "urn:pulumi:prod::p::t::x", {}))


@pytest.mark.parametrize("token", [SSL_POLICY, "gcp:compute/securityPolicy:SecurityPolicy",
                                   "gcp:compute/resourcePolicy:ResourcePolicy", "gcp:dns/policy:Policy",
                                   "gcp:projects/iAMAuditConfig:IAMAuditConfig",
                                   "grafana:alerting/notificationPolicy:NotificationPolicy"])
def test_types_that_only_say_policy_are_not_grants(token: str) -> None:
    from policies.rule import Resource
    from policies.rules.iam_gcp import is_grant
    assert not is_grant(Resource(token, "x", "urn:pulumi:prod::p::t::x", {}))


# ---------------------------------------------------------------------------------------------
# Item 15: deny by default over types; POLICIES.md lists every type the program declares


def test_every_type_the_three_plans_declare_is_reviewed(committed_plans: dict[str, Plan]) -> None:
    declared = {r.type for plan in committed_plans.values() for r in plan.analyzer_inputs()}
    assert declared - set(REVIEWED) == set()


def test_every_reviewing_rule_exists_and_policies_md_lists_each_type() -> None:
    from pathlib import Path
    committed = (Path(__file__).resolve().parent.parent / "policies" / "POLICIES.md").read_text()
    assert all(rule in RULES_BY_ID for rules, _ in REVIEWED.values() for rule in rules)
    assert all(f"| `{t}` |" in committed for t in [*REVIEWED, *REFUSED])
    assert all(note for rules, note in REVIEWED.values() if not rules), "a type reviewed by nothing says why"


@pytest.mark.parametrize("token", ["cloudflare:index/pageRule:PageRule", "cloudflare:index/accessRule:AccessRule",
                                   "cloudflare:index/zoneSettingsOverride:ZoneSettingsOverride",
                                   "gcp:compute/projectMetadata:ProjectMetadata",
                                   "vercel:index/firewallBypass:FirewallBypass", "gcp:alloydb/cluster:Cluster"])
def test_a_type_no_rule_reviews_is_a_mandatory_violation(pack: PolicyPackProcess, token: str) -> None:
    found = _mandatory(pack, [_r(token, "x", {"zoneId": ZONE})])
    assert "PLAT-TYPE-001" in [rule for rule, _ in found], found


# ---------------------------------------------------------------------------------------------
# Item 15: meaning checks, each a refused case and its control at the boundary

VM = "gcp:compute/instance:Instance"
VM_OK: dict[str, Any] = {
    "name": "pocketbase-prod", "metadata": {"enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE"},
    "shieldedInstanceConfig": {"enableSecureBoot": True}, "networkInterfaces": [{"subnetwork": "s"}]}
FIREWALL = "gcp:compute/firewall:Firewall"
BUCKET = "gcp:storage/bucket:Bucket"


def _bucket(name: str, **changes: Any) -> AnalyzerInput:
    props: dict[str, Any] = {"name": name, "project": "acme", "publicAccessPrevention": "enforced",
                             "uniformBucketLevelAccess": True, "versioning": {"enabled": True},
                             "logging": {"logBucket": "acme-access-logs"}, **changes}
    return _r(BUCKET, name, props)


ACCESS_LOGS = _bucket("acme-access-logs", logging=None, versioning=None, labels={"platform-role": "access-logs"},
                      retentionPolicy={"retentionPeriod": 90 * 86400})
AUDIT = _r("gcp:projects/iAMAuditConfig:IAMAuditConfig", "audit", {
    "project": "acme", "service": "storage.googleapis.com",
    "auditLogConfigs": [{"logType": "DATA_READ"}, {"logType": "DATA_WRITE"}]})
DEFAULT_LOGS = _r("gcp:logging/projectBucketConfig:ProjectBucketConfig", "logs",
                  {"project": "acme", "bucketId": "_Default", "retentionDays": 90})
STORAGE_OK = [ACCESS_LOGS, _bucket("acme-backups"), AUDIT, DEFAULT_LOGS]
RULESET, RECORD = "cloudflare:index/ruleset:Ruleset", "cloudflare:index/dnsRecord:DnsRecord"
API = _r(RECORD, "api", {"zoneId": ZONE, "name": "api.acme.com", "type": "A", "proxied": True, "content": "192.0.2.1"})


def _headers(expression: str) -> AnalyzerInput:
    return _r(RULESET, "origin-auth", {"zoneId": ZONE, "kind": "zone", "phase": "http_request_late_transform", "rules": [
        {"action": "rewrite", "expression": expression, "actionParameters": {
            "headers": {"X-Origin-Auth": {"operation": "set", "value": "s" * 48}}}}]})


def _cache(expression: str) -> AnalyzerInput:
    return _r(RULESET, "cache", {"zoneId": ZONE, "kind": "zone", "phase": "http_request_cache_settings", "rules": [
        {"action": "set_cache_settings", "expression": expression, "actionParameters": {"cache": True}}]})


def _tunnel(*ingresses: dict[str, Any]) -> AnalyzerInput:
    return _r("cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig", "tunnel",
              {"config": {"ingresses": [*ingresses, {"service": "http_status:404"}]}}, stack="integration")


VERCEL = "vercel:index/project:Project"
VERCEL_OK: dict[str, Any] = {"name": "storefront", "gitForkProtection": True,
                             "vercelAuthentication": {"deploymentType": "standard_protection"}}
VERCEL_ENV = "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable"
RULE_GROUP = "grafana:alerting/ruleGroup:RuleGroup"


def _rules(*rules: dict[str, Any]) -> AnalyzerInput:
    return _r(RULE_GROUP, "alerting-rules", {"name": "platform-slos", "rules": list(rules)})


PAGE = {"severity": "page"}
CONTAINER = "docker:index/container:Container"
EXCLUSION = "gcp:logging/projectExclusion:ProjectExclusion"

FIREWALL_CONFIG = "vercel:index/firewallConfig:FirewallConfig"
EDGE_AUTH = "x-storefront-edge-auth"


def _production(condition: dict[str, Any]) -> dict[str, Any]:
    return {"conditions": [{"type": "environment", "op": "eq", "value": "production"}, condition]}


EDGE_DENY: dict[str, Any] = {
    "name": "edge only", "active": True, "action": {"action": "deny"}, "conditionGroups": [
        _production({"type": "header", "key": EDGE_AUTH, "op": "nex"}),
        _production({"type": "header", "key": EDGE_AUTH, "op": "eq", "value": "e" * 48, "neg": True})]}


def _vercel_firewall(*rules: dict[str, Any], enabled: bool = True, **changes: Any) -> AnalyzerInput:
    return _r(FIREWALL_CONFIG, "storefront-firewall", {"projectId": "prj", "enabled": enabled,
                                                       "rules": {"rules": list(rules)}, **changes})


SHOP = _r(RECORD, "shop", {"zoneId": ZONE, "name": "shop.acme.com", "type": "CNAME", "proxied": True,
                           "content": "cname.vercel-dns.com"})
SHOP_DOMAIN = _r("vercel:index/projectDomain:ProjectDomain", "shop-domain", {"projectId": "prj", "domain": "shop.acme.com"})


def _storefront_header(expression: str) -> AnalyzerInput:
    return _r(RULESET, "origin-auth", {"zoneId": ZONE, "kind": "zone", "phase": "http_request_late_transform", "rules": [
        {"action": "rewrite", "expression": expression, "actionParameters": {
            "headers": {EDGE_AUTH: {"operation": "set", "value": "e" * 48}}}}]})


ARMOR = "gcp:compute/securityPolicy:SecurityPolicy"
GATE = "request.headers['x-origin-gate'] == '" + "g" * 48 + "'"
ARMOR_DEFAULT = {"priority": 2147483647, "action": "deny(403)", "match": {
    "versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}}


def _armor(expression: str, action: str = "allow") -> AnalyzerInput:
    return _r(ARMOR, "armor", {"name": "api-prod-edge-only", "rules": [
        {"priority": 1000, "action": action, "match": {"expr": {"expression": expression}}}, ARMOR_DEFAULT]})


URL_MAP = "gcp:compute/uRLMap:URLMap"
API_ONLY: dict[str, Any] = {
    "name": "api-prod-urlmap", "hostRules": [{"hosts": ["api.acme.com", "api.acme.com:443"], "pathMatcher": "api"}],
    "pathMatchers": [{"name": "api", "defaultService": "backend"}],
    "defaultUrlRedirect": {"hostRedirect": "unknown-host.invalid", "pathRedirect": "/", "stripQuery": True}}

ACCESS_APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
ACCESS_POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
SERVICE_TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"
ACCOUNT = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _access(operators: dict[str, Any] | None = None, deploy: dict[str, Any] | None = None,
            app: dict[str, Any] | None = None, token: dict[str, Any] | None = None) -> list[AnalyzerInput]:
    """integration's Grafana behind Access (components/access.py), with `changes` to one of its parts."""
    return [
        _r(SERVICE_TOKEN, "grafana-access-deploy", {"accountId": ACCOUNT, "name": "integration deploy",
                                                    "duration": "8760h", **(token or {})}, stack="integration"),
        _r(ACCESS_POLICY, "grafana-access-operators", {
            "accountId": ACCOUNT, "name": "integration operators", "decision": "allow", "sessionDuration": "8h",
            "includes": [{"email": {"email": "oncall@acme.com"}}], **(operators or {})}, stack="integration"),
        _r(ACCESS_POLICY, "grafana-access-deploy", {
            "accountId": ACCOUNT, "name": "integration deploy", "decision": "non_identity",
            "includes": [{"serviceToken": {"tokenId": "grafana-access-deploy_id"}}], **(deploy or {})},
            stack="integration"),
        _r(ACCESS_APP, "grafana-access-app", {
            "zoneId": ZONE, "name": "integration grafana.acme.com", "domain": "grafana.acme.com", "type": "self_hosted",
            "sessionDuration": "8h", "policies": [{"id": "grafana-access-operators_id", "precedence": 1},
                                                  {"id": "grafana-access-deploy_id", "precedence": 2}], **(app or {})},
            stack="integration")]


GRAFANA_ROUTE = {"hostname": "grafana.acme.com", "service": "http://grafana:3000"}


TLS_KEY = "tls:index/privateKey:PrivateKey"
TLS_CERT = "tls:index/selfSignedCert:SelfSignedCert"
# components/database.py: PocketBase's self-signed certificate for the VMs' private addresses, pinned by the engine.
KEY_OK = {"algorithm": "ECDSA", "ecdsaCurve": "P256"}
CERT_OK: dict[str, Any] = {"subject": {"commonName": "pocketbase-prod"}, "ipAddresses": ["10.20.0.5", "10.30.0.5"],
                           "validityPeriodHours": 2 * 365 * 24, "earlyRenewalHours": 120 * 24,
                           "isCaCertificate": False, "allowedUses": ["digital_signature", "key_encipherment",
                                                                     "server_auth"]}


def _cert(**changes: Any) -> AnalyzerInput:
    return _r(TLS_CERT, "database-tls-cert", {**CERT_OK, **changes})


BACKEND = "gcp:compute/backendService:BackendService"


def _vm_meta(extra: dict[str, Any]) -> AnalyzerInput:
    return _r(VM, "db", {**VM_OK, "metadata": {**VM_OK["metadata"], **extra}})


def _vm_script(script: str) -> AnalyzerInput:
    return _vm_meta({"startup-script": script})


def _mounts(host_path: str) -> AnalyzerInput:
    return _r(CONTAINER, "c", {"name": "c", "volumes": [{"hostPath": host_path, "containerPath": "/data"}]})


# class -> (rule, compliant resources, refused resources)
CASES: dict[str, tuple[str, list[AnalyzerInput], list[AnalyzerInput]]] = {
    "vm external address": ("PLAT-VM-004", [_r(VM, "db", VM_OK)], [_r(VM, "db", {
        **VM_OK, "networkInterfaces": [{"subnetwork": "s", "accessConfigs": [{}]}]})]),
    "vm serial port": ("PLAT-VM-004", [_r(VM, "db", {**VM_OK, "metadata": {**VM_OK["metadata"], "serial-port-enable": "FALSE"}})],
                       [_r(VM, "db", {**VM_OK, "metadata": {**VM_OK["metadata"], "serial-port-enable": "TRUE"}})]),
    "vm without os login": ("PLAT-VM-004", [_r(VM, "db", VM_OK)],
                            [_r(VM, "db", {**VM_OK, "metadata": {"block-project-ssh-keys": "TRUE"}})]),
    "vm without secure boot": ("PLAT-VM-004", [_r(VM, "db", VM_OK)], [_r(VM, "db", {
        **VM_OK, "shieldedInstanceConfig": {"enableSecureBoot": False}})]),
    "vm startup script with a literal secret": (
        "PLAT-VM-004", [_r(VM, "db", {**VM_OK, "metadata": {**VM_OK["metadata"],
                                                            "startup-script": "PB_PASSWORD=$(gcloud secrets versions access latest)"}})],
        [_r(VM, "db", {**VM_OK, "metadata": {**VM_OK["metadata"], "startup-script": "export PB_PASSWORD=hunter2hunter2"}})]),
    "firewall open to the internet": ("PLAT-NET-001", [_r(FIREWALL, "hc", {
        "name": "hc", "direction": "INGRESS", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22", "10.20.0.0/24"]})],
        [_r(FIREWALL, "open", {"name": "open", "direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"]})]),
    "firewall without sources": ("PLAT-NET-001", [_r(FIREWALL, "x", {"name": "x", "sourceRanges": ["10.0.0.0/8"]})],
                                 [_r(FIREWALL, "x", {"name": "x", "direction": "INGRESS"})]),
    "cloud armor default allow": ("PLAT-NET-002", [_r("gcp:compute/securityPolicy:SecurityPolicy", "armor", {
        "name": "a", "rules": [{"priority": 2147483647, "action": "deny(403)"}]})],
        [_r("gcp:compute/securityPolicy:SecurityPolicy", "armor", {
            "name": "a", "rules": [{"priority": 1000, "action": "allow"}, {"priority": 2147483647, "action": "allow"}]})]),
    "plain http frontend serving": (
        "PLAT-TLS-005",
        [_r("gcp:compute/uRLMap:URLMap", "redirect", {"name": "api-redirect", "defaultUrlRedirect": {"httpsRedirect": True}}),
         _r("gcp:compute/targetHttpProxy:TargetHttpProxy", "http", {"name": "api-http", "urlMap": "api-redirect"})],
        [_r("gcp:compute/uRLMap:URLMap", "urlmap", {"name": "api-urlmap", "defaultService": "backend"}),
         _r("gcp:compute/targetHttpProxy:TargetHttpProxy", "http", {"name": "api-http", "urlMap": "api-urlmap"})]),
    "nat without logging": ("PLAT-LOG-004", [_r("gcp:compute/routerNat:RouterNat", "nat", {
        "name": "n", "logConfig": {"enable": True, "filter": "ALL"}})],
        [_r("gcp:compute/routerNat:RouterNat", "nat", {"name": "n", "logConfig": {"enable": True, "filter": "ERRORS_ONLY"}})]),
    "subnet without flow logs": ("PLAT-LOG-004", [_r("gcp:compute/subnetwork:Subnetwork", "s", {
        "name": "s", "logConfig": {"flowSampling": 1.0}})], [_r("gcp:compute/subnetwork:Subnetwork", "s", {"name": "s"})]),
    "bucket public access not enforced": ("PLAT-DATA-008", STORAGE_OK, [
        ACCESS_LOGS, _bucket("acme-backups", publicAccessPrevention="inherited"), AUDIT, DEFAULT_LOGS]),
    "bucket without versioning": ("PLAT-DATA-008", STORAGE_OK, [
        ACCESS_LOGS, _bucket("acme-backups", versioning={"enabled": False}), AUDIT, DEFAULT_LOGS]),
    "bucket without access logging": ("PLAT-DATA-008", STORAGE_OK, [
        ACCESS_LOGS, _bucket("acme-backups", logging=None), AUDIT, DEFAULT_LOGS]),
    "access logs kept 89 days": ("PLAT-DATA-008", STORAGE_OK, [
        _bucket("acme-access-logs", logging=None, versioning=None, labels={"platform-role": "access-logs"},
                retentionPolicy={"retentionPeriod": 89 * 86400}), _bucket("acme-backups"), AUDIT, DEFAULT_LOGS]),
    "no data access audit logs": ("PLAT-LOG-003", STORAGE_OK, [ACCESS_LOGS, _bucket("acme-backups"), DEFAULT_LOGS]),
    "audit config exempting a member": ("PLAT-LOG-003", STORAGE_OK, [ACCESS_LOGS, _bucket("acme-backups"), DEFAULT_LOGS, _r(
        "gcp:projects/iAMAuditConfig:IAMAuditConfig", "audit", {"project": "acme", "service": "storage.googleapis.com",
        "auditLogConfigs": [{"logType": "DATA_READ", "exemptedMembers": ["serviceAccount:dr@acme.iam.gserviceaccount.com"]},
                            {"logType": "DATA_WRITE"}]})]),
    "object acl for allusers": ("PLAT-IAM-004", STORAGE_OK, [*STORAGE_OK, _r(
        "gcp:storage/objectACL:ObjectACL", "acl", {"bucket": "acme-backups", "object": "pb.zip",
                                                   "roleEntities": ["READER:allUsers"]})]),
    "log exclusion over audit logs": ("PLAT-LOG-005", [_r(EXCLUSION, "ex", {
        "name": "ex", "filter": 'resource.type="gcs_bucket" AND NOT logName:"cloudaudit.googleapis.com"'})],
        [_r(EXCLUSION, "ex", {"name": "ex", "filter": 'resource.type="gcs_bucket"'})]),
    "ns delegation of a tenant subdomain": ("PLAT-DNS-002", [API], [API, _r(RECORD, "delegate", {
        "zoneId": ZONE, "name": "demo.acme.com", "type": "NS", "content": "ns1.attacker.example"})]),
    "cache rule over an authenticated path": (
        "PLAT-EDGE-001", [_cache('http.host eq "api.acme.com" and starts_with(http.request.uri.path, "/v1/catalog/")')],
        [_cache('http.host eq "api.acme.com" and starts_with(http.request.uri.path, "/v1/orders/")')]),
    "origin secret sent to every host": ("PLAT-EDGE-002", [API, _headers('http.host eq "api.acme.com"')],
                                         [API, _headers("true")]),
    "origin secret sent to a host the stack does not proxy": (
        "PLAT-EDGE-002", [API, _headers('http.host in {"api.acme.com"}')],
        [API, _headers('http.host in {"api.acme.com" "collector.attacker.example"}')]),
    "configuration rule turning the waf off": ("PLAT-EDGE-004", [_r(RULESET, "cfg", {
        "zoneId": ZONE, "phase": "http_config_settings", "rules": [
            {"action": "set_config", "expression": "true", "actionParameters": {"securityLevel": "high"}}]})],
        [_r(RULESET, "cfg", {"zoneId": ZONE, "phase": "http_config_settings", "rules": [
            {"action": "set_config", "expression": "true", "actionParameters": {"securityLevel": "off"}}]})]),
    "tunnel route to the pocketbase admin ui": (
        "PLAT-EDGE-003", [_tunnel({"hostname": "api.acme.com", "service": "http://commission-engine:8000"})],
        [_tunnel({"hostname": "api.acme.com", "service": "http://commission-engine:8000"},
                 {"hostname": "db.acme.com", "path": "/_/", "service": "http://pocketbase:8090"})]),
    "vercel fork protection off": ("PLAT-FE-001", [_r(VERCEL, "sf", VERCEL_OK)],
                                   [_r(VERCEL, "sf", {**VERCEL_OK, "gitForkProtection": False})]),
    "vercel previews unprotected": ("PLAT-FE-001", [_r(VERCEL, "sf", {**VERCEL_OK, "vercelAuthentication": {
        "deploymentType": "only_preview_deployments"}})],
        [_r(VERCEL, "sf", {**VERCEL_OK, "vercelAuthentication": {"deploymentType": "none"}})]),
    "vercel sensitive variable in previews": (
        "PLAT-FE-002", [_r(VERCEL_ENV, "env", {"key": "REVALIDATE_TOKEN", "sensitive": True, "targets": ["production"]})],
        [_r(VERCEL_ENV, "env", {"key": "REVALIDATE_TOKEN", "sensitive": True, "targets": ["production", "preview"]})]),
    "grafana contact point over http": (
        "PLAT-OBS-001", [_r("grafana:alerting/contactPoint:ContactPoint", "cp", {"name": "c", "webhooks": [{"url": "https://hooks.example/x"}]})],
        [_r("grafana:alerting/contactPoint:ContactPoint", "cp", {"name": "c", "webhooks": [{"url": "http://hooks.example/x"}]})]),
    "grafana paused rule": ("PLAT-OBS-001", [_rules({"name": "A", "isPaused": False, "labels": PAGE, "noDataState": "NoData"})],
                            [_rules({"name": "A", "isPaused": True, "labels": PAGE, "noDataState": "NoData"})]),
    "grafana paging rule no data ok": (
        "PLAT-OBS-001",
        [_rules({"name": "Lag", "labels": PAGE, "noDataState": "OK", "annotations": {"no_data_paged_by": "Missing"}},
                {"name": "Missing", "labels": PAGE, "noDataState": "Alerting"})],
        [_rules({"name": "Lag", "labels": PAGE, "noDataState": "OK", "annotations": {"no_data_paged_by": "Missing"}},
                {"name": "Missing", "labels": PAGE, "noDataState": "OK"})]),
    "privileged container": ("PLAT-CTR-001", [_r(CONTAINER, "c", {"name": "c", "privileged": False})],
                             [_r(CONTAINER, "c", {"name": "c", "privileged": True})]),
    "container with docker socket": ("PLAT-CTR-001", [_r(CONTAINER, "c", {"name": "c", "volumes": [
        {"hostPath": "/sys/fs/cgroup", "containerPath": "/sys/fs/cgroup", "readOnly": True}]})],
        [_r(CONTAINER, "c", {"name": "c", "volumes": [
            {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True}]})]),
    "literal secret on a container's command line": (
        "PLAT-DATA-009", [_r(CONTAINER, "cache", {"name": "redis", "command": [
            "sh", "-c", 'exec redis-server --requirepass "$REDIS_PASSWORD"']}, stack="integration")],
        [_r(CONTAINER, "cache", {"name": "redis", "command": ["redis-server", "--requirepass", "hunter2hunter2"]},
            stack="integration")]),
    "literal secret in cloud run args": (
        "PLAT-DATA-009", [_r("gcp:cloudrunv2/service:Service", "svc", {"name": "svc", "template": {"containers": [
            {"image": "i", "args": ["--port=8000"]}]}})],
        [_r("gcp:cloudrunv2/service:Service", "svc", {"name": "svc", "template": {"containers": [
            {"image": "i", "args": ["--api-key=abcd1234efgh5678"]}]}})]),
    # The storefront answers production only what the edge forwarded (#22.5, Vercel's firewall).
    "vercel firewall disabled": ("PLAT-FE-003", [_vercel_firewall(EDGE_DENY)],
                                 [_vercel_firewall(EDGE_DENY, enabled=False)]),
    "vercel firewall without the edge deny": ("PLAT-FE-003", [_vercel_firewall(EDGE_DENY)], [_vercel_firewall(
        {**EDGE_DENY, "conditionGroups": EDGE_DENY["conditionGroups"][:1]})]),
    "vercel firewall edge rule that only logs": ("PLAT-FE-003", [_vercel_firewall(EDGE_DENY)],
                                                 [_vercel_firewall({**EDGE_DENY, "action": {"action": "log"}})]),
    "vercel firewall edge deny narrowed to a path": ("PLAT-FE-003", [_vercel_firewall(EDGE_DENY)], [_vercel_firewall(
        {**EDGE_DENY, "conditionGroups": [
            {"conditions": [*g["conditions"], {"type": "path", "op": "pre", "value": "/checkout"}]}
            for g in EDGE_DENY["conditionGroups"]]})]),
    "vercel firewall bypass around the edge deny": (
        "PLAT-FE-003", [_vercel_firewall({"name": "bots", "active": True, "action": {"action": "challenge"},
                                          "conditionGroups": [{"conditions": [{"type": "path", "op": "pre",
                                                                               "value": "/api"}]}]}, EDGE_DENY)],
        [_vercel_firewall({"name": "partners", "active": True, "action": {"action": "bypass"},
                           "conditionGroups": [{"conditions": [{"type": "user_agent", "op": "sub",
                                                                "value": "partner"}]}]}, EDGE_DENY)]),
    "vercel firewall ip rule bypassing": (
        "PLAT-FE-003", [_vercel_firewall(EDGE_DENY, ipRules={"rules": [
            {"action": "deny", "hostname": "shop.acme.com", "ip": "203.0.113.0/24"}]})],
        [_vercel_firewall(EDGE_DENY, ipRules={"rules": [
            {"action": "bypass", "hostname": "shop.acme.com", "ip": "203.0.113.0/24"}]})]),
    # Cloud Armor admits only Cloudflare's addresses carrying the edge's gate header (#22.5).
    "cloud armor allow without the gate header": (
        "PLAT-NET-002", [_armor(f"{GATE} && (inIpRange(origin.ip, '173.245.48.0/20') || "
                                "inIpRange(origin.ip, '103.21.244.0/22'))")],
        [_armor("inIpRange(origin.ip, '173.245.48.0/20') || inIpRange(origin.ip, '103.21.244.0/22')")]),
    "cloud armor gate header only on one side of an or": (
        "PLAT-NET-002", [_armor(f"{GATE} && (inIpRange(origin.ip, '173.245.48.0/20'))")],
        [_armor(f"{GATE} && inIpRange(origin.ip, '173.245.48.0/20') || inIpRange(origin.ip, '103.21.244.0/22')")]),
    "cloud armor throttle without the gate header": (
        "PLAT-NET-002", [_armor(f"{GATE} && (inIpRange(origin.ip, '173.245.48.0/20'))", "throttle")],
        [_armor("inIpRange(origin.ip, '173.245.48.0/20')", "throttle")]),
    # The load balancer answers the API's host alone (#22.5).
    "url map default service": ("PLAT-NET-003", [_r(URL_MAP, "urlmap", API_ONLY)],
                                [_r(URL_MAP, "urlmap", {**API_ONLY, "defaultUrlRedirect": None,
                                                        "defaultService": "backend"})]),
    "url map host rule for any host": ("PLAT-NET-003", [_r(URL_MAP, "urlmap", API_ONLY)], [_r(URL_MAP, "urlmap", {
        **API_ONLY, "hostRules": [{"hosts": ["*"], "pathMatcher": "api"}]})]),
    # The storefront's edge header goes to the storefront's hosts alone (#22.5).
    "storefront header sent to the api host": (
        "PLAT-EDGE-002", [API, SHOP, SHOP_DOMAIN, _storefront_header('http.host in {"shop.acme.com"}')],
        [API, SHOP, SHOP_DOMAIN, _storefront_header('http.host in {"shop.acme.com" "api.acme.com"}')]),
    # integration's Grafana behind Cloudflare Access (#22.11).
    "access policy admitting everyone": ("PLAT-EDGE-005", _access(), _access(operators={"includes": [{"everyone": {}}]})),
    "access policy admitting an e-mail domain": (
        "PLAT-EDGE-005", _access(), _access(operators={"includes": [{"emailDomain": {"domain": "gmail.com"}}]})),
    "access bypass policy": ("PLAT-EDGE-005", _access(), _access(operators={"decision": "bypass"})),
    "access service auth for any token": (
        "PLAT-EDGE-005", _access(), _access(deploy={"includes": [{"anyValidServiceToken": {}}]})),
    "access service auth for a second token": (
        "PLAT-EDGE-005", _access(), _access(deploy={"includes": [
            {"serviceToken": {"tokenId": "grafana-access-deploy_id"}}, {"serviceToken": {"tokenId": "ci_id"}}]})),
    "access session of a month": ("PLAT-EDGE-005", _access(), _access(app={"sessionDuration": "720h"})),
    "access policy session of a month": ("PLAT-EDGE-005", _access(), _access(operators={"sessionDuration": "720h"})),
    "access service token forever": ("PLAT-EDGE-005", _access(), _access(token={"duration": "forever"})),
    "access application without policies": ("PLAT-EDGE-005", _access(), _access(app={"policies": []})),
    "access preflight bypass": ("PLAT-EDGE-005", _access(), _access(app={"optionsPreflightBypass": True})),
    "tunnel route to grafana without access": (
        "PLAT-EDGE-003", [_tunnel(GRAFANA_ROUTE), *_access()], [_tunnel(GRAFANA_ROUTE)]),
    # PocketBase's own TLS (#22.7): a server certificate for private addresses, from a strong key.
    "tls key rsa 2048": ("PLAT-TLS-006", [_r(TLS_KEY, "k", {"algorithm": "RSA", "rsaBits": 3072})],
                         [_r(TLS_KEY, "k", {"algorithm": "RSA", "rsaBits": 2048})]),
    "tls key rsa default bits": ("PLAT-TLS-006", [_r(TLS_KEY, "k", KEY_OK)], [_r(TLS_KEY, "k", {"algorithm": "RSA"})]),
    "tls key ecdsa p224": ("PLAT-TLS-006", [_r(TLS_KEY, "k", {"algorithm": "ECDSA", "ecdsaCurve": "P384"})],
                           [_r(TLS_KEY, "k", {"algorithm": "ECDSA", "ecdsaCurve": "P224"})]),
    "tls certificate that is a ca": ("PLAT-TLS-006", [_cert()], [_cert(isCaCertificate=True)]),
    "tls certificate signing certificates": ("PLAT-TLS-006", [_cert()], [_cert(
        allowedUses=["digital_signature", "key_encipherment", "server_auth", "cert_signing"])]),
    "tls certificate for client auth": ("PLAT-TLS-006", [_cert(allowedUses=["server_auth"])],
                                        [_cert(allowedUses=["server_auth", "client_auth"])]),
    "tls certificate valid ten years": ("PLAT-TLS-006", [_cert(validityPeriodHours=825 * 24)],
                                        [_cert(validityPeriodHours=826 * 24)]),
    "tls certificate for a public address": ("PLAT-TLS-006", [_cert(ipAddresses=["192.168.1.5", "172.16.0.9"])],
                                             [_cert(ipAddresses=["10.20.0.5", "34.120.0.7"])]),
    "tls certificate for a public dns name": ("PLAT-TLS-006", [_cert()], [_cert(dnsNames=["api.acme.com"])]),
    "tls certificate for a uri": ("PLAT-TLS-006", [_cert()], [_cert(uris=["spiffe://acme/pb"])]),
    # The outside audit's gaps (#22 item 15).
    "cloud armor default deny in preview": ("PLAT-NET-002", [_armor(f"{GATE} && (inIpRange(origin.ip, '173.245.48.0/20'))")],
                                            [_r(ARMOR, "armor", {"name": "a", "rules": [
                                                {**ARMOR_DEFAULT, "preview": True}]})]),
    "cloud armor allow of every address": ("PLAT-NET-002", [_armor(f"{GATE} && (inIpRange(origin.ip, '173.245.48.0/20'))")],
                                           [_r(ARMOR, "armor", {"name": "a", "rules": [
                                               {"priority": 1000, "action": "allow", "match": {
                                                   "versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["::/0"]}}},
                                               ARMOR_DEFAULT]})]),
    "external backend without cloud armor": (
        "PLAT-NET-002", [_armor(f"{GATE} && (inIpRange(origin.ip, '173.245.48.0/20'))"),
                         _r(BACKEND, "backend", {"name": "b", "loadBalancingScheme": "EXTERNAL_MANAGED",
                                                 "securityPolicy": "api-prod-edge-only"})],
        [_r(BACKEND, "backend", {"name": "b", "loadBalancingScheme": "EXTERNAL_MANAGED"})]),
    "vm startup script with a bearer token": (
        "PLAT-VM-004", [_vm_script("curl -H \"Authorization: Bearer $(gcloud auth print-access-token)\" https://x")],
        [_vm_script("curl -H 'Authorization: Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789' https://x")]),
    "vm startup script docker login password": (
        "PLAT-VM-004", [_vm_script("gcloud auth print-access-token | docker login -u oauth2accesstoken --password-stdin x")],
        [_vm_script("docker login --password hunter2hunter2 -u me registry.example")]),
    "vm startup script url userinfo": (
        "PLAT-VM-004", [_vm_script("git clone https://github.com/acme/app.git")],
        [_vm_script("git clone https://me:ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/acme/app.git")]),
    "vm signed startup script url": (
        "PLAT-VM-004", [_vm_meta({"startup-script-url": "gs://acme-boot/startup.sh"})],
        [_vm_meta({"startup-script-url": "https://storage.googleapis.com/acme-boot/s.sh?X-Goog-Algorithm=GOOG4-RSA-SHA256"
                                         "&X-Goog-Signature=0123456789abcdef"})]),
    "container mounting the host root": ("PLAT-CTR-001", [_mounts("/srv/data")], [_mounts("/")]),
    "container mounting /var/run": ("PLAT-CTR-001", [_mounts("/var/lib/app")], [_mounts("/var/run/")]),
    "container mounting /run": ("PLAT-CTR-001", [_mounts("/srv/run")], [_mounts("/run")]),
    "container mounting a socket via dot segments": ("PLAT-CTR-001", [_mounts("/srv/data")],
                                                     [_mounts("/srv/../var/./run//docker.sock")]),
    "container on the host network": ("PLAT-CTR-001", [_r(CONTAINER, "c", {"name": "c", "networkMode": "bridge"})],
                                      [_r(CONTAINER, "c", {"name": "c", "networkMode": "host"})]),
    "container seccomp unconfined": ("PLAT-CTR-001", [_r(CONTAINER, "c", {"name": "c", "securityOpts": ["no-new-privileges"]})],
                                     [_r(CONTAINER, "c", {"name": "c", "securityOpts": ["seccomp=unconfined"]})]),
    "container apparmor unconfined": ("PLAT-CTR-001", [_r(CONTAINER, "c", {"name": "c", "securityOpts": ["no-new-privileges"]})],
                                      [_r(CONTAINER, "c", {"name": "c", "securityOpts": ["apparmor:unconfined"]})]),
    "tunnel route to the engine's internal listener": (
        "PLAT-EDGE-003", [_tunnel({"hostname": "api.acme.com", "service": "http://commission-engine:8000"})],
        [_tunnel({"hostname": "api.acme.com", "service": "http://commission-engine:8000"},
                 {"hostname": "metrics.acme.com", "service": "http://commission-engine:9000"})]),
    "tunnel route to prometheus": (
        "PLAT-EDGE-003", [_tunnel(GRAFANA_ROUTE), *_access()],
        [_tunnel(GRAFANA_ROUTE, {"hostname": "metrics.acme.com", "service": "http://prometheus:9090"}), *_access()]),
    "firewall from ipv4-mapped space": ("PLAT-NET-001", [_r(FIREWALL, "x", {"name": "x", "sourceRanges": ["fd00::/8"]})],
                                        [_r(FIREWALL, "x", {"name": "x", "sourceRanges": ["::ffff:0:0/96"]})]),
    "firewall from ietf protocol space": ("PLAT-NET-001", [_r(FIREWALL, "x", {"name": "x", "sourceRanges": ["172.16.0.0/12"]})],
                                          [_r(FIREWALL, "x", {"name": "x", "sourceRanges": ["2001::/23"]})]),
    "firewall from shared address space": ("PLAT-NET-001", [_r(FIREWALL, "x", {"name": "x", "sourceRanges": ["192.168.0.0/16"]})],
                                           [_r(FIREWALL, "x", {"name": "x", "sourceRanges": ["198.18.0.0/15"]})]),
    "vercel undeclared variable in previews": (
        "PLAT-FE-002", [_r(VERCEL_ENV, "env", {"key": "NEXT_PUBLIC_API_URL", "targets": ["production", "preview"]})],
        [_r(VERCEL_ENV, "env", {"key": "STRIPE_SK_LIVE", "targets": ["production", "preview"]})]),
    "grafana webhook without tls verification": (
        "PLAT-OBS-001", [_r("grafana:alerting/contactPoint:ContactPoint", "cp", {"name": "c", "webhooks": [
            {"url": "https://hooks.example/x", "tlsConfig": {"insecureSkipVerify": "false"}}]})],
        [_r("grafana:alerting/contactPoint:ContactPoint", "cp", {"name": "c", "webhooks": [
            {"url": "https://hooks.example/x", "tlsConfig": {"insecureSkipVerify": "true"}}]})]),
    # Generated credentials and secret values (#22, second outside pass, case 22).
    "generated password under 16 characters": (
        "PLAT-SECRET-001", [_r("random:index/randomPassword:RandomPassword", "p", {"length": 16})],
        [_r("random:index/randomPassword:RandomPassword", "p", {"length": 15})]),
    "secret version in plain text": (
        "PLAT-SECRET-001", [_r("gcp:secretmanager/secretVersion:SecretVersion", "v", {"secret": "s", "secretData": {
            "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "AKIAPLAINTEXTKEY0001"}})],
        [_r("gcp:secretmanager/secretVersion:SecretVersion", "v", {"secret": "s", "secretData": "AKIAPLAINTEXTKEY0001"})]),
    "cloudflare provider with another base url": (
        "PLAT-PROV-001", [_r("pulumi:providers:cloudflare", "cf", {"version": "6.4.0"})],
        [_r("pulumi:providers:cloudflare", "cf", {"baseUrl": "https://evil.example/client/v4"})]),
    "gcp provider with a custom endpoint": (
        "PLAT-PROV-001", [_r("pulumi:providers:gcp", "g", {"project": "acme-prod", "region": "europe-west1"})],
        [_r("pulumi:providers:gcp", "g", {"project": "acme-prod", "computeCustomEndpoint": "https://evil.example/"})]),
    "grafana provider over http": (
        "PLAT-PROV-001", [_r("pulumi:providers:grafana", "grafana-selfhosted", {
            "url": "https://grafana.acme.com", "auth": "admin:x", "httpHeaders": '{"cf-access-client-id":"a"}'},
            stack="integration")],
        [_r("pulumi:providers:grafana", "grafana-selfhosted", {"url": "http://grafana.acme.com", "auth": "admin:x"},
            stack="integration")]),
    "grafana provider skipping tls verification": (
        "PLAT-PROV-001", [_r("pulumi:providers:grafana", "g", {"url": "https://grafana.acme.com"}, stack="integration")],
        [_r("pulumi:providers:grafana", "g", {"url": "https://grafana.acme.com", "insecureSkipVerify": "true"},
            stack="integration")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_weakening_is_refused_and_its_control_passes(pack: PolicyPackProcess, case: str) -> None:
    rule, compliant, refused = CASES[case]

    passed = [(r, m) for r, m in _mandatory(pack, compliant) if r == rule]
    caught = [(r, m) for r, m in _mandatory(pack, refused) if r == rule]

    assert passed == [], passed
    assert caught, f"{case}: {rule} did not refuse it"


# ---------------------------------------------------------------------------------------------
# Item 12 in the program: prod's plan declares the record of every read


def test_prods_buckets_log_every_request_and_data_access_is_audited_90_days(committed_plans: dict[str, Plan]) -> None:
    prod = committed_plans["prod"]
    buckets = {r.inputs["name"]: r.inputs for r in prod.resources if r.type == BUCKET}
    logs = [b for b in buckets.values() if b.get("labels", {}).get("platform-role") == "access-logs"]
    audits = [r.inputs for r in prod.resources if r.type == "gcp:projects/iAMAuditConfig:IAMAuditConfig"]

    assert len(logs) == 1 and int(logs[0]["retentionPolicy"]["retentionPeriod"]) >= 90 * 86400
    dr = [b for b in buckets.values() if b.get("labels", {}).get("platform-role") == "pocketbase-dr"]
    assert len(dr) == 2 and all(b["logging"]["logBucket"] == logs[0]["name"] for b in dr)
    assert [(a["service"], sorted(c["logType"] for c in a["auditLogConfigs"])) for a in audits] \
        == [("storage.googleapis.com", ["DATA_READ", "DATA_WRITE"])]
    subnets = [r.inputs for r in prod.resources if r.type == "gcp:compute/subnetwork:Subnetwork"]
    assert subnets and all(s["logConfig"]["flowSampling"] == 1 for s in subnets)
    proxies = [r.inputs for r in prod.resources if r.type == HTTPS_PROXY]
    policies = [r.inputs for r in prod.resources if r.type == SSL_POLICY]
    assert proxies and all("sslPolicy" in p for p in proxies)
    assert [(p["minTlsVersion"], p["profile"]) for p in policies] == [("TLS_1_2", "MODERN")]


# ---------------------------------------------------------------------------------------------
# Types the program now declares are reviewed for meaning, and nothing else refuses them


@pytest.mark.parametrize(("what", "resources"), [
    ("grafana behind access", [_tunnel(GRAFANA_ROUTE), *_access()]),
    ("the storefront's firewall", [API, SHOP, SHOP_DOMAIN, _storefront_header('http.host in {"shop.acme.com"}'),
                                   _vercel_firewall(EDGE_DENY)]),
    ("the api's gate and url map", [_armor(f"{GATE} && (inIpRange(origin.ip, '173.245.48.0/20'))"),
                                    _r(URL_MAP, "urlmap", API_ONLY)]),
])
def test_the_compliant_controls_pass_the_whole_pack(pack: PolicyPackProcess, what: str,
                                                    resources: list[AnalyzerInput]) -> None:
    # The zone's own settings and WAF (absent from these few resources) are other rules' business.
    zone_wide = ("PLAT-TLS-001", "PLAT-TLS-002", "PLAT-TLS-003", "PLAT-WAF-")
    assert [(r, m) for r, m in _mandatory(pack, resources) if not r.startswith(zone_wide)] == [], what


def test_an_access_service_token_is_no_api_token_and_an_access_policy_no_iam_grant() -> None:
    from policies.rule import Resource
    from policies.rules.iam_cloudflare_token_scope import is_token
    from policies.rules.iam_gcp import is_grant

    def res(token: str) -> Resource:
        return Resource(token, "x", "urn:pulumi:prod::p::t::x", {})

    assert not is_token(res(SERVICE_TOKEN)) and not is_grant(res(ACCESS_POLICY))
    assert is_token(res("cloudflare:index/accountToken:AccountToken")) and is_token(res("cloudflare:index/apiToken:ApiToken"))
