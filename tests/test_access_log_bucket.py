"""The access-log bucket Cloud Storage would accept: a retention policy OR object versioning, never both.

"Retention policies and Object Versioning are mutually exclusive" (https://cloud.google.com/storage/docs/bucket-lock;
SonarSource S6412: "Object versioning cannot be enabled on a bucket with a retention policy"). The access-log
bucket keeps its logs under a 90-day retention policy (S5), so it has no versioning; the pack (PLAT-DATA-008)
accepts a retention policy of at least 90 days in place of versioning and refuses a bucket with both; the service
contract (stacks/contracts/storage.py) refuses both before any deploy; a lifecycle rule deletes a log past 90 days."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.analyzer import AnalyzerInput, PolicyPackProcess
from infra.plan import Plan
from stacks.contracts import check

BUCKET = "gcp:storage/bucket:Bucket"
DAY = 86400


@dataclass(frozen=True)
class Res:
    type: str
    name: str
    inputs: dict[str, Any] = field(default_factory=dict[str, Any])


def _props(name: str, **changes: Any) -> dict[str, Any]:
    return {"name": name, "project": "acme", "publicAccessPrevention": "enforced", "uniformBucketLevelAccess": True,
            "versioning": {"enabled": True}, "logging": {"logBucket": "acme-access-logs"}, **changes}


def _logs(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"versioning": None, "logging": None, "labels": {"platform-role": "access-logs"},
                            "retentionPolicy": {"retentionPeriod": str(90 * DAY)}, **changes}
    return _props("acme-access-logs", **body)


# ---- the service contract ----

def test_the_contract_refuses_a_bucket_with_versioning_and_a_retention_policy() -> None:
    both = Res(BUCKET, "logs", _logs(versioning={"enabled": True}))
    lines = [v.line() for v in check([both])]
    assert [line for line in lines if ": GCS-RETENTION-001: " in line and "bucket-lock" in line], lines


@pytest.mark.parametrize("inputs", [_logs(), _props("acme-backups"),
                                    _logs(versioning={"enabled": False}),
                                    _logs(versioning={"enabled": True}, retentionPolicy=None)])
def test_the_contract_passes_either_alone(inputs: dict[str, Any]) -> None:
    assert [v.line() for v in check([Res(BUCKET, "b", inputs)]) if v.rule.id == "GCS-RETENTION-001"] == []


def test_prods_plan_breaks_no_storage_contract(committed_plans: dict[str, Plan]) -> None:
    buckets = [r for r in committed_plans["prod"].resources if r.type == BUCKET]
    assert len(buckets) == 3
    assert [v.line() for v in check(buckets)] == []


# ---- the policy pack, over the Analyzer protocol ----

@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure()
        yield process


def _data_008(pack: PolicyPackProcess, logs: dict[str, Any]) -> list[str]:
    resources = [AnalyzerInput(f"urn:pulumi:prod::platform::{BUCKET}::{p['name']}", BUCKET, str(p["name"]), p)
                 for p in (logs, _props("acme-backups"))]
    responses = [pack.analyze(r) for r in resources] + [pack.analyze_stack(resources)]
    return [d.message for response in responses for d in response.diagnostics
            if d.enforcementLevel == 1 and d.policyName == "PLAT-DATA-008"]


def test_the_pack_accepts_a_90_day_retention_policy_in_place_of_versioning(pack: PolicyPackProcess) -> None:
    assert _data_008(pack, _logs()) == []


@pytest.mark.parametrize("logs,says", [
    (_logs(versioning={"enabled": True}), "mutually exclusive"),
    (_logs(retentionPolicy={"retentionPeriod": str(30 * DAY)}), "versioning"),
    (_logs(retentionPolicy=None), "versioning"),
])
def test_the_pack_refuses_both_and_a_short_retention_without_versioning(pack: PolicyPackProcess,
                                                                         logs: dict[str, Any], says: str) -> None:
    found = _data_008(pack, logs)
    assert any(says in message for message in found), found


# ---- the program ----

def test_prods_access_log_bucket_keeps_logs_90_days_then_deletes_them(committed_plans: dict[str, Plan]) -> None:
    [logs] = [r.inputs for r in committed_plans["prod"].resources
              if r.type == BUCKET and r.inputs.get("labels", {}).get("platform-role") == "access-logs"]

    versioning: dict[str, Any] = logs.get("versioning") or {}
    assert versioning.get("enabled") is not True
    assert int(logs["retentionPolicy"]["retentionPeriod"]) == 90 * DAY
    deletes = [rule["condition"] for rule in logs.get("lifecycleRules", []) if rule["action"]["type"] == "Delete"]
    assert [c.get("age") for c in deletes] == [91]
