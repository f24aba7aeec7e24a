"""#22 item 6: no stack output carries a credential. Anyone with Stack Read reads every output, secrets
included (`pulumi stack output --show-secrets`), so each credential goes where it is read instead: a
tenant's keys to a Secret Manager secret of its own that no workload may read (prod), the DR
buckets to a restore account of their own that only reads them, PocketBase's settings key to the secret
its VM already reads (components/backends/gce.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra.config import load_model
from infra.plan import Plan
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, STACKS

PROD_PROJECT = "acme-commerce-prod"
DEPLOY = f"serviceAccount:deploy@{PROD_PROJECT}.iam.gserviceaccount.com"
"""The bootstrap's deploy account (infra/bootstrap, `account_id="deploy"`)."""


def _secret_paths(value: Any, path: str) -> list[str]:
    """Where in an output the plan shows a secret (`infra.plan.mask` turns each into `[secret:<digest>]`)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _secret_paths(v, f"{path}.{k}")]  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, f"{path}[{i}]")]  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return [path] if isinstance(value, str) and value.startswith("[secret") else []


@pytest.mark.parametrize("stack", STACKS)
def test_no_stack_output_is_a_secret(stack: str, committed_plans: dict[str, Plan]) -> None:
    outputs = committed_plans[stack].outputs

    assert outputs, "the plan records the stack's outputs"
    assert [p for name, value in outputs.items() for p in _secret_paths(value, name)] == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_output_names_a_key_for_the_dr_buckets(stack: str, committed_plans: dict[str, Plan]) -> None:
    """The HMAC key's id alone is half the credential and says which key to steal; the restore needs neither."""
    assert not {"pocketbaseReplicaSecret", "pocketbaseReplicaAccessKeyId", "pocketbaseSettingsKey",
                "tenantKeys"} & set(committed_plans[stack].outputs)


def _by_type(plan: Plan, type_: str) -> list[Any]:
    return [r for r in plan.resources if r.type == type_]


def test_prod_keeps_each_tenants_keys_in_a_secret_of_its_own_that_no_workload_may_read(
        committed_plans: dict[str, Plan]) -> None:
    """Read only through project-level Secret Manager access (the bootstrap's deploy account, the admins): no
    workload's account, the engine's included, is granted any tenant's secret."""
    plan = committed_plans["prod"]
    slugs = {t.slug for t in load_model(read_stack_file(PROJECT_DIR / "Pulumi.prod.yaml")).tenants}
    secrets = {r.inputs["secretId"]: r for r in _by_type(plan, "gcp:secretmanager/secret:Secret")}
    grants = _by_type(plan, "gcp:secretmanager/secretIamMember:SecretIamMember")

    assert slugs
    for slug in slugs:
        secret_id = f"tenant-{slug}-keys"
        assert secret_id in secrets, sorted(secrets)
        assert secrets[secret_id].inputs["project"] == PROD_PROJECT
        versions = [r for r in _by_type(plan, "gcp:secretmanager/secretVersion:SecretVersion")
                    if r.name == f"tenant-{slug}-keys-v"]
        assert len(versions) == 1 and str(versions[0].inputs["secretData"]).startswith("[secret:")
        assert [g.inputs["member"] for g in grants if g.inputs["secretId"] == secret_id] == []


def test_prod_restores_through_a_read_only_account_of_its_own(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    accounts = {r.inputs["accountId"]: r for r in _by_type(plan, "gcp:serviceaccount/account:Account")}
    restore_member = f"serviceAccount:pocketbase-restore@{PROD_PROJECT}.iam.gserviceaccount.com"
    # The DR buckets (backups and replica), not the access-log bucket beside them: a restore reads no access log.
    buckets = {r.inputs["name"] for r in _by_type(plan, "gcp:storage/bucket:Bucket")
               if (r.inputs.get("labels") or {}).get("platform-role") == "pocketbase-dr"}
    assert len(buckets) == 2

    assert "pocketbase-restore" in accounts
    restore_grants = [r.inputs for r in _by_type(plan, "gcp:storage/bucketIAMMember:BucketIAMMember")
                      if r.name.endswith("-restore")]
    assert sorted((g["bucket"], g["role"]) for g in restore_grants) == sorted(
        (b, "roles/storage.objectViewer") for b in buckets)
    # No key is minted for it: the operator acts as it with their own short-lived Google credentials.
    assert [k.inputs for k in _by_type(plan, "gcp:storage/hmacKey:HmacKey")
            if "restore" in str(k.inputs.get("serviceAccountEmail"))] == []
    assert {str(g["member"]) for g in restore_grants} == {restore_member}
    # It verifies the copy with PocketBase's settings key, read from the secret the VM reads, as itself.
    settings = [r.inputs for r in _by_type(plan, "gcp:secretmanager/secret:Secret")
                if r.inputs["secretId"] == "pocketbase-prod-pb-encryption-key"]
    assert len(settings) == 1
    readers = sorted(str(g.inputs["member"]) for g in _by_type(plan, "gcp:secretmanager/secretIamMember:SecretIamMember")
                     if g.inputs["secretId"] == "pocketbase-prod-pb-encryption-key")
    assert restore_member in readers and DEPLOY not in readers


def test_each_deploy_job_reads_only_the_one_key_its_smoke_uses() -> None:
    """Before: `pulumi stack output tenantKeys --show-secrets` put every tenant's keys in the job to use one."""
    workflows = PROJECT_DIR / ".github" / "workflows"
    deploy: Any = yaml.safe_load((workflows / "deploy.yml").read_text())

    for path in sorted(workflows.glob("*.yml")):
        assert "--show-secrets" not in path.read_text(), f"{path.name} reads secret outputs"
    for job in STACKS:
        runs = [str(step.get("run", "")) for step in deploy["jobs"][job]["steps"]]
        smoke = next(r for r in runs if "python -m engine smoke" in r)
        assert f"-m infra tenant-keys --stack {job} " in smoke, job
        assert '--tenant "$SMOKE_TENANT" --key admin' in smoke, job
