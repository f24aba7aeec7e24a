"""What the program, the profiles, the SLO spec and the rules generated from it produce, against the
document's numbers (tests/document_numbers.py, copied by hand from the requirements). The code's own
constants are never the expectation: a size, threshold, window, objective or burn rate changed in the
code alone fails here (issue #21, item 1)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.observability import rules as rules_module
from components.observability.__main__ import stack_plan
from components.observability.spec import load
from infra.plan import Plan, PlannedResource
from stacks import registry
from tests import document_numbers as doc
from tests.conftest import PROJECT_DIR, plan_of

GENERATED = PROJECT_DIR / "components" / "observability" / "generated"
DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    match = DURATION.match(duration)
    assert match is not None, duration
    return int(match.group(1)) * UNITS[match.group(2)]


def prom_duration(total_s: int) -> str:
    """Prometheus's own spelling of a duration: the largest unit that divides it."""
    for unit in ("d", "h", "m", "s"):
        if total_s % UNITS[unit] == 0:
            return f"{total_s // UNITS[unit]}{unit}"
    raise AssertionError(total_s)


@pytest.fixture(scope="module")
def prod() -> Plan:
    return plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")


def _one(plan: Plan, type_: str, name: str) -> PlannedResource:
    found = [r for r in plan.resources if r.type == type_ and r.inputs.get("name") == name]
    assert len(found) == 1, [(r.type, r.inputs.get("name")) for r in plan.resources if r.type == type_]
    return found[0]


# ---- sizes (C1, C2, C3) ----

def test_prod_pocketbase_is_sized_as_c2_says() -> None:
    pocketbase = registry.PROFILES["prod"].services["pocketbase"]

    assert (pocketbase.cpu_millis / 1000, pocketbase.memory_mib / 1024) == (
        doc.POCKETBASE_STEADY.vcpus, doc.POCKETBASE_STEADY.memory_gib), doc.C2_QUOTE
    assert (pocketbase.peak_cpu_millis / 1000, pocketbase.peak_memory_mib / 1024) == (
        doc.POCKETBASE_PEAK.vcpus, doc.POCKETBASE_PEAK.memory_gib), doc.C2_QUOTE


def test_prod_redis_is_sized_as_c3_says() -> None:
    redis = registry.PROFILES["prod"].services["redis"]

    assert (redis.cpu_millis / 1000, redis.memory_mib / 1024) == (doc.REDIS_STEADY.vcpus,
                                                                  doc.REDIS_STEADY.memory_gib), doc.C3_QUOTE


def test_every_stack_keeps_pocketbase_within_c2s_peak() -> None:
    for name, profile in registry.PROFILES.items():
        pocketbase = profile.services["pocketbase"]
        assert pocketbase.peak_cpu_millis / 1000 <= doc.POCKETBASE_PEAK.vcpus, (name, doc.C2_QUOTE)
        assert pocketbase.peak_memory_mib / 1024 <= doc.POCKETBASE_PEAK.memory_gib, (name, doc.C2_QUOTE)


def test_prods_plan_declares_the_vm_memorystore_and_engine_the_document_sizes(prod: Plan) -> None:
    vm = _one(prod, "gcp:compute/instance:Instance", "pocketbase-prod")
    # E2 custom machine types are `e2-custom-<vCPUs>-<MiB>`
    # (cloud.google.com/compute/docs/instances/creating-instance-with-custom-machine-type).
    match = re.fullmatch(r"e2-custom-(\d+)-(\d+)", str(vm.inputs["machineType"]))
    assert match is not None, vm.inputs["machineType"]
    assert (int(match.group(1)), int(match.group(2)) / 1024) == (doc.POCKETBASE_PEAK.vcpus,
                                                                  doc.POCKETBASE_PEAK.memory_gib), doc.C2_QUOTE

    memorystore = _one(prod, "gcp:redis/instance:Instance", "cache-prod")
    assert memorystore.inputs["memorySizeGb"] == doc.REDIS_STEADY.memory_gib, doc.C3_QUOTE

    engine = [r for r in prod.resources if r.type == "gcp:cloudrunv2/service:Service"
              and r.inputs.get("name") == "commission-engine"
              and r.inputs.get("labels", {}).get("platform-serving") == "true"]
    assert len(engine) == 1
    scaling = engine[0].inputs["template"]["scaling"]
    assert scaling["minInstanceCount"] == doc.ENGINE_MIN_WARM, doc.C1_QUOTE
    low, high = doc.ENGINE_MAX_REPLICAS_RANGE
    assert low <= scaling["maxInstanceCount"] <= high, doc.C1_QUOTE


def test_prod_engine_scales_from_one_warm_to_the_c1_range() -> None:
    engine = registry.PROFILES["prod"].services["engine"]
    low, high = doc.ENGINE_MAX_REPLICAS_RANGE

    assert engine.min_instances == doc.ENGINE_MIN_WARM and low <= engine.max_instances <= high, doc.C1_QUOTE


# ---- caches, backups, retention, recovery (C5, C6, C7, C8, S5) ----

def test_every_stack_caches_catalog_json_24_hours_at_the_edge() -> None:
    for name, profile in registry.PROFILES.items():
        assert profile.edge.catalog_edge_ttl_seconds == doc.CATALOG_EDGE_TTL_S, (name, doc.C5_QUOTE)


def test_the_engine_caches_commission_results_five_minutes(prod: Plan) -> None:
    from engine.settings import Settings

    default = Settings.model_fields["summary_cache_seconds"].default
    engine_envs = {e["name"]: e.get("value") for r in prod.resources if r.type == "gcp:cloudrunv2/service:Service"
                   and r.inputs.get("name") == "commission-engine"
                   for c in r.inputs["template"]["containers"] for e in c.get("envs", [])}
    assert int(engine_envs.get("SUMMARY_CACHE_SECONDS", default)) == doc.COMMISSION_CACHE_TTL_S, doc.C6_QUOTE


def _at_least_daily(cron: str) -> bool:
    fields = cron.split()
    return len(fields) == 5 and fields[2:] == ["*", "*", "*"] and "/" not in fields[0] + fields[1]


@pytest.mark.parametrize("cron,daily", [("0 3 * * *", True), ("0 3 * * 0", False), ("0 3 */7 * *", False),
                                        ("0 3 1 * *", False)])
def test_the_daily_reading_of_a_cron_is_itself_right(cron: str, daily: bool) -> None:
    assert _at_least_daily(cron) is daily


def test_every_stack_backs_up_daily_and_keeps_logs_90_days() -> None:
    for name, profile in registry.PROFILES.items():
        dr = profile.disaster_recovery
        assert _at_least_daily(dr.backup_cron), (name, dr.backup_cron, doc.C7_QUOTE)
        assert dr.log_retention_days >= doc.LOG_RETENTION_DAYS, (name, doc.S5_QUOTE)


def test_prods_plan_keeps_its_logs_90_days(prod: Plan) -> None:
    buckets = [r for r in prod.resources if r.type == "gcp:logging/projectBucketConfig:ProjectBucketConfig"]

    assert buckets and all(b.inputs["retentionDays"] >= doc.LOG_RETENTION_DAYS for b in buckets), doc.S5_QUOTE


def test_prod_fails_over_within_the_rto_and_targets_the_rpo() -> None:
    dr = registry.PROFILES["prod"].disaster_recovery

    assert dr.failover_region_enabled, doc.C8_QUOTE
    assert dr.rto_minutes * 60 <= doc.RTO_S, doc.C8_QUOTE
    assert dr.rpo_seconds == doc.RPO_S, doc.RPO_SOURCE


def test_prods_canary_rolls_back_at_the_m1_and_m2_alert_thresholds() -> None:
    canary = registry.PROFILES["prod"].canary

    assert canary.enabled, doc.D8_QUOTE
    assert canary.rollback_error_rate_percent / 100 == doc.ALERTS["M2"].above, doc.D8_QUOTE
    assert canary.rollback_p95_latency_ms / 1000 == doc.ALERTS["M1"].above, doc.D8_QUOTE


# ---- the rules: generated now from the spec, and as committed ----

def _groups_from_source() -> dict[str, Any]:
    """The rules prod deploys, generated now from the spec and prod's stack file (its overrides included)."""
    return rules_module.rule_groups(stack_plan("prod").spec)


SOURCES: dict[str, Any] = {
    "prod's, generated from the spec now": _groups_from_source,
    "committed prometheus-rules.prod.yml": lambda: yaml.safe_load((GENERATED / "prometheus-rules.prod.yml").read_text()),
    "committed prometheus-rules.staging.yml": lambda: yaml.safe_load(
        (GENERATED / "prometheus-rules.staging.yml").read_text()),
}


@pytest.fixture(scope="module", params=sorted(SOURCES))
def groups(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    document = SOURCES[request.param]()
    return {g["name"]: g for g in document["groups"]}


def _rules(groups: dict[str, dict[str, Any]], group: str) -> list[dict[str, Any]]:
    return groups[group]["rules"]


def _alerts_of(groups: dict[str, dict[str, Any]], requirement: str) -> list[dict[str, Any]]:
    return [r for r in _rules(groups, "platform-alerts") if r["labels"]["requirement"] == requirement]


def _recorded(groups: dict[str, dict[str, Any]], record: str) -> str:
    found = [r["expr"] for g in groups.values() for r in g["rules"] if r.get("record") == record]
    assert len(found) == 1, record
    return found[0]


@pytest.mark.parametrize("requirement", sorted(doc.ALERTS))
def test_each_alert_fires_at_the_documents_threshold_window_and_duration(
        groups: dict[str, dict[str, Any]], requirement: str) -> None:
    expected = doc.ALERTS[requirement]
    alerts = _alerts_of(groups, requirement)
    assert alerts, f"no alert for {requirement}: {expected.quote}"
    alert = alerts[0]
    match = re.fullmatch(r"(sli:[a-z0-9_]+) > ([0-9.e+-]+)", alert["expr"])
    assert match is not None, alert["expr"]
    assert float(match.group(2)) == pytest.approx(expected.above), (requirement, expected.quote, alert["expr"])
    if expected.for_s is not None:
        assert seconds(alert["for"]) == expected.for_s, (requirement, expected.quote, alert["for"])
    sli = _recorded(groups, match.group(1))
    if expected.window_s is not None:
        windows = set(re.findall(r"\[(\d+[smhd])\]", sli))
        assert windows == {prom_duration(expected.window_s)}, (requirement, expected.quote, sli)
    if expected.le is not None:
        assert set(re.findall(r'le="([^"]+)"', sli)) == {expected.le}, (requirement, expected.quote, sli)


def test_the_m1_alert_reads_p95_and_the_b4_alert_p95(groups: dict[str, dict[str, Any]]) -> None:
    for requirement in ("M1", "U4", "B4"):
        match = re.fullmatch(r"(sli:[a-z0-9_]+) > .*", _alerts_of(groups, requirement)[0]["expr"])
        assert match is not None
        assert "histogram_quantile(0.95," in _recorded(groups, match.group(1)), requirement


SLO_BUDGETS = {"M2": 1 - doc.M2_SLO_OBJECTIVE_PERCENT / 100, "M1": 1 - doc.M1_SLO_PERCENTILE / 100}


@pytest.mark.parametrize("requirement", sorted(SLO_BUDGETS))
def test_the_error_budget_burn_alerts_follow_the_sre_workbook_at_the_documents_objective(
        groups: dict[str, dict[str, Any]], requirement: str) -> None:
    slo = next(s for s in load().slos if s.requirement == requirement)
    burn = [r for r in _rules(groups, "platform-slo-burn-alerts") if r["labels"].get("slo") == slo.name]
    assert len(burn) == len(doc.BURN_WINDOWS)
    for window, rule in zip(doc.BURN_WINDOWS, burn, strict=True):
        pairs = re.findall(r"\((sli:[a-z0-9_]+:rate(\d+[smhd])) > \(([0-9.e+-]+) \* ([0-9.e+-]+)\)\)", rule["expr"])
        assert [w for _, w, _, _ in pairs] == [prom_duration(window.long_s), prom_duration(window.short_s)], rule
        for record, duration, rate, budget in pairs:
            assert float(rate) == pytest.approx(window.burn_rate), (rule["alert"], rate, window)
            assert float(budget) == pytest.approx(SLO_BUDGETS[requirement]), (rule["alert"], budget)
            assert f"[{duration}]" in _recorded(groups, record)
        assert rule["labels"]["severity"] == window.severity


def test_the_latency_slo_counts_requests_within_500_ms_as_good() -> None:
    slo = next(s for s in load().slos if s.requirement == "M1")

    assert set(re.findall(r'le="([^"]+)"', slo.errors)) == {f"{doc.M1_SLO_LATENCY_S:g}"}, doc.M1_SLO_QUOTE


def test_the_burn_rates_are_the_workbooks_budget_shares() -> None:
    """The table itself: 2 % of a 30-day budget in an hour is 14.4x, 5 % in 6 h 6x, 10 % in 1 d 3x, 10 % in 3 d 1x."""
    assert [round(w.burn_rate, 6) for w in doc.BURN_WINDOWS] == [14.4, 6.0, 3.0, 1.0]


def test_the_hand_written_expectations_do_not_come_from_the_code() -> None:
    source = Path(doc.__file__).read_text()

    assert "import" not in source.replace("from __future__ import annotations", "").replace(
        "from dataclasses import dataclass", "")


def test_the_replica_lag_alert_fires_over_the_rpo(groups: dict[str, dict[str, Any]]) -> None:
    """The restore test's measured lag (drtool) against issue #13's RPO: over it, the alert pages."""
    alerts = [r for r in _rules(groups, "platform-alerts") if r["alert"] == "ReplicaLagAboveRpo"]
    assert len(alerts) == 1
    match = re.fullmatch(r"(sli:[a-z0-9_]+) > ([0-9.e+-]+)", alerts[0]["expr"])
    assert match is not None and float(match.group(2)) == doc.RPO_S, (alerts[0]["expr"], doc.RPO_SOURCE)
    assert "pocketbase_replica_lag_seconds" in _recorded(groups, match.group(1))
