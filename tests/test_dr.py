"""Disaster recovery in the prod plan (#13): the buckets, the replication and the restore test it
declares, what PLAT-DATA-006 refuses, and the pins the suite used to let slip (backup retention 30 ->
1 day, the failover region switched off, an RTO of 1,440 minutes)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from infra.plan import Plan
from policies.pack import RULES
from policies.rule import Finding, Resource
from stacks import registry
from tests.conftest import PROJECT_DIR, plan_of

RULE = "PLAT-DATA-006"


def _findings(plan: Plan) -> list[str]:
    rule = next((r for r in RULES if r.id == RULE), None)
    assert rule is not None, f"{RULE} is not in the pack"
    assert rule.stack_check is not None
    resources = [Resource(r.type, r.name, r.urn, r.wire_inputs) for r in plan.resources if r.custom]
    found: list[tuple[str, Finding]] = rule.stack_check(resources, dict(rule.config_defaults or {}))
    return [f if isinstance(f, str) else f.message for _, f in found]


def _prod_with(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> Plan:
    profile = registry.PROFILES["prod"]
    dr = dataclasses.replace(profile.disaster_recovery, **changes)
    monkeypatch.setitem(registry.PROFILES, "prod", dataclasses.replace(profile, disaster_recovery=dr))
    return plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")


@pytest.fixture(scope="module")
def prod() -> Plan:
    return plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")


def test_prod_declares_encrypted_versioned_private_buckets_in_its_own_project_the_replica_in_the_failover_region(
        prod: Plan) -> None:
    buckets = {r.inputs["name"]: r.inputs for r in prod.resources if r.type == "gcp:storage/bucket:Bucket"
               and r.inputs.get("labels", {}).get("platform-role") == "pocketbase-dr"}

    assert set(buckets) == {"acme-commerce-prod-pocketbase-backups", "acme-commerce-prod-pocketbase-replica"}
    for bucket in buckets.values():
        assert bucket["project"] == "acme-commerce-prod"
        assert bucket["versioning"] == {"enabled": True}
        assert bucket["publicAccessPrevention"] == "enforced" and bucket["uniformBucketLevelAccess"] is True
        assert "encryption" not in bucket  # Google-managed AES-256 (cloud.google.com/docs/security/encryption)
    assert buckets["acme-commerce-prod-pocketbase-backups"]["location"] == "SOUTHAMERICA-EAST1"
    assert buckets["acme-commerce-prod-pocketbase-replica"]["location"] == "US-EAST1"


def test_prod_replicates_continuously_and_tests_a_restore_daily(prod: Plan) -> None:
    assert _findings(prod) == []
    # Where the replica is, for `python -m infra restore`; no key to it (#22 item 6, tests/test_no_secret_outputs.py).
    assert "pocketbaseReplica" in prod.outputs


def test_backups_kept_one_day_instead_of_thirty_fail_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    findings = _findings(_prod_with(monkeypatch, backup_retention_days=1))

    assert any("deletes overwritten or deleted versions after 1 days; expected at least 30" in f
               for f in findings), findings


def test_the_failover_region_switched_off_fails_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    findings = _findings(_prod_with(monkeypatch, failover_region_enabled=False))

    assert any("the primary's region" in f and "expected a replica bucket in the failover region" in f
               for f in findings), findings


def test_prod_recovers_within_an_hour() -> None:
    """C9: RTO under an hour; the drill holds its measured RTO to this (infra/ops/drill.py)."""
    assert registry.PROFILES["prod"].disaster_recovery.rto_minutes <= 60
