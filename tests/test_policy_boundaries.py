"""Pack rules judged at their boundaries (issue #21.2, and the survivors of `tools/dev.py mutate`): the last
compliant value passes and the first value past it is refused, for each number a rule enforces. The
numbers come from the document (tests/document_numbers.py) or the named outside rule, never from the pack.

tests/test_policy_pack.py holds one compliant and one clearly broken case per rule; a bound loosened by a
little (89 days of logs, TLS 1.1, a 15-character password, 2.5 vCPU) passes those, and fails these.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.analyzer import AnalyzerInput, PolicyPackProcess
from tests import document_numbers as doc

ZONE = "7c9e1f3a5b7d4c6e8f0a1b2c3d4e5f60"
SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
CUSTOM_HOSTNAME = "cloudflare:index/customHostname:CustomHostname"
RAILWAY = "pulumi-python:dynamic/railway:Service"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
LOG_BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"
LOG_SINK = "pulumi-python:dynamic/observability:LogSink"
MEMORYSTORE = "gcp:redis/instance:Instance"
TOKEN = "cloudflare:index/apiToken:ApiToken"

# The platform's bound for a Redis password (README, "The policy pack": PLAT-DATA-003 in POLICIES.md refuses
# "a password under 16 characters").
REDIS_PASSWORD_MIN = 16
# hstspreload.org's submission requirements: "The max-age must be at least 31536000 seconds (1 year)",
# "The includeSubDomains directive must be specified", "The preload directive must be specified".
HSTS_PRELOAD_MIN_AGE = 31536000
# S3's tokens expire: the platform's bound is 400 days (README, PLAT-IAM-001 in POLICIES.md).
TOKEN_MAX_DAYS = 400
# TLS 1.0 and 1.1 are deprecated (RFC 8996); S1 is met at 1.2 or 1.3.
TLS_OK, TLS_REFUSED = ("1.2", "1.3"), ("1.0", "1.1")


def _resource(type_: str, name: str, props: dict[str, Any], stack: str = "prod") -> AnalyzerInput:
    return AnalyzerInput(f"urn:pulumi:{stack}::platform::{type_}::{name}", type_, name, props)


def _railway(name: str, **props: Any) -> dict[str, Any]:
    return {"name": name, "image": f"ghcr.io/acme/{name}@sha256:{'c' * 64}", "num_replicas": 1, "vcpus": 1,
            "memory_gb": 1, **props}


def _engine() -> AnalyzerInput:
    return _resource(CLOUD_RUN, "engine", {
        "name": "commission-engine", "project": "acme", "location": "southamerica-east1",
        "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "labels": {"platform-public": "true"},
        "template": {"serviceAccount": "commission-engine-prod@acme.iam.gserviceaccount.com",
                     "scaling": {"minInstanceCount": 1, "maxInstanceCount": 5},
                     "containers": [{"image": "ghcr.io/acme/commission-engine:1a2b3c4d5e6f"}]}})


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure()
        yield process


def _says(response: Any, rule: str) -> list[str]:
    return [d.message for d in response.diagnostics if d.policyName == rule]


# ---- S4 / PLAT-DATA-003: Redis's password and Memorystore's AUTH and TLS ----

def _redis(password: str) -> AnalyzerInput:
    return _resource(RAILWAY, "cache", _railway("redis", start_command='redis-server --requirepass "$REDIS_PASSWORD"',
                                                variables={"REDIS_PASSWORD": password}))


@pytest.mark.parametrize(("length", "ok"), [(REDIS_PASSWORD_MIN, True), (REDIS_PASSWORD_MIN - 1, False), (4, False)])
def test_a_redis_password_is_at_least_16_characters(pack: PolicyPackProcess, length: int, ok: bool) -> None:
    messages = _says(pack.analyze(_redis("k" * length)), "PLAT-DATA-003")
    assert (messages == []) is ok, messages


@pytest.mark.parametrize(("props", "ok"), [
    ({"authEnabled": True, "transitEncryptionMode": "SERVER_AUTHENTICATION"}, True),
    ({"authEnabled": True, "transitEncryptionMode": "DISABLED"}, False),
    ({"authEnabled": True}, False),
    ({"authEnabled": False, "transitEncryptionMode": "SERVER_AUTHENTICATION"}, False),
])
def test_memorystore_needs_auth_and_tls_in_transit(pack: PolicyPackProcess, props: dict[str, Any], ok: bool) -> None:
    messages = _says(pack.analyze(_resource(MEMORYSTORE, "cache", {"name": "cache-prod", **props})), "PLAT-DATA-003")
    assert (messages == []) is ok, messages


# ---- C2 / C3: sizes at the document's peak and just past it ----

@pytest.mark.parametrize(("rule", "service", "vcpus", "memory_gb", "ok"), [
    ("PLAT-SIZE-001", "pocketbase", doc.POCKETBASE_PEAK.vcpus, doc.POCKETBASE_PEAK.memory_gib, True),
    ("PLAT-SIZE-001", "pocketbase", doc.POCKETBASE_PEAK.vcpus + 1, doc.POCKETBASE_PEAK.memory_gib, False),
    ("PLAT-SIZE-001", "pocketbase", doc.POCKETBASE_PEAK.vcpus, doc.POCKETBASE_PEAK.memory_gib + 1, False),
    # Redis: C3 gives 1 vCPU + 1 GB and "vertical scale by cache miss rate"; the pack's ceiling is PocketBase's peak.
    ("PLAT-SIZE-002", "redis", doc.POCKETBASE_PEAK.vcpus + 1, doc.REDIS_STEADY.memory_gib, False),
    ("PLAT-SIZE-002", "redis", doc.REDIS_STEADY.vcpus, doc.POCKETBASE_PEAK.memory_gib + 1, False),
])
def test_a_container_one_unit_past_the_documents_peak_is_refused(pack: PolicyPackProcess, rule: str, service: str,
                                                                 vcpus: float, memory_gb: float, ok: bool) -> None:
    name = "database" if service == "pocketbase" else "cache"
    messages = _says(pack.analyze(_resource(RAILWAY, name, _railway(service, vcpus=vcpus, memory_gb=memory_gb))), rule)
    assert (messages == []) is ok, messages


# ---- S1 / PLAT-TLS-001 and PLAT-TLS-003: TLS versions and HSTS ----

def _settings(min_tls: str) -> list[AnalyzerInput]:
    return [_resource(SETTING, k, {"zoneId": ZONE, "settingId": k, "value": v})
            for k, v in (("ssl", "strict"), ("min_tls_version", min_tls), ("tls_1_3", "on"))]


@pytest.mark.parametrize("version", TLS_OK + TLS_REFUSED)
def test_the_zone_accepts_tls_1_2_and_up_only(pack: PolicyPackProcess, version: str) -> None:
    messages = _says(pack.analyze_stack(_settings(version)), "PLAT-TLS-001")
    assert (messages == []) is (version in TLS_OK), messages


@pytest.mark.parametrize("version", TLS_OK + TLS_REFUSED)
def test_a_custom_hostname_accepts_tls_1_2_and_up_only(pack: PolicyPackProcess, version: str) -> None:
    hostname = _resource(CUSTOM_HOSTNAME, "shop", {"zoneId": ZONE, "hostname": "shop.example.com", "ssl": {
        "method": "http", "type": "dv", "settings": {"minTlsVersion": version}}})
    messages = _says(pack.analyze_stack([*_settings("1.2"), hostname]), "PLAT-TLS-001")
    assert (messages == []) is (version in TLS_OK), messages


def _hsts(max_age: int, subdomains: bool = True, preload: bool = True) -> AnalyzerInput:
    return _resource(SETTING, "hsts", {"zoneId": ZONE, "settingId": "security_header", "value": {
        "strict_transport_security": {"enabled": True, "include_subdomains": subdomains, "max_age": max_age,
                                      "preload": preload}}})


@pytest.mark.parametrize(("hsts", "ok"), [
    (_hsts(HSTS_PRELOAD_MIN_AGE), True),
    (_hsts(HSTS_PRELOAD_MIN_AGE - 1), False),
    (_hsts(HSTS_PRELOAD_MIN_AGE, subdomains=False), False),
    (_hsts(HSTS_PRELOAD_MIN_AGE, preload=False), False),
])
def test_prods_hsts_meets_the_preload_lists_requirements(pack: PolicyPackProcess, hsts: AnalyzerInput,
                                                         ok: bool) -> None:
    messages = _says(pack.analyze_stack([*_settings("1.2"), hsts]), "PLAT-TLS-003")
    assert (messages == []) is ok, messages


# ---- S5 / PLAT-LOG-001 and PLAT-LOG-002: 90 days of logs, 89 refused ----

@pytest.mark.parametrize("days", [doc.LOG_RETENTION_DAYS, doc.LOG_RETENTION_DAYS - 1])
def test_cloud_logging_keeps_logs_90_days_not_89(pack: PolicyPackProcess, days: int) -> None:
    bucket = _resource(LOG_BUCKET, "logs", {"bucketId": "_Default", "retentionDays": days})
    messages = _says(pack.analyze_stack([_engine(), bucket]), "PLAT-LOG-001")
    assert (messages == []) is (days >= doc.LOG_RETENTION_DAYS), messages


@pytest.mark.parametrize("days", [doc.LOG_RETENTION_DAYS, doc.LOG_RETENTION_DAYS - 1, 30])
def test_railways_log_sink_keeps_logs_90_days_not_89(pack: PolicyPackProcess, days: int) -> None:
    service = _resource(RAILWAY, "engine", _railway("commission-engine"), stack="staging")
    sink = _resource(LOG_SINK, "logs", {"retention_days": days, "sources": ["commission-engine"]}, stack="staging")
    messages = _says(pack.analyze_stack([service, sink]), "PLAT-LOG-002")
    assert (messages == []) is (days >= doc.LOG_RETENTION_DAYS), messages


# ---- S3 / PLAT-IAM-001: a token's lifetime ----

@pytest.mark.parametrize(("days", "ok"), [(TOKEN_MAX_DAYS - 1, True), (TOKEN_MAX_DAYS + 2, False)])
def test_a_cloudflare_token_expires_within_400_days(pack: PolicyPackProcess, days: int, ok: bool) -> None:
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT00:00:00Z")
    token = _resource(TOKEN, "purge", {"expiresOn": expires, "policies": [{
        "effect": "allow", "permissionGroups": [{"id": "e17beae8b8cb423a99b1730f21238bed"}],
        "resources": json.dumps({f"com.cloudflare.api.account.zone.{ZONE}": "*"})}]})
    ssl = _resource(SETTING, "ssl", {"zoneId": ZONE, "settingId": "ssl", "value": "strict"})
    messages = _says(pack.analyze_stack([ssl, token]), "PLAT-IAM-001")
    assert (messages == []) is ok, messages


# ---- C7 / C8 / PLAT-DATA-006: the DR buckets keep what the stack asks, not a day less ----

def _dr_bucket(content: str, location: str, noncurrent_days: int) -> AnalyzerInput:
    return _resource("gcp:storage/bucket:Bucket", f"pocketbase-{content}", {
        "name": f"acme-prod-pocketbase-{content}", "location": location, "versioning": {"enabled": True},
        "publicAccessPrevention": "enforced", "labels": {"platform-role": "pocketbase-dr",
                                                         "platform-dr-content": content},
        "lifecycleRules": [{"action": {"type": "Delete"}, "condition": {"daysSinceNoncurrentTime": noncurrent_days}}]})


def test_a_dr_bucket_keeps_the_backups_prod_asks_for_and_not_a_day_less(pack: PolicyPackProcess) -> None:
    from stacks import registry

    days = registry.PROFILES["prod"].disaster_recovery.backup_retention_days
    vm = _resource("gcp:compute/instance:Instance", "database", {"name": "pocketbase-prod",
                                                                 "zone": "southamerica-east1-a"})
    for kept, ok in ((days, True), (days - 1, False)):
        stack = [vm, _dr_bucket("backups", "SOUTHAMERICA-EAST1", kept), _dr_bucket("replica", "US-EAST1", kept)]
        messages = [m for m in _says(pack.analyze_stack(stack), "PLAT-DATA-006") if "versions after" in m]
        assert (messages == []) is ok, (kept, messages)
