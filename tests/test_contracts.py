"""Each service contract (stacks/contracts) on planned resources written by hand from the documented rule:
a compliant resource passes, a resource that breaks the rule is reported with the rule's id. Without the
rule, its broken case is reported by nothing and its test fails."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from stacks.contracts import RULES, Context, check

CLOUD_RUN = "gcp:cloudrunv2/service:Service"
INSTANCE = "gcp:compute/instance:Instance"
RULESET = "cloudflare:index/ruleset:Ruleset"
DASHBOARD = "grafana:oss/dashboard:Dashboard"
OWASP = "4814384a9e5d4991b9815dcfc25d2f1f"
MANAGED = "efb7b8c949ac4650a09736fc376e9aee"


@dataclass(frozen=True)
class Res:
    type: str
    name: str
    inputs: dict[str, Any] = field(default_factory=dict[str, Any])
    urn: str = ""
    dependencies: frozenset[str] = frozenset()
    """What the engine creates before it (infra.plan.PlannedResource), for rules that read dependsOn."""


def _container(name: str, cpu: str, memory: str, *, port: int | None = None, idle: bool = False,
               **probes: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": f"example/{name}:1",
                                 "resources": {"cpuIdle": idle, "limits": {"cpu": cpu, "memory": memory}}}
    if port is not None:
        container["ports"] = {"containerPort": port}
    return container | probes


def _run(*containers: dict[str, Any], concurrency: int | None = 80, **template: Any) -> Res:
    body: dict[str, Any] = {"containers": list(containers), **template}
    if concurrency is not None:
        body["maxInstanceRequestConcurrency"] = concurrency
    return Res(CLOUD_RUN, "svc", {"name": "svc", "location": "southamerica-east1", "template": body})


def _with(resource: Res, path: str, value: Any) -> Res:
    """A copy of `resource` with inputs[path] (dotted, list indexes as digits) set to `value`."""
    inputs = copy.deepcopy(resource.inputs)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = inputs
    for part in parents:
        target = target[part]
    target[last] = value
    return Res(resource.type, resource.name, inputs)


ENGINE = _run(_container("app", "1", "1024Mi", port=8000,
                         startupProbe={"failureThreshold": 60, "periodSeconds": 3, "timeoutSeconds": 2}),
              _container("agent", "1", "512Mi"),
              scaling={"minInstanceCount": 1, "maxInstanceCount": 5})
# The documented way to run below one vCPU: concurrency 1, CPU only during requests.
SMALL = _run(_container("telemetry", "500m", "512Mi", port=9090, idle=True), concurrency=1)
VM = Res(INSTANCE, "vm", {"machineType": "e2-custom-2-4096",
                          "bootDisk": {"initializeParams": {"image": "cos-cloud/cos-stable"}},
                          "metadata": {"user-data": "#cloud-config\n", "enable-oslogin": "TRUE"}})
ARMOR = Res("gcp:compute/securityPolicy:SecurityPolicy", "armor", {"rules": [
    {"action": "allow", "priority": 1000,
     "match": {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": [f"10.0.{i}.0/24" for i in range(10)]}}},
    {"action": "deny(403)", "priority": 2147483647,
     "match": {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}}]})
REDIS = Res("gcp:redis/instance:Instance", "cache", {"tier": "BASIC", "memorySizeGb": 1, "authEnabled": True,
                                                     "transitEncryptionMode": "SERVER_AUTHENTICATION"})
SECRET = Res("gcp:secretmanager/secret:Secret", "s", {"secretId": "commission-engine-prod-redis-url"})
CERT = [Res("gcp:certificatemanager/dnsAuthorization:DnsAuthorization", "auth", {"domain": "api.example.com"}),
        Res("gcp:certificatemanager/certificate:Certificate", "cert",
            {"managed": {"domains": ["api.example.com"], "dnsAuthorizations": ["auth-id"]}})]


def _ruleset(name: str, phase: str, *rules: dict[str, Any]) -> Res:
    return Res(RULESET, name, {"kind": "zone", "zoneId": "zone1", "phase": phase, "rules": list(rules)})


def _execute(ruleset_id: str, expression: str = "true") -> dict[str, Any]:
    return {"action": "execute", "expression": expression, "actionParameters": {"id": ruleset_id}}


WAF = _ruleset("waf", "http_request_firewall_managed", _execute(MANAGED), _execute(OWASP))
RATE = _ruleset("rl", "http_ratelimit", {"action": "block", "expression": "true", "ratelimit": {
    "characteristics": ["cf.colo.id", "ip.src"], "period": 60, "mitigationTimeout": 60, "requestsPerPeriod": 600}})


def _dashboard(uid: str) -> Res:
    return Res(DASHBOARD, f"dash-{uid}", {"configJson": json.dumps({"uid": uid, "title": uid})})


def _grafana_container(*uids: str) -> Res:
    provider = "apiVersion: 1\nproviders:\n- name: p\n  type: file\n  options:\n    path: /var/lib/grafana/dashboards\n"
    uploads = [{"file": "/etc/grafana/provisioning/dashboards/p.yml", "content": provider}]
    uploads += [{"file": f"/var/lib/grafana/dashboards/{u}.json", "content": json.dumps({"uid": u})} for u in uids]
    return Res("docker:index/container:Container", "grafana", {"name": "grafana", "uploads": uploads})


RAILWAY_DB = Res("pulumi-python:dynamic/railway:Service", "database",
                 {"name": "pocketbase", "num_replicas": 1, "volume_mount_path": "/pb/pb_data"})

Plan = list[Res]


def _each(*resources: Res) -> list[Plan]:
    """Plans of one resource each: one breach a plan."""
    return [[r] for r in resources]


# rule id -> (a compliant plan, plans that each break it), written from the rule's documentation.
CASES: dict[str, tuple[Plan, list[Plan]]] = {
    "CR-CPU-001": ([SMALL, ENGINE], _each(_with(SMALL, "template.maxInstanceRequestConcurrency", 80))),
    "CR-CPU-002": ([SMALL], _each(_with(SMALL, "template.containers.0.resources.cpuIdle", False))),
    "CR-CPU-003": ([SMALL, _with(ENGINE, "template.executionEnvironment", "EXECUTION_ENVIRONMENT_GEN2")], _each(_with(SMALL, "template.executionEnvironment", "EXECUTION_ENVIRONMENT_GEN2"))),
    "CR-CPU-004": ([ENGINE, SMALL], _each(_with(ENGINE, "template.containers.0.resources.limits.cpu", "2"),
                                     _with(SMALL, "template.containers.0.resources.limits.cpu", "50m"))),
    "CR-MEM-001": ([ENGINE, _with(SMALL, "template.containers.0.resources.limits.memory", "1Gi")], _each(_with(SMALL, "template.containers.0.resources.limits.memory", "2Gi"),
                    _with(ENGINE, "template.containers.0.resources.limits.memory", "8Gi"),
                    # 4 vCPU (3 + the 1 vCPU sidecar) with 1.5 GiB: the table says 4 vCPU need 2 to 16 GiB.
                    _with(_with(ENGINE, "template.containers.0.resources.limits.cpu", "3"),
                          "template.containers.0.resources.limits.memory", "1Gi"))),
    "CR-CONC-001": ([_with(ENGINE, "template.maxInstanceRequestConcurrency", 1000)], _each(_with(ENGINE, "template.maxInstanceRequestConcurrency", 1001))),
    "CR-SCALE-001": ([ENGINE], _each(_with(ENGINE, "template.scaling.minInstanceCount", 6))),
    "CR-PROBE-001": ([ENGINE, _with(ENGINE, "template.containers.0.startupProbe.failureThreshold", 200)],
                     _each(_with(ENGINE, "template.containers.0.startupProbe.periodSeconds", 241),
                           _with(ENGINE, "template.containers.0.startupProbe.initialDelaySeconds", 241))),
    "CR-PROBE-002": ([ENGINE], _each(_with(ENGINE, "template.containers.0.startupProbe.timeoutSeconds", 4))),
    "CR-SIDECAR-001": ([ENGINE, SMALL], _each(_with(ENGINE, "template.containers.1.ports", {"containerPort": 9090}),
                                         _with(ENGINE, "template.containers.0.ports", []))),
    "CR-LAUNCH-001": ([ENGINE, _with(_with(ENGINE, "template.scaling.cpuUtilization", 0.6), "launchStage", "BETA")], _each(_with(ENGINE, "template.scaling.cpuUtilization", 0.6))),
    "GCE-E2-001": ([VM, _with(VM, "machineType", "e2-custom-2-16384")], _each(_with(VM, "machineType", "e2-custom-2-16640"), _with(VM, "machineType", "e2-custom-3-4096"),
                    _with(VM, "machineType", "e2-custom-2-512"))),
    "GCE-COS-001": ([VM, _with(VM, "bootDisk.initializeParams.image", "cos-cloud/cos-121-lts"),
                     _with(VM, "bootDisk.initializeParams.image", "cos-cloud/cos-stable-60-9592-90-0"),
                     _with(VM, "bootDisk.initializeParams.image", "projects/cos-cloud/global/images/family/cos-beta")], _each(_with(VM, "bootDisk.initializeParams.image", "cos-cloud/cos-stabel"))),
    "GCE-META-001": ([VM], _each(_with(VM, "metadata.user-data", "x" * (256 * 1024 + 1)))),
    "CM-DNSAUTH-001": (CERT, [[CERT[0], _with(CERT[1], "managed.domains", ["www.example.com"])]]),
    "CA-PRIO-001": ([ARMOR], _each(_with(ARMOR, "rules.1.priority", 1000), _with(ARMOR, "rules.1.priority", 2000))),
    "CA-IPS-001": ([ARMOR], _each(_with(ARMOR, "rules.0.match.config.srcIpRanges",
                                   [f"10.0.{i}.0/24" for i in range(11)]))),
    "MS-MODE-001": ([REDIS], _each(_with(REDIS, "tier", "STANDARD"))),
    "MS-REPLICA-001": ([REDIS, _with(_with(REDIS, "tier", "STANDARD_HA"), "replicaCount", 1)], _each(_with(REDIS, "replicaCount", 1))),
    "MS-SIZE-001": ([REDIS], _each(_with(REDIS, "memorySizeGb", 0))),
    "SM-ID-001": ([SECRET], _each(_with(SECRET, "secretId", "engine.redis-url"), _with(SECRET, "secretId", "x" * 256))),
    "CF-ENTRY-001": ([WAF, RATE], [[WAF, _ruleset("waf2", "http_request_firewall_managed", _execute(MANAGED))]]),
    "CF-MANAGED-001": ([WAF], [[_ruleset("waf", "http_request_firewall_managed", _execute(MANAGED),
                                        _execute(OWASP, "http.host ne \"a\""), _execute(OWASP, "http.host eq \"a\""))]]),
    "CF-RL-001": ([RATE], _each(_with(RATE, "rules.0.ratelimit.period", 600),
                           _with(RATE, "rules.0.ratelimit.mitigationTimeout", 86400),
                           _with(RATE, "rules", RATE.inputs["rules"] * 3))),
    "GF-UID-001": ([_dashboard("platform-prod-overview")], _each(_dashboard("x" * 41), _dashboard("platform/overview"))),
    "GF-PROV-001": ([_grafana_container("local-overview"), _dashboard("platform-overview")], [[_grafana_container("platform-overview"), _dashboard("platform-overview")]]),
    "GF-RULEGROUP-001": ([Res("grafana:alerting/ruleGroup:RuleGroup", "g", {"intervalSeconds": 60})], _each(Res("grafana:alerting/ruleGroup:RuleGroup", "g", {"intervalSeconds": 15}))),
    "RW-VOL-001": ([RAILWAY_DB], _each(_with(RAILWAY_DB, "num_replicas", 2))),
    "RW-REPLICA-001": ([_with(RAILWAY_DB, "volume_mount_path", None)], _each(_with(RAILWAY_DB, "num_replicas", 51))),
}
CASES["GCS-RETENTION-001"] = (
    [Res("gcp:storage/bucket:Bucket", "logs", {"retentionPolicy": {"retentionPeriod": "7776000"}}),
     Res("gcp:storage/bucket:Bucket", "dr", {"versioning": {"enabled": True}})],
    [[Res("gcp:storage/bucket:Bucket", "logs", {"retentionPolicy": {"retentionPeriod": "7776000"},
                                                 "versioning": {"enabled": True}})]])


# Cloud SQL for PostgreSQL (stacks/contracts/cloudsql.py), written from the docs each rule cites.
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
PSA = Res("gcp:servicenetworking/connection:Connection", "psa", {"network": "projects/p/global/networks/vpc"},
             urn="urn:pulumi:prod::platform::gcp:servicenetworking/connection:Connection::psa")
PG = Res(SQL, "pg", {"name": "pg", "databaseVersion": "POSTGRES_16", "settings": {
    "tier": "db-custom-2-7680", "edition": "ENTERPRISE", "deletionProtectionEnabled": True,
    "ipConfiguration": {"ipv4Enabled": False, "privateNetwork": "projects/p/global/networks/vpc"},
    "backupConfiguration": {"enabled": True, "pointInTimeRecoveryEnabled": True, "transactionLogRetentionDays": 7}},
    "deletionProtection": True}, dependencies=frozenset({PSA.urn}))
REPLICA = Res(SQL, "pg-replica", {**PG.inputs, "name": "pg-replica", "masterInstanceName": "pg",
                                     "settings": {**PG.inputs["settings"], "backupConfiguration": {}}},
                 dependencies=frozenset({PSA.urn}))


def _sql(resource: Res, path: str, value: Any) -> Res:
    changed = _with(Res(resource.type, resource.name, resource.inputs), path, value)
    return Res(resource.type, resource.name, changed.inputs, resource.urn, resource.dependencies)


CASES.update({
    "SQL-TIER-001": ([PG, _sql(PG, "settings.tier", "db-custom-1-3840"), _sql(PG, "settings.tier", "db-custom-96-638976")],
                     _each(_sql(PG, "settings.tier", "db-custom-3-7680"),  # odd vCPUs above 1
                           _sql(PG, "settings.tier", "db-custom-2-7700"),  # not a multiple of 256 MB
                           _sql(PG, "settings.tier", "db-custom-8-7168"),  # below 0.9 GB per vCPU
                           _sql(PG, "settings.tier", "db-custom-2-14336"),  # above 6.5 GB per vCPU
                           _sql(PG, "settings.tier", "db-custom-1-3584"),  # below 3840 MB
                           _sql(PG, "settings.tier", "db-n1-standard-2"))),  # not a PostgreSQL tier
    "SQL-EDITION-001": ([PG, _sql(_sql(PG, "settings.edition", None), "databaseVersion", "POSTGRES_15")],
                        _each(_sql(PG, "settings.edition", None), _sql(PG, "settings.edition", "ENTERPRISE_PLUS"))),
    "SQL-PITR-001": ([PG, _sql(PG, "settings.backupConfiguration.transactionLogRetentionDays", 1)],
                     _each(_sql(PG, "settings.backupConfiguration.enabled", False),
                           _sql(PG, "settings.backupConfiguration.transactionLogRetentionDays", 14))),
    "SQL-REPLICA-001": ([PG, REPLICA], _each(_sql(REPLICA, "settings.backupConfiguration", {"enabled": True}),
                                             _sql(REPLICA, "settings.ipConfiguration", {"ipv4Enabled": False}))),
    "SQL-NET-001": ([PSA, PG], [[PG], [PSA, Res(SQL, "pg", PG.inputs)]]),
    "SQL-DELETE-001": ([PG, _sql(_sql(PG, "deletionProtection", False), "settings.deletionProtectionEnabled", False)],
                       _each(_sql(PG, "deletionProtection", False))),
})
# Cloudflare's rate limiting table (stacks/cloudflare.py): a Pro zone counts over at most a minute.
CONTEXT = Context(zone_plan="pro")


def test_every_rule_has_a_case_a_unique_id_and_a_source() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(CASES)
    for rule in RULES:
        assert "http" in rule.source or ".py" in rule.source or ".go" in rule.source, rule.id
        assert (rule.check is None) != (rule.check_plan is None), rule.id


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_a_compliant_plan_passes_the_rule(rule_id: str) -> None:
    compliant, _ = CASES[rule_id]
    assert [v.line() for v in check(compliant, CONTEXT) if v.rule.id == rule_id] == []


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_each_breach_is_reported_with_the_rule_id(rule_id: str) -> None:
    _, broken = CASES[rule_id]
    for plan in broken:
        reported = [v for v in check(plan, CONTEXT) if v.rule.id == rule_id]
        assert reported, f"{rule_id} missed {[r.inputs for r in plan]}"
        assert all(f": {rule_id}: " in v.line() and v.rule.source in v.line() for v in reported)


def test_below_one_vcpu_the_line_names_the_service_the_rule_and_the_source() -> None:
    broken = _with(SMALL, "template.maxInstanceRequestConcurrency", 80)
    (line,) = [v.line() for v in check([broken]) if v.rule.id == "CR-CPU-001"]
    assert line.startswith(f"{CLOUD_RUN} svc: CR-CPU-001: ")
    assert "0.5 vCPU with concurrency 80" in line
    assert "https://cloud.google.com/run/docs/configuring/services/cpu" in line


def test_unknown_values_are_not_judged() -> None:
    """A preview cannot know an output: a rule must not invent a breach from `[unknown]`."""
    unknown = _with(_with(SMALL, "template.containers.0.resources.limits.cpu", "[unknown]"),
                    "template.maxInstanceRequestConcurrency", 80)
    assert [v.rule.id for v in check([unknown]) if v.rule.id.startswith("CR-CPU")] == []
