"""Each rule of the pack, run through Pulumi's Analyzer protocol (not by calling its function): a
compliant and a non-compliant resource, asserting the rule id and message."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.analyzer import AnalyzerInput, PolicyPackError, PolicyPackProcess, run_policies
from policies.pack import RULES
from tests.test_policy_vm import BACKUPS, firewall, vm

ZONE = "7c9e1f3a5b7d4c6e8f0a1b2c3d4e5f60"
MANAGED, OWASP = "efb7b8c949ac4650a09736fc376e9aee", "4814384a9e5d4991b9815dcfc25d2f1f"


def _resource(type_: str, name: str, props: dict[str, Any], stack: str = "prod") -> AnalyzerInput:
    return AnalyzerInput(f"urn:pulumi:{stack}::platform::{type_}::{name}", type_, name, props)


def _token(scope: dict[str, str], expires: str | None = "2027-06-30T00:00:00Z") -> dict[str, Any]:
    return {"policies": [{"effect": "allow", "permissionGroups": [{"id": "e17beae8b8cb423a99b1730f21238bed"}],
                          "resources": json.dumps(scope)}], **({"expiresOn": expires} if expires else {})}


ENGINE_SA = "commission-engine-prod@acme.iam.gserviceaccount.com"


def _cloud_run(**template: Any) -> dict[str, Any]:
    return {"name": "commission-engine", "project": "acme", "location": "southamerica-east1",
            "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "labels": {"platform-public": "true"},
            "template": {"serviceAccount": ENGINE_SA,
                         "scaling": {"minInstanceCount": 1, "maxInstanceCount": 5},
                         "containers": [{"image": "ghcr.io/acme/commission-engine:1a2b3c4d5e6f"}], **template}}


def _railway(name: str, **props: Any) -> dict[str, Any]:
    return {"name": name, "image": f"ghcr.io/acme/{name}@sha256:{'c' * 64}", "num_replicas": 1, "vcpus": 1,
            "memory_gb": 1, **props}


def _waf(owasp_action: str) -> dict[str, Any]:
    return {"zoneId": ZONE, "kind": "zone", "phase": "http_request_firewall_managed", "rules": [
        {"action": "execute", "expression": "true", "actionParameters": {"id": MANAGED}},
        {"action": "execute", "expression": "true", "actionParameters": {
            "id": OWASP, "overrides": {"rules": [{"id": "6179ae15870a4bb7b2d480d4843b323c", "action": owasp_action}]}}}]}


REDIS = {"start_command": 'redis-server --requirepass "$REDIS_PASSWORD"',
         "variables": {"REDIS_PASSWORD": "0123456789abcdef0123456789abcdef"}}
POCKETBASE_ENV = {"PB_BACKUP_CRON": "0 3 * * *", "PB_BACKUP_S3_BUCKET": "b",
                  "PB_BACKUP_S3_ENDPOINT": "https://s3.example.com"}
TOKEN, ZONE_SETTING = "cloudflare:index/apiToken:ApiToken", "cloudflare:index/zoneSetting:ZoneSetting"
DNS, RULESET = "cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/ruleset:Ruleset"
CLOUD_RUN, RAILWAY = "gcp:cloudrunv2/service:Service", "pulumi-python:dynamic/railway:Service"
VERCEL_ENV = "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable"
IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"

VM, FIREWALL_OK, FIREWALL_OPEN = vm(), firewall(["10.20.0.0/24"]), firewall(["0.0.0.0/0"])

# rule -> (compliant resource, non-compliant resource, what the violation says)
RESOURCE_CASES: dict[str, tuple[AnalyzerInput, AnalyzerInput, str]] = {
    "PLAT-IAM-005": (_resource(VERCEL_ENV, "env", {"key": "REVALIDATE_TOKEN", "sensitive": True}),
                     _resource(VERCEL_ENV, "env", {"key": "REVALIDATE_TOKEN", "sensitive": False}),
                     "REVALIDATE_TOKEN holds a credential but is not marked sensitive"),
    "PLAT-DNS-001": (_resource(DNS, "shop", {"type": "CNAME", "name": "shop.acme.com", "proxied": True}),
                     _resource(DNS, "shop", {"type": "CNAME", "name": "shop.acme.com", "proxied": False}),
                     "shop.acme.com is not proxied"),
    "PLAT-DATA-001": (_resource(RAILWAY, "database", _railway("pocketbase", volume_mount_path="/pb/pb_data")),
                      _resource(RAILWAY, "database", _railway("pocketbase")),
                      "no volume at /pb/pb_data"),
    "PLAT-DATA-002": (_resource(RAILWAY, "database", _railway("pocketbase", variables=POCKETBASE_ENV)),
                      _resource(RAILWAY, "database", _railway("pocketbase", variables={
                          **POCKETBASE_ENV, "PB_BACKUP_CRON": "0 3 * * 0"})),
                      "backup schedule '0 3 * * 0' is not at least daily"),
    "PLAT-DATA-003": (_resource(RAILWAY, "cache", _railway("redis", **REDIS)),
                      _resource(RAILWAY, "cache", _railway("redis", **REDIS, public_port=6379)),
                      "Redis is reachable from the internet"),
    "PLAT-DATA-005": (_resource(CLOUD_RUN, "engine", _cloud_run(containers=[{
                          "image": "ghcr.io/acme/commission-engine:1a2b3c4d5e6f",
                          "envs": [{"name": "REDIS_URL", "valueSource": {"secretKeyRef": {"secret": "s"}}},
                                   {"name": "ENVIRONMENT", "value": "prod"}]}])),
                      _resource(CLOUD_RUN, "engine", _cloud_run(containers=[{
                          "image": "ghcr.io/acme/commission-engine:1a2b3c4d5e6f",
                          "envs": [{"name": "POCKETBASE_SUPERUSER_PASSWORD", "value": "fake-literal"}]}])),
                      "POCKETBASE_SUPERUSER_PASSWORD is a literal value"),
    "PLAT-SCALE-001": (_resource(CLOUD_RUN, "engine", _cloud_run()),
                       _resource(CLOUD_RUN, "engine", _cloud_run(scaling={"minInstanceCount": 0, "maxInstanceCount": 5})),
                       "scales to 0 instances when idle"),
    "PLAT-SCALE-002": (_resource(CLOUD_RUN, "engine", _cloud_run()),
                       _resource(CLOUD_RUN, "engine", _cloud_run(scaling={"minInstanceCount": 1, "maxInstanceCount": 9})),
                       "scales to 9 instances; expected at most 5"),
    "PLAT-SIZE-001": (_resource(RAILWAY, "database", _railway("pocketbase", vcpus=2, memory_gb=4)),
                      _resource(RAILWAY, "database", _railway("pocketbase", vcpus=2, memory_gb=8)),
                      "8 GiB of memory; expected at most 4"),
    "PLAT-SIZE-002": (_resource(RAILWAY, "cache", _railway("redis", vcpus=1, memory_gb=1)),
                      _resource(RAILWAY, "cache", _railway("redis", vcpus=4, memory_gb=1)),
                      "4 vCPU; expected at most 2"),
    # Compute Engine VMs (tests/test_policy_vm.py has every boundary): C2's peak and 0.25 GiB over it.
    "PLAT-VM-001": (_resource(VM["type"], VM["name"], vm(machine_type="e2-custom-2-4096")["props"]),
                    _resource(VM["type"], VM["name"], vm(machine_type="e2-custom-2-4352")["props"]),
                    "4.25 GiB of memory; expected 2 to 4"),
    "PLAT-VM-002": (_resource(VM["type"], VM["name"], VM["props"]),
                    _resource(VM["type"], VM["name"], vm(env={**BACKUPS, "PB_BACKUP_CRON": "0 3 * * 0"})["props"]),
                    "backup schedule '0 3 * * 0' is not at least daily"),
}

PROXIED = _resource(DNS, "shop", {"zoneId": ZONE, "type": "CNAME", "name": "shop.acme.com", "proxied": True})
SSL = _resource(ZONE_SETTING, "ssl", {"zoneId": ZONE, "settingId": "ssl", "value": "strict"})
REDIRECT = _resource(RULESET, "redirect", {"zoneId": ZONE, "kind": "zone", "phase": "http_request_dynamic_redirect",
                                          "rules": [{"action": "redirect", "expression": "not ssl", "actionParameters": {
                                              "fromValue": {"statusCode": 301, "targetUrl": {"value": "https://acme.com"}}}}]})
INVOKER = _resource("gcp:cloudrunv2/serviceIamMember:ServiceIamMember", "invoker",
                    {"name": "commission-engine", "project": "acme", "location": "southamerica-east1",
                     "member": "allUsers", "role": "roles/run.invoker"})
BUILT = _resource("docker:index/image:Image", "engine-image", {"imageName": "ghcr.io/acme/commission-engine:1a2b3c4d5e6f",
                                                               "skipPush": False})
ENGINE_RAILWAY = _resource(RAILWAY, "engine", _railway("commission-engine", public_port=8000))
LOG_BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"

SA = _resource("gcp:serviceaccount/account:Account", "engine-sa", {"accountId": "commission-engine-prod", "project": "acme"})
SETTINGS = [_resource(ZONE_SETTING, k, {"zoneId": ZONE, "settingId": k, "value": v})
            for k, v in (("ssl", "strict"), ("min_tls_version", "1.2"), ("tls_1_3", "on"))]
HSTS = _resource(ZONE_SETTING, "hsts", {"zoneId": ZONE, "settingId": "security_header", "value": {
    "strict_transport_security": {"enabled": True, "include_subdomains": True, "max_age": 63072000, "preload": True}}})
LIMITS = _resource(RULESET, "limits", {"zoneId": ZONE, "kind": "zone", "phase": "http_ratelimit", "rules": [
    {"description": "api", "action": "block", "expression": "true",
     "ratelimit": {"characteristics": ["ip.src"], "period": 60, "requestsPerPeriod": 600}}]})
TOKEN_OK = _resource(TOKEN, "purge", _token({f"com.cloudflare.api.account.zone.{ZONE}": "*"}))

def _dr_bucket(content: str, location: str) -> AnalyzerInput:
    return _resource("gcp:storage/bucket:Bucket", f"pocketbase-{content}", {
        "name": f"acme-prod-pocketbase-{content}", "location": location, "versioning": {"enabled": True},
        "publicAccessPrevention": "enforced", "labels": {"platform-role": "pocketbase-dr",
                                                         "platform-dr-content": content}})


PB_VM = _resource("gcp:compute/instance:Instance", "database", {"name": "pocketbase-prod", "zone": "southamerica-east1-a"})

# Prod with its standby in us-east1 (the replica bucket's region): the engine there cold behind its own NEG,
# PocketBase there stopped.
STANDBY_VM = _resource("gcp:compute/instance:Instance", "database-standby", {
    "name": "pocketbase-prod-standby", "zone": "us-east1-b", "desiredStatus": "TERMINATED"})
STANDBY = [
    PB_VM, _dr_bucket("backups", "SOUTHAMERICA-EAST1"), _dr_bucket("replica", "US-EAST1"),
    _resource(CLOUD_RUN, "engine", {**_cloud_run(), "labels": {"platform-public": "true", "platform-serving": "true"}}),
    _resource(CLOUD_RUN, "engine-standby", {
        **_cloud_run(vpcAccess={"networkInterfaces": [{"subnetwork": "platform-prod-run-failover"}]}),
        "location": "us-east1", "labels": {"platform-public": "true", "platform-serving": "false"}}),
    _resource("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup", "engine-standby-neg", {
        "name": "api-prod-standby-neg", "region": "us-east1", "cloudRun": {"service": "commission-engine"}}),
]

STACK_CASES: dict[str, tuple[list[AnalyzerInput], list[AnalyzerInput], str]] = {
    "PLAT-VM-003": ([_resource(VM["type"], VM["name"], VM["props"]),
                     _resource(FIREWALL_OK["type"], FIREWALL_OK["name"], FIREWALL_OK["props"])],
                    [_resource(VM["type"], VM["name"], VM["props"]),
                     _resource(FIREWALL_OPEN["type"], FIREWALL_OPEN["name"], FIREWALL_OPEN["props"])],
                    "admits ['0.0.0.0/0'] to the VMs ['pocketbase-prod']"),
    "PLAT-DATA-006": ([PB_VM, _dr_bucket("backups", "SOUTHAMERICA-EAST1"), _dr_bucket("replica", "US-EAST1")],
                      [PB_VM, _dr_bucket("backups", "SOUTHAMERICA-EAST1"), _dr_bucket("replica", "SOUTHAMERICA-EAST1")],
                      "the primary's region"),
    "PLAT-DATA-007": ([*STANDBY, STANDBY_VM], STANDBY, "no PocketBase VM in the failover region us-east1"),
    "PLAT-ENV-001": ([_resource(CLOUD_RUN, "engine", _cloud_run())],
                     [_resource(CLOUD_RUN, "engine", {**_cloud_run(), "labels": {"platform-environment": "staging"}})],
                     "says environment 'staging' in stack 'prod'"),
    "PLAT-IAM-001": ([SSL, TOKEN_OK], [SSL, _resource(TOKEN, "purge", _token({"com.cloudflare.api.account.zone.*": "*"}))],
                     "expected exactly one zone"),
    "PLAT-IAM-002": ([SA, _resource(IAM_MEMBER, "grant", {"role": "roles/logging.logWriter",
                                                          "member": f"serviceAccount:{ENGINE_SA}"})],
                     [SA, _resource(IAM_MEMBER, "grant", {"role": "roles/editor", "member": f"serviceAccount:{ENGINE_SA}"})],
                     "grants 'roles/editor'"),
    "PLAT-IAM-003": ([SA, _resource(CLOUD_RUN, "engine", _cloud_run())],
                     [SA, _resource(CLOUD_RUN, "engine", _cloud_run(serviceAccount="123-compute@developer.gserviceaccount.com"))],
                     "which this stack does not declare"),
    "PLAT-IAM-004": ([SA, _resource(CLOUD_RUN, "engine", _cloud_run()), INVOKER],
                     [SA, _resource(CLOUD_RUN, "engine", {**_cloud_run(), "labels": {}}), INVOKER],
                     "lets anyone invoke 'commission-engine', which is not labelled platform-public=true"),
    "PLAT-TLS-001": ([*SETTINGS], [*SETTINGS[1:], _resource(ZONE_SETTING, "ssl", {"zoneId": ZONE, "settingId": "ssl",
                                                                                    "value": "flexible"})],
                     "ssl is 'flexible'; expected strict"),
    "PLAT-TLS-002": ([SSL, REDIRECT], [SSL], f"zone {ZONE} serves plain HTTP"),
    "PLAT-TLS-003": ([SSL, HSTS], [SSL], f"zone {ZONE} sends no HSTS header"),
    "PLAT-WAF-001": ([PROXIED, _resource(RULESET, "edge-waf", _waf("block"))],
                     [PROXIED, _resource(RULESET, "edge-waf", {**_waf("block"), "rules": _waf("block")["rules"][1:]})],
                     "shop.acme.com is proxied but not covered by the Cloudflare Managed Ruleset"),
    "PLAT-WAF-002": ([PROXIED, _resource(RULESET, "edge-waf", _waf("block"))],
                     [PROXIED, _resource(RULESET, "edge-waf", _waf("log"))], "OWASP runs with action 'log'"),
    "PLAT-WAF-003": ([PROXIED, LIMITS],
                     [PROXIED, _resource(RULESET, "limits", {"zoneId": ZONE, "kind": "zone", "phase": "http_ratelimit",
                      "rules": [{"description": "api", "action": "block", "expression": "true", "ratelimit": {
                          "characteristics": ["ip.src"], "period": 10, "requestsPerPeriod": 5000}}]})],
                     "allows 30000 requests per minute per client; expected 1 to 6000"),
    "PLAT-DATA-004": ([ENGINE_RAILWAY, _resource(RAILWAY, "database", _railway("pocketbase"))],
                      [ENGINE_RAILWAY, _resource(RAILWAY, "database", _railway("pocketbase", public_port=8090))],
                      "PocketBase (its admin UI included) is public"),
    "PLAT-LOG-001": ([_resource(CLOUD_RUN, "engine", _cloud_run()),
                      _resource(LOG_BUCKET, "logs", {"bucketId": "_Default", "retentionDays": 90})],
                     [_resource(CLOUD_RUN, "engine", _cloud_run()),
                      _resource(LOG_BUCKET, "logs", {"bucketId": "_Default", "retentionDays": 30})],
                     "keeps logs 30 days; expected at least 90"),
    "PLAT-LOG-002": ([_resource(CLOUD_RUN, "engine", _cloud_run())], [ENGINE_RAILWAY],
                     "Railway keeps logs 21 days at most"),
    "PLAT-IMG-001": ([_resource(CLOUD_RUN, "engine", _cloud_run()), BUILT],
                     [_resource(CLOUD_RUN, "engine", _cloud_run(containers=[{"image": "ghcr.io/acme/engine:latest"}]))],
                     "runs ghcr.io/acme/engine:latest"),
    "PLAT-IMG-002": ([_resource(RAILWAY, "cache", _railway("redis", image="redis:7.4.1-alpine@sha256:" + "a" * 64),
                                stack="staging")],
                     [_resource(RAILWAY, "cache", _railway("redis", image="redis:7.4.1-alpine"), stack="staging")],
                     "runs redis:7.4.1-alpine by tag in staging"),
}

@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure()
        yield process


# Cloud SQL (policies/rules/data_cloudsql.py); the planned instances' weakenings are in tests/test_cloudsql.py.
CLOUD_SQL = "gcp:sql/databaseInstance:DatabaseInstance"
_PG: dict[str, Any] = {"name": "platform-prod-pg", "region": "southamerica-east1", "deletionProtection": True,
                       "settings": {"availabilityType": "REGIONAL", "deletionProtectionEnabled": True,
                                    "ipConfiguration": {"ipv4Enabled": False, "sslMode": "ENCRYPTED_ONLY",
                                                        "privateNetwork": "projects/p/global/networks/platform-prod"},
                                    "backupConfiguration": {"enabled": True, "pointInTimeRecoveryEnabled": True,
                                                            "backupRetentionSettings": {"retainedBackups": 30}}}}
_PG_REPLICA: dict[str, Any] = {**_PG, "name": "platform-prod-pg-replica", "region": "us-east1",
                               "masterInstanceName": "platform-prod-pg",
                               "settings": {**_PG["settings"], "availabilityType": "ZONAL", "backupConfiguration": {}}}
RESOURCE_CASES.update({
    "PLAT-DATA-010": (_resource(CLOUD_SQL, "postgres-primary", _PG),
                      _resource(CLOUD_SQL, "postgres-primary", {**_PG, "settings": {**_PG["settings"], "ipConfiguration": {
                          "ipv4Enabled": True, "sslMode": "ENCRYPTED_ONLY", "privateNetwork": "x"}}}),
                      "a public IPv4 address"),
    "PLAT-DATA-011": (_resource(CLOUD_SQL, "postgres-primary", _PG),
                      _resource(CLOUD_SQL, "postgres-primary", {**_PG, "settings": {**_PG["settings"],
                                                                                    "availabilityType": "ZONAL"}}),
                      "expected REGIONAL"),
    "PLAT-DATA-013": (_resource("gcp:sql/user:User", "postgres-user-migrator",
                                {"name": "migrator", "password": "x" * 40}),
                      _resource("gcp:sql/user:User", "postgres-user-migrator",
                                {"name": "migrator", "password": "hunter2"}),
                      "not a generated one"),
})
STACK_CASES["PLAT-DATA-012"] = ([_resource(CLOUD_SQL, "postgres-primary", _PG),
                                 _resource(CLOUD_SQL, "postgres-replica", _PG_REPLICA)],
                                [_resource(CLOUD_SQL, "postgres-primary", _PG),
                                 _resource(CLOUD_SQL, "postgres-replica", {**_PG_REPLICA, "region": _PG["region"]})],
                                "are all in its own region")
# The engine's role as a Cloud SQL API user (cloudsqlsuperuser, CREATEROLE, CREATEDB) rather than made in SQL by
# `engine migrate`: https://cloud.google.com/sql/docs/postgres/users.
_PG_SERVICE = {"template": {"containers": [{"envs": [{"name": "POSTGRES_USER", "value": "engine"}]}]}}
STACK_CASES["PLAT-DATA-014"] = ([_resource("gcp:sql/user:User", "postgres-user-migrator", {"name": "migrator"}),
                                 _resource("gcp:cloudrunv2/service:Service", "engine", _PG_SERVICE)],
                                [_resource("gcp:sql/user:User", "postgres-user-engine", {"name": "engine"}),
                                 _resource("gcp:cloudrunv2/service:Service", "engine", _PG_SERVICE)],
                                "is a member of cloudsqlsuperuser")


def _violations(response: Any, rule: str) -> list[str]:
    return [d.message for d in response.diagnostics if d.policyName == rule]


def test_the_pack_announces_every_rule_of_the_table_with_its_level(pack: PolicyPackProcess) -> None:
    info = pack.info()

    announced = {p.name: p.enforcementLevel for p in info.policies}

    assert info.name == "platform-policies"
    assert set(announced) == {rule.id for rule in RULES}
    # Railway's 21 days against S5's 90 (#12) and staging's third-party images by tag (#11.8) stop a deploy.
    assert announced["PLAT-IMG-002"] == 1 and announced["PLAT-LOG-002"] == 1 and announced["PLAT-IAM-001"] == 1
    assert all(level == 1 for level in announced.values()), "every rule is mandatory"
    assert all(rule.denies for rule in RULES)


def test_every_rule_has_a_compliant_and_a_non_compliant_case() -> None:
    # PLAT-WAIVER-001 judges the pack's config, not resources: its cases are the waiver tests below.
    # Issue #22's rules have theirs in tests/test_policy_meaning.py (PLAT-TYPE-001 and PLAT-TLS-004 in tests of
    # their own there).
    from tests.test_policy_meaning import CASES

    meaning = {rule for rule, _, _ in CASES.values()} | {"PLAT-TYPE-001", "PLAT-TLS-004"}
    assert set(RESOURCE_CASES) | set(STACK_CASES) | meaning == {rule.id for rule in RULES} - {"PLAT-WAIVER-001"}


@pytest.mark.parametrize("rule", sorted(RESOURCE_CASES))
def test_a_resource_rule_passes_the_compliant_resource_and_names_itself_on_the_other(
    pack: PolicyPackProcess, rule: str
) -> None:
    compliant, non_compliant, says = RESOURCE_CASES[rule]

    assert _violations(pack.analyze(compliant), rule) == []
    messages = _violations(pack.analyze(non_compliant), rule)
    assert len(messages) == 1 and says in messages[0], messages


@pytest.mark.parametrize("rule", sorted(STACK_CASES))
def test_a_stack_rule_passes_the_compliant_stack_and_names_itself_on_the_other(
    pack: PolicyPackProcess, rule: str
) -> None:
    compliant, non_compliant, says = STACK_CASES[rule]

    assert _violations(pack.analyze_stack(compliant), rule) == []
    messages = _violations(pack.analyze_stack(non_compliant), rule)
    assert any(says in m for m in messages), messages


def _waiver(**fields: str) -> dict[str, str]:
    expires = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    return {"resource": "shop", "subject": "shop.acme.com", "expires": expires, "ticket": "OPS-7",
            "reason": "the blog is hosted by a vendor that refuses proxied traffic until its migration", **fields}


def test_a_waiver_covers_its_resource_and_subject_only_and_keeps_its_reason() -> None:
    _, bad, _ = RESOURCE_CASES["PLAT-DNS-001"]
    other = _resource(DNS, "blog", {"type": "CNAME", "name": "blog.acme.com", "proxied": False})

    report = run_policies([bad, other], {"PLAT-DNS-001": {"waivers": [_waiver()]},
                                         "PLAT-WAIVER-001": {"waivers": [{"rule": "PLAT-DNS-001", **_waiver()}]}})

    assert [(f.rule, f.resource) for f in report.findings if f.level == "mandatory" and f.rule.startswith("PLAT-DNS")] \
        == [("PLAT-DNS-001", "blog")]
    assert not [f for f in report.findings if f.rule == "PLAT-WAIVER-001"]
    assert any(rule == "PLAT-DNS-001" and "until" in reason and "OPS-7" in reason for rule, reason in report.not_applicable)


@pytest.mark.parametrize(("fields", "says"), [
    ({"expires": "2020-01-01"}, "has passed"),
    ({"ticket": "later"}, "is not a ticket"),
    ({"reason": "TODO temporary waiver will fix later"}, "is not a reason"),
    ({"subject": "acme.com"}, "is not a tenant of this stack"),
])
def test_a_bad_waiver_waives_nothing_and_the_pack_says_why(fields: dict[str, str], says: str) -> None:
    _, bad, _ = RESOURCE_CASES["PLAT-DNS-001"]
    waiver = _waiver(**fields)

    report = run_policies([bad], {"PLAT-DNS-001": {"waivers": [waiver]},
                                  "PLAT-WAIVER-001": {"waivers": [{"rule": "PLAT-DNS-001", **waiver}]}})

    assert ("PLAT-DNS-001", "shop") in [(f.rule, f.resource) for f in report.mandatory] or "subject" in fields
    assert any(f.rule == "PLAT-WAIVER-001" and says in f.message for f in report.mandatory), report.findings


def test_a_rule_error_is_a_clean_mandatory_violation_not_a_crash(pack: PolicyPackProcess) -> None:
    token = _resource(TOKEN, "purge", {**_token({f"com.cloudflare.api.account.zone.{ZONE}": "*"}), "policies": "oops"})

    messages = _violations(pack.analyze_stack([SSL, token]), "PLAT-IAM-001")

    assert messages and all("Traceback" not in m for m in messages)


def test_a_config_may_tighten_a_limit_but_never_loosen_it() -> None:
    from policies.pack import RULES_BY_ID, rule_config

    rule = RULES_BY_ID["PLAT-IAM-001"]
    config = rule_config(rule, {"max_lifetime_days": 100000, "allowed_permission_groups": ["*", "c8fed203ed3043cba015a93ad1616f1f"]})

    assert config["max_lifetime_days"] == 400
    assert config["allowed_permission_groups"] == ["c8fed203ed3043cba015a93ad1616f1f"]
    assert rule_config(RULES_BY_ID["PLAT-SCALE-002"], {"max_instances": 3})["max_instances"] == 3


def test_the_harness_fails_when_the_pack_cannot_start(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (tmp_path / "__main__.py").write_text("raise RuntimeError('broken pack')\n")

    with pytest.raises(PolicyPackError, match="did not start") as caught, PolicyPackProcess(tmp_path):
        pass

    assert "broken pack" in str(caught.value)


def test_policies_md_is_generated_from_the_pack_table() -> None:
    from policies.doc import render

    committed = (Path(__file__).resolve().parent.parent / "policies" / "POLICIES.md").read_text()

    assert committed == render(), "regenerate with: python3 tools/dev.py generate"
    assert all(f"| {rule.id} |" in committed for rule in RULES)
