"""The order the Pulumi engine creates resources in, checked against what each cloud needs first.

The engine creates a resource once every resource it depends on exists: its `depends_on` and every
resource one of its inputs comes from (the plan records both, as the engine receives them).
"""

from __future__ import annotations

from infra.plan import Plan, PlannedResource

# IAM grants are eventually consistent: "typically 2 minutes, potentially 7 minutes or longer"
# (https://cloud.google.com/iam/docs/access-change-propagation).
IAM_PROPAGATION_SECONDS = 120


def _closure(plan: Plan, resource: PlannedResource) -> set[str]:
    """Every URN created before `resource`, following dependencies transitively."""
    by_urn = {r.urn: r for r in plan.resources}
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn in seen or urn not in by_urn:
            continue
        seen.add(urn)
        todo += by_urn[urn].dependencies
        # A component stands for its children: depending on it waits for all of them.
        todo += [r.urn for r in plan.resources if r.parent == urn]
    return seen


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def test_cloud_run_revisions_start_after_their_secret_versions_and_a_settled_iam_grant(
        committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    services = [r for r in plan.resources if r.type == "gcp:cloudrunv2/service:Service"]
    assert services, "prod runs the engine on Cloud Run"
    secrets = {r.inputs["secretId"]: r for r in plan.resources if r.type == "gcp:secretmanager/secret:Secret"}
    versions = {r.urn: r for r in plan.resources if r.type == "gcp:secretmanager/secretVersion:SecretVersion"}
    grants = [r for r in plan.resources if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"]
    sleeps = {r.urn: r for r in plan.resources if r.type == "time:index/sleep:Sleep"}

    for service in services:
        before = _closure(plan, service)
        refs = [env["valueSource"]["secretKeyRef"] for c in service.inputs["template"]["containers"]
                for env in c["envs"] if "valueSource" in env]
        assert refs, f"{service.name} reads its secrets from Secret Manager"
        for ref in refs:
            secret = secrets[ref["secret"]]
            # `latest` is resolved eventually; a version number right after it is added is strongly
            # consistent (https://cloud.google.com/secret-manager/docs/reference/consistency).
            assert ref["version"] != "latest", f"{service.name}: {ref['secret']} pinned to a version"
            mine = [v for v in versions.values() if secret.urn in v.dependencies]
            assert mine and all(v.urn in before for v in mine), \
                f"{service.name} is created before the version of {ref['secret']} exists"
            granted = [g for g in grants if g.inputs["secretId"] == ref["secret"]]
            assert granted, f"nobody may read {ref['secret']}"
            waits = [s for s in sleeps.values() if s.urn in before
                     and _seconds(s.inputs["createDuration"]) >= IAM_PROPAGATION_SECONDS
                     and all(g.urn in s.dependencies for g in granted)]
            assert waits, (f"{service.name}'s first revision reads {ref['secret']} as soon as its IAM grant "
                           f"is made, before it has propagated")


def test_a_secret_version_a_cloud_run_revision_reads_outlives_its_replacement(committed_plans: dict[str, Plan]) -> None:
    """Prod pins its traffic to the last promoted revision while a new one is judged (infra/ops/rollout.py),
    and a revision reads its secrets by version number whenever an instance starts ("If the secret
    retrieval process fails, the instance doesn't start", cloud.google.com/run/docs/configuring/secrets).
    A rotated secret (a tenant onboarded rotates the registry) or a renamed variable must leave the old
    version in place, or the serving revision can no longer scale or be rolled back to."""
    plan = committed_plans["prod"]
    read = {ref["secretKeyRef"]["secret"] for r in plan.resources if r.type == "gcp:cloudrunv2/service:Service"
            for c in r.wire_inputs["template"]["containers"] for e in c.get("envs", []) if (ref := e.get("valueSource"))}
    secrets = {r.urn: r.inputs["secretId"] for r in plan.resources if r.type == "gcp:secretmanager/secret:Secret"}
    versions = [r for r in plan.resources if r.type == "gcp:secretmanager/secretVersion:SecretVersion"
                and any(secrets.get(d) in read for d in r.dependencies)]

    assert versions
    deleted = sorted(r.name for r in versions if r.inputs.get("deletionPolicy") != "ABANDON")
    assert deleted == [], "deleted when replaced, under the revision that still reads them"


def test_staging_engine_on_railway_starts_after_pocketbase_and_redis_are_deployed(
        committed_plans: dict[str, Plan]) -> None:
    """The engine waits 45 s for PocketBase's schema and Redis when it starts (components/engine): on Railway
    each service's `pulumi up` returns only once its deployment runs (components/backends/railway.py
    `_wait_for`), so the engine's service must be created after both, or all three start together and the
    engine's wait can expire first (#20 item 14)."""
    plan = committed_plans["staging"]
    railway = {r.inputs["name"]: r for r in plan.resources if r.type == "pulumi-python:dynamic/railway:Service"}
    engine = railway["commission-engine"]
    before = _closure(plan, engine)

    for dependency in ("pocketbase", "redis"):
        assert railway[dependency].urn in before, \
            f"staging's engine is created in parallel with its {dependency} (its URL is a plain string)"
