"""Each rule of the pack, run through Pulumi's Analyzer protocol (not by calling its function): a
compliant and a non-compliant resource, asserting the rule id and message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.analyzer import AnalyzerInput, PolicyPackError, PolicyPackProcess, run_policies
from policies.pack import RULES

ZONE = "7c9e1f3a5b7d4c6e8f0a1b2c3d4e5f60"
MANAGED, OWASP = "efb7b8c949ac4650a09736fc376e9aee", "4814384a9e5d4991b9815dcfc25d2f1f"


def _resource(type_: str, name: str, props: dict[str, Any], stack: str = "prod") -> AnalyzerInput:
    return AnalyzerInput(f"urn:pulumi:{stack}::platform::{type_}::{name}", type_, name, props)


def _token(scope: dict[str, str], expires: str | None = "2027-06-30T00:00:00Z") -> dict[str, Any]:
    return {"policies": [{"effect": "allow", "permissionGroups": [{"id": "e17beae8b8cb423a99b1730f21238bed"}],
                          "resources": json.dumps(scope)}], **({"expiresOn": expires} if expires else {})}


def _cloud_run(**template: Any) -> dict[str, Any]:
    return {"name": "commission-engine", "ingress": "INGRESS_TRAFFIC_ALL", "labels": {"platform-public": "true"},
            "template": {"serviceAccount": "commission-engine-prod@acme.iam.gserviceaccount.com",
                         "scaling": {"minInstanceCount": 1, "maxInstanceCount": 5},
                         "containers": [{"image": "ghcr.io/acme/commission-engine:1a2b3c4d5e6f"}], **template}}


def _railway(name: str, **props: Any) -> dict[str, Any]:
    return {"name": name, "image": f"ghcr.io/acme/{name}:1a2b3c4d5e6f", "num_replicas": 1, "vcpus": 1,
            "memory_gb": 1, **props}


def _waf(owasp_action: str) -> dict[str, Any]:
    return {"zoneId": ZONE, "phase": "http_request_firewall_managed", "rules": [
        {"action": "execute", "expression": "true", "actionParameters": {"id": MANAGED}},
        {"action": "execute", "expression": "true", "actionParameters": {
            "id": OWASP, "overrides": {"rules": [{"id": "x", "action": owasp_action}]}}}]}


POCKETBASE_ENV = {"PB_BACKUP_CRON": "0 3 * * *", "PB_BACKUP_S3_BUCKET": "b",
                  "PB_BACKUP_S3_ENDPOINT": "https://s3.example.com"}
TOKEN, ZONE_SETTING = "cloudflare:index/apiToken:ApiToken", "cloudflare:index/zoneSetting:ZoneSetting"
DNS, RULESET = "cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/ruleset:Ruleset"
CLOUD_RUN, RAILWAY = "gcp:cloudrunv2/service:Service", "pulumi-python:dynamic/railway:Service"
VERCEL_ENV = "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable"
IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"

# rule -> (compliant resource, non-compliant resource, what the violation says)
RESOURCE_CASES: dict[str, tuple[AnalyzerInput, AnalyzerInput, str]] = {
    "PLAT-IAM-001": (_resource(TOKEN, "purge", _token({f"com.cloudflare.api.account.zone.{ZONE}": "*"})),
                     _resource(TOKEN, "purge", _token({"com.cloudflare.api.account.zone.*": "*"})),
                     "expected exactly one zone"),
    "PLAT-IAM-002": (_resource(IAM_MEMBER, "grant", {"role": "roles/logging.logWriter", "member": "x"}),
                     _resource(IAM_MEMBER, "grant", {"role": "roles/editor", "member": "x"}),
                     "grants the primitive role roles/editor"),
    "PLAT-IAM-003": (_resource(CLOUD_RUN, "engine", _cloud_run()),
                     _resource(CLOUD_RUN, "engine", _cloud_run(serviceAccount="123-compute@developer.gserviceaccount.com")),
                     "runs as the default compute service account"),
    "PLAT-IAM-005": (_resource(VERCEL_ENV, "env", {"key": "REVALIDATE_TOKEN", "sensitive": True}),
                     _resource(VERCEL_ENV, "env", {"key": "REVALIDATE_TOKEN", "sensitive": False}),
                     "REVALIDATE_TOKEN holds a credential but is not marked sensitive"),
    "PLAT-TLS-001": (_resource(ZONE_SETTING, "ssl", {"zoneId": ZONE, "settingId": "ssl", "value": "strict"}),
                     _resource(ZONE_SETTING, "ssl", {"zoneId": ZONE, "settingId": "ssl", "value": "flexible"}),
                     "ssl is 'flexible'; expected strict"),
    "PLAT-WAF-002": (_resource(RULESET, "edge-waf", _waf("block")), _resource(RULESET, "edge-waf", _waf("log")),
                     "OWASP runs with action 'log'"),
    "PLAT-WAF-003": (_resource(RULESET, "limits", {"phase": "http_ratelimit", "rules": [{"description": "api",
                     "ratelimit": {"characteristics": ["ip.src"], "period": 60, "requestsPerPeriod": 600}}]}),
                     _resource(RULESET, "limits", {"phase": "http_ratelimit", "rules": [{"description": "api",
                     "ratelimit": {"characteristics": ["ip.src"], "period": 10, "requestsPerPeriod": 5000}}]}),
                     "allows 30000 requests per minute per client; expected at most 6000"),
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
    "PLAT-DATA-003": (_resource(RAILWAY, "cache", _railway("redis", variables={"REDIS_PASSWORD": "x"})),
                      _resource(RAILWAY, "cache", _railway("redis", variables={"REDIS_PASSWORD": "x"}, public_port=6379)),
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
    "PLAT-IMG-001": (_resource(CLOUD_RUN, "engine", _cloud_run()),
                     _resource(CLOUD_RUN, "engine", _cloud_run(containers=[{"image": "ghcr.io/acme/engine:latest"}])),
                     "runs ghcr.io/acme/engine:latest"),
}

PROXIED = _resource(DNS, "shop", {"zoneId": ZONE, "type": "CNAME", "name": "shop.acme.com", "proxied": True})
SSL = _resource(ZONE_SETTING, "ssl", {"zoneId": ZONE, "settingId": "ssl", "value": "strict"})
REDIRECT = _resource(RULESET, "redirect", {"zoneId": ZONE, "phase": "http_request_dynamic_redirect", "rules": [
    {"action": "redirect", "expression": "not ssl"}]})
INVOKER = _resource("gcp:cloudrunv2/serviceIamMember:ServiceIamMember", "invoker",
                    {"name": "commission-engine", "member": "allUsers", "role": "roles/run.invoker"})
ENGINE_RAILWAY = _resource(RAILWAY, "engine", _railway("commission-engine", public_port=8000))
LOG_BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"

STACK_CASES: dict[str, tuple[list[AnalyzerInput], list[AnalyzerInput], str]] = {
    "PLAT-IAM-004": ([_resource(CLOUD_RUN, "engine", _cloud_run()), INVOKER],
                     [_resource(CLOUD_RUN, "engine", {**_cloud_run(), "labels": {}}), INVOKER],
                     "lets anyone invoke 'commission-engine', which is not labelled platform-public=true"),
    "PLAT-TLS-002": ([SSL, REDIRECT], [SSL], f"zone {ZONE} serves plain HTTP"),
    "PLAT-WAF-001": ([PROXIED, _resource(RULESET, "edge-waf", _waf("block"))],
                     [PROXIED, _resource(RULESET, "edge-waf", {**_waf("block"), "rules": _waf("block")["rules"][:1]})],
                     "shop.acme.com is proxied but not covered by the Cloudflare OWASP Core Ruleset"),
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
}


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure()
        yield process


def _violations(response: Any, rule: str) -> list[str]:
    return [d.message for d in response.diagnostics if d.policyName == rule]


def test_the_pack_announces_every_rule_of_the_table_with_its_level(pack: PolicyPackProcess) -> None:
    info = pack.info()

    announced = {p.name: p.enforcementLevel for p in info.policies}

    assert info.name == "platform-policies"
    assert set(announced) == {rule.id for rule in RULES}
    assert announced["PLAT-LOG-002"] == 0 and announced["PLAT-IAM-001"] == 1  # advisory, mandatory


def test_every_rule_has_a_compliant_and_a_non_compliant_case() -> None:
    assert set(RESOURCE_CASES) | set(STACK_CASES) == {rule.id for rule in RULES}


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
    assert messages and says in messages[0], messages


def test_a_waiver_makes_the_rule_not_applicable_to_that_resource_only_and_keeps_its_reason() -> None:
    _, bad, _ = RESOURCE_CASES["PLAT-DNS-001"]
    other = _resource(DNS, "blog", {"type": "CNAME", "name": "blog.acme.com", "proxied": False})
    reason = "the blog is hosted by a vendor that refuses proxied traffic until Q2"

    report = run_policies([bad, other], {"PLAT-DNS-001": {"shop": reason}})

    assert [(f.rule, f.resource) for f in report.findings if f.rule == "PLAT-DNS-001"] == [("PLAT-DNS-001", "blog")]
    assert ("PLAT-DNS-001", f"waived for shop: {reason}") in report.not_applicable


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
