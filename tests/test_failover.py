"""The secondary region (#13 item 7, C8, C9): prod declares a standby in `platform:gcp.failoverRegion`
that `platform:gcp.serving` switches the edge's API origin to, `python -m infra failover` flips it with
the real CLI, and the policy pack refuses a prod stack without a standby, or with two writers."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError
from infra.plan import Plan, PlannedResource
from policies.rule import Finding, Resource
from tests.conftest import PROJECT_DIR, plan_of, stack_document, write_stack

PRIMARY, FAILOVER = "southamerica-east1", "us-east1"
RULE = "PLAT-DATA-007"


def _prod(tmp_path: Path, serving: str | None) -> Plan:
    document = stack_document("prod")
    if serving is not None:
        document["config"]["platform:gcp"]["serving"] = serving
    return plan_of(write_stack(tmp_path, document, name=f"Pulumi.prod-{serving}.yaml"), "prod")


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return _prod(tmp_path_factory.mktemp("primary"), None)


@pytest.fixture(scope="module")
def failover(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return _prod(tmp_path_factory.mktemp("failover"), "failover")


def _urn(plan: Plan, type_: str, name: str) -> str:
    return next(r.urn for r in plan.resources if r.type == type_ and r.name == name)


def test_failing_over_stops_the_primary_only_after_the_drain(failover: Plan, primary: Plan) -> None:
    """The provider detaches a disk dropped from an instance's config before it applies `desired_status`
    (terraform-provider-google, resource_compute_instance.go update): without the drain first, the primary
    loses its disk while the engine in its region still takes requests, and its unshipped writes with it.
    Serving from the primary, the primary waits for nothing of the failover path: a deploy changing the
    engine and PocketBase together would otherwise wait on itself (the engine's new revision waits for
    PocketBase's new schema)."""
    instance, sleep = "gcp:compute/instance:Instance", "time:index/sleep:Sleep"
    database = next(r for r in failover.resources if r.type == instance and r.name == "database")
    assert _urn(failover, sleep, "failover-drain") in database.dependencies

    database = next(r for r in primary.resources if r.type == instance and r.name == "database")
    assert _urn(primary, sleep, "failover-drain") not in database.dependencies


def _all(plan: Plan, type_: str, **inputs: object) -> list[PlannedResource]:
    return [r for r in plan.resources if r.type == type_ and all(r.inputs.get(k) == v for k, v in inputs.items())]


def _one(plan: Plan, type_: str, **inputs: object) -> PlannedResource:
    found = _all(plan, type_, **inputs)
    assert len(found) == 1, (type_, inputs, [r.name for r in found])
    return found[0]


def _engines(plan: Plan) -> dict[str, dict[str, Any]]:
    return {str(r.inputs["location"]): r.inputs
            for r in _all(plan, "gcp:cloudrunv2/service:Service", name="commission-engine")}


def _vms(plan: Plan) -> dict[str, dict[str, Any]]:
    return {str(r.inputs["zone"]).rsplit("-", 1)[0]: r.inputs
            for r in plan.resources if r.type == "gcp:compute/instance:Instance"
            and str(r.inputs.get("name")).startswith("pocketbase")}


def _backend_group(plan: Plan) -> str:
    backend = _one(plan, "gcp:compute/backendService:BackendService", name="api-prod-backend")
    [group] = [b["group"] for b in backend.inputs["backends"]]
    return str(group)


def _neg_ids(plan: Plan) -> dict[str, str]:
    """Region -> the mock id of the serverless NEG there."""
    return {str(r.inputs["region"]): f"{r.name}-id"
            for r in _all(plan, "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup")}


# ---------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize("value", ["secondary", "Failover", 1])
def test_serving_accepts_only_primary_or_failover(tmp_path: Path, value: object) -> None:
    document = stack_document("prod")
    document["config"]["platform:gcp"]["serving"] = value
    path = write_stack(tmp_path, document, name="Pulumi.prod.yaml")

    with pytest.raises(ConfigError) as raised:
        plan_of(path, "prod")

    [line] = [ln for ln in str(raised.value).splitlines() if "platform:gcp.serving" in ln]
    assert line.startswith("Pulumi.prod.yaml: platform:gcp.serving: ")
    assert json.dumps(value) in line and "'primary'" in line and "'failover'" in line


def test_serving_from_the_failover_region_needs_one(tmp_path: Path) -> None:
    document = stack_document("staging")
    document["config"].setdefault("platform:gcp", {"project": "acme-commerce-stg", "region": PRIMARY})
    document["config"]["platform:gcp"]["serving"] = "failover"
    document["config"]["platform:gcp"].pop("failoverRegion", None)
    path = write_stack(tmp_path, document, name="Pulumi.staging.yaml")

    with pytest.raises(ConfigError) as raised:
        plan_of(path, "staging")

    assert any(ln.startswith("Pulumi.staging.yaml: platform:gcp.serving: \"failover\"")
               and "expected \"primary\"" in ln and "failoverRegion" in ln
               for ln in str(raised.value).splitlines()), str(raised.value)


# ---------------------------------------------------------------------------------------------
# The plan, serving from the primary region (the default)


def test_prod_declares_a_stopped_standby_in_the_failover_region(primary: Plan) -> None:
    # Per region: the engine's Direct VPC egress subnetwork and the VMs' own (tests/test_gcp_nat.py).
    subnets = sorted((r.inputs["region"], r.inputs["name"]) for r in _all(primary, "gcp:compute/subnetwork:Subnetwork"))
    assert subnets == [(PRIMARY, "platform-prod-run"), (PRIMARY, "platform-prod-vms"),
                       (FAILOVER, "platform-prod-run-failover"), (FAILOVER, "platform-prod-vms-failover")]
    engines, vms = _engines(primary), _vms(primary)
    assert set(engines) == {PRIMARY, FAILOVER} and set(vms) == {PRIMARY, FAILOVER}

    standby = engines[FAILOVER]
    assert standby["template"]["scaling"]["minInstanceCount"] == 0  # serves nothing: no warm instance
    assert standby["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert standby["labels"]["platform-serving"] == "false"
    [egress] = standby["template"]["vpcAccess"]["networkInterfaces"]
    assert egress["subnetwork"] == "cache-failover-subnet-id"
    assert engines[PRIMARY]["labels"]["platform-serving"] == "true"

    assert vms[FAILOVER]["desiredStatus"] == "TERMINATED" and vms[PRIMARY]["desiredStatus"] == "RUNNING"
    assert "attachedDisks" not in vms[FAILOVER] or not vms[FAILOVER]["attachedDisks"]
    assert vms[PRIMARY]["attachedDisks"]
    assert all("accessConfigs" not in nic for nic in vms[FAILOVER]["networkInterfaces"])
    [nic] = vms[FAILOVER]["networkInterfaces"]
    assert nic["subnetwork"] == "cache-failover-vm-subnet-id"
    # A cache starts cold: no Redis in the failover region until it serves.
    assert [r.inputs["region"] for r in _all(primary, "gcp:redis/instance:Instance")] == [PRIMARY]
    # The edge's API origin is the primary's NEG; the standby's NEG is declared beside it.
    negs = _neg_ids(primary)
    assert set(negs) == {PRIMARY, FAILOVER}
    assert _backend_group(primary) == negs[PRIMARY]


def test_only_the_standby_engines_subnet_reaches_the_standby_pocketbase(primary: Plan) -> None:
    subnet = _one(primary, "gcp:compute/subnetwork:Subnetwork", region=FAILOVER, name="platform-prod-run-failover").inputs
    standby = next(r.inputs for r in primary.resources if r.type == "gcp:compute/firewall:Firewall"
                   and r.inputs.get("targetTags") == ["pocketbase-prod-standby"])
    assert standby["sourceRanges"] == [subnet["ipCidrRange"]]
    address = _one(primary, "gcp:compute/address:Address", region=FAILOVER).inputs
    assert address["subnetwork"] == "cache-failover-vm-subnet-id"


def test_the_standby_replicates_to_the_same_replica_and_restores_it_when_its_disk_is_empty(primary: Plan) -> None:
    from tests.environment import service_environment

    engine = service_environment(primary, "commission-engine")
    standby_vm = _one(primary, "gcp:compute/instance:Instance", name="pocketbase-prod-standby")
    assert standby_vm.inputs["zone"] == f"{FAILOVER}-b"  # us-east1 has no zone a
    pocketbase_envs = [r for r in primary.resources if r.type == "gcp:secretmanager/secret:Secret"
                       and str(r.inputs.get("secretId")).startswith("pocketbase-prod-standby-")]
    assert {str(r.inputs["secretId"]) for r in pocketbase_envs} >= {
        "pocketbase-prod-standby-litestream-access-key-id", "pocketbase-prod-standby-pb-encryption-key"}
    # Each in its region's VM subnetwork (10.20.1.0/24, 10.21.1.0/24: components/cache.py).
    assert engine["POCKETBASE_URL"][0] == "https://10.20.1.10:8443"  # TLS (#22 item 7)
    standby = service_environment(primary, "commission-engine", standby=True)
    assert standby["POCKETBASE_URL"][0] == "https://10.21.1.10:8443"
    # Fixed, so the standby engine knows it before the VM (which waits for the load balancer) is declared.
    assert _one(primary, "gcp:compute/address:Address", region=FAILOVER).inputs["address"] == "10.21.1.10"
    assert {k for k in engine if k != "POCKETBASE_URL" and engine[k] != standby[k]} <= {"REDIS_URL", "REDIS_CA_CERT"}


def test_the_standby_starts_only_after_the_edge_stopped_sending_to_the_primary(primary: Plan) -> None:
    vm = _one(primary, "gcp:compute/instance:Instance", name="pocketbase-prod-standby")
    by_urn = {r.urn: r for r in primary.resources}
    backend = _one(primary, "gcp:compute/backendService:BackendService", name="api-prod-backend")
    # The VM waits on more than one sleep (the drain, its grants' propagation): one of them is the drain,
    # which waits for the load balancer's backend.
    sleeps = [by_urn[u] for u in vm.dependencies if by_urn[u].type == "time:index/sleep:Sleep"]
    assert [s.name for s in sleeps if backend.urn in s.dependencies], "the standby VM waits for the drain"


def test_the_prod_plan_with_its_standby_passes_the_pack(run_cli: Any) -> None:
    result = run_cli("plan", "--stack", "prod")
    assert result.code == 0, [ln for ln in result.out.splitlines() if "✗" in ln]


# ---------------------------------------------------------------------------------------------
# The plan, serving from the failover region


def test_serving_failover_moves_the_origin_the_writer_and_a_cold_cache(failover: Plan) -> None:
    engines, vms = _engines(failover), _vms(failover)
    assert _backend_group(failover) == _neg_ids(failover)[FAILOVER]
    assert engines[FAILOVER]["template"]["scaling"]["minInstanceCount"] == 1
    assert engines[FAILOVER]["labels"]["platform-serving"] == "true"
    assert engines[PRIMARY]["labels"]["platform-serving"] == "false"
    # One writer: the standby runs on a fresh disk (its first start restores the latest replica), the
    # primary is stopped and its disk snapshotted before it goes.
    assert vms[FAILOVER]["desiredStatus"] == "RUNNING" and vms[FAILOVER]["attachedDisks"]
    assert vms[PRIMARY]["desiredStatus"] == "TERMINATED" and not vms[PRIMARY].get("attachedDisks")
    disks = {r.inputs["zone"]: r.inputs for r in _all(failover, "gcp:compute/disk:Disk")}
    assert list(disks) == [f"{FAILOVER}-b"]
    assert disks[f"{FAILOVER}-b"]["createSnapshotBeforeDestroy"] is True
    redis = {r.inputs["region"]: r.inputs for r in _all(failover, "gcp:redis/instance:Instance")}
    assert set(redis) == {PRIMARY, FAILOVER}
    assert redis[FAILOVER]["authorizedNetwork"] == redis[PRIMARY]["authorizedNetwork"]


def test_the_standby_engine_reads_the_failover_regions_redis_when_serving(failover: Plan) -> None:
    secrets = {str(r.inputs["secretId"]): r for r in failover.resources if r.type == "gcp:secretmanager/secret:Secret"}
    standby_redis = secrets["commission-engine-prod-standby-redis-url"]
    version = next(r for r in failover.resources if r.type == "gcp:secretmanager/secretVersion:SecretVersion"
                   and standby_redis.urn in r.dependencies)
    assert any("cache-standby" in u for u in version.dependencies), version.dependencies


def test_serving_failover_passes_the_pack(tmp_path: Path, run_cli: Any) -> None:
    document = stack_document("prod")
    document["config"]["platform:gcp"]["serving"] = "failover"
    path = write_stack(tmp_path, document, name="Pulumi.prod.yaml")
    result = run_cli("plan", "--stack", "prod", "--config-file", str(path))
    assert result.code == 0, [ln for ln in result.out.splitlines() if "✗" in ln] or result.err


# ---------------------------------------------------------------------------------------------
# The policy rule


def _findings(plan: Plan, monkeypatch: pytest.MonkeyPatch, serving: str = "primary") -> list[str]:
    from policies.pack import RULES

    check = next(r for r in RULES if r.id == RULE).stack_check
    assert check is not None
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"platform:gcp": json.dumps(
        {"project": "acme-commerce-prod", "region": PRIMARY, "failoverRegion": FAILOVER, "serving": serving})}))
    resources = [Resource(r.type, r.name, r.urn, r.wire_inputs) for r in plan.resources if r.custom]
    found: list[tuple[str, Finding]] = check(resources, {})
    return [f if isinstance(f, str) else f.message for _, f in found]


def _in_failover_region(resource: PlannedResource) -> bool:
    inputs = resource.wire_inputs
    where = " ".join(str(inputs.get(k, "")) for k in ("location", "region", "zone", "subnetwork", "network"))
    return FAILOVER in where or FAILOVER in resource.name or "standby" in resource.name


def test_the_rule_accepts_both_ways_of_serving(primary: Plan, failover: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _findings(primary, monkeypatch) == []
    assert _findings(failover, monkeypatch, "failover") == []


def test_a_prod_stack_with_a_failover_region_but_no_standby_fails_the_rule(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Prod's plan as it would be had the program declared nothing in the failover region.
    plan = plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")
    plan = dataclasses.replace(plan, resources=tuple(r for r in plan.resources if not _in_failover_region(r)))

    findings = _findings(plan, monkeypatch)

    assert any("no PocketBase VM in the failover region us-east1" in f for f in findings), findings
    assert any("no engine on Cloud Run in the failover region us-east1" in f for f in findings), findings


def test_two_writers_or_a_cold_serving_engine_fail_the_rule(primary: Plan, failover: Plan,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The config says failover, the resources still serve from the primary: the standby would be cold.
    findings = _findings(primary, monkeypatch, "failover")
    assert any("two PocketBase VMs" in f or "stopped" in f for f in findings), findings
    assert any("labelled platform-serving=false" in f for f in findings), findings


# ---------------------------------------------------------------------------------------------
# The command


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pulumi` on PATH that records each call's arguments, one JSON list a line."""
    log = tmp_path / "pulumi-calls.jsonl"
    script = tmp_path / "bin" / "pulumi"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def _api(not_ready: int) -> Iterator[tuple[str, list[str]]]:
    """A local API: `not_ready` twice, then 200 (the standby coming up)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            code = 200 if len(seen) > 2 else not_ready
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}' if code == 200 else b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/readyz", seen
    finally:
        server.shutdown()


@pytest.fixture
def readyz() -> Iterator[tuple[str, list[str]]]:
    """The engine's own not-ready answer (a 503 problem) twice, then 200."""
    yield from _api(503)


@pytest.fixture
def readyz_not_found() -> Iterator[tuple[str, list[str]]]:
    """A 404 twice (the edge or the load balancer answering before the standby serves the route), then 200."""
    yield from _api(404)


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_failover_sets_the_config_runs_up_and_times_the_api_through_the_edge(
        fake_pulumi: Path, readyz: tuple[str, list[str]], run_cli: Any) -> None:
    url, seen = readyz
    result = run_cli("failover", "--stack", "prod", "--yes", "--url", url, "--poll-seconds", "0.05")

    assert result.code == 0, result.err
    assert _calls(fake_pulumi) == [
        ["config", "set", "--path", "platform:gcp.serving", "failover", "--stack", "prod"],
        ["up", "--stack", "prod", "--yes", "--continue-on-error"],
    ]
    assert seen.count("/readyz") >= 3
    assert "serving from us-east1" in result.out
    assert "RTO" in result.out and "ready after" in result.out


def test_a_failover_whose_up_failed_is_not_reported_as_done_though_the_api_answers(
        fake_pulumi: Path, readyz: tuple[str, list[str]], run_cli: Any) -> None:
    """`/readyz` says PocketBase and Redis answer, not which region: a primary still up answers it too when
    the backend's switch was one of the steps that failed."""
    script = fake_pulumi.parent / "bin" / "pulumi"
    script.write_text(script.read_text() + "sys.exit(255 if sys.argv[1] == 'up' else 0)\n")
    url, _ = readyz
    result = run_cli("failover", "--stack", "prod", "--yes", "--url", url, "--poll-seconds", "0.05")

    assert result.code == 1
    assert "serving from us-east1" not in result.out
    assert "`pulumi up` ended with 255" in result.err and "backend" in result.err


def test_failing_back_stops_the_standby_and_switches_the_origin_before_the_primary_restores(
        fake_pulumi: Path, readyz: tuple[str, list[str]], run_cli: Any) -> None:
    url, _ = readyz
    result = run_cli("failover", "--stack", "prod", "--to", "primary", "--yes", "--url", url,
                     "--poll-seconds", "0.05")

    assert result.code == 0, result.err
    calls = _calls(fake_pulumi)
    assert calls[0] == ["config", "set", "--path", "platform:gcp.serving", "primary", "--stack", "prod"]
    first, second = calls[1], calls[2]
    targets = [first[i + 1] for i, a in enumerate(first) if a == "--target"]
    assert first[:4] == ["up", "--stack", "prod", "--yes"]
    assert any(t.endswith("gcp:compute/instance:Instance::database-standby") for t in targets), targets
    assert any(t.endswith("gcp:compute/backendService:BackendService::engine-backend") for t in targets), targets
    assert second == ["up", "--stack", "prod", "--yes"]
    # Failing back serves from the primary region again (runbook, "Failing back"), and says so.
    assert f"serving from {PRIMARY} (primary)" in result.out, result.out
    assert FAILOVER not in result.out, result.out


def test_a_failover_is_done_only_at_the_first_200_not_at_any_answer(
        fake_pulumi: Path, readyz_not_found: tuple[str, list[str]], run_cli: Any) -> None:
    """The runbook times a failover "from the config change to the first 200" (C8: RTO < 1 h): a 404 from
    whatever answers before the standby serves is not ready."""
    url, seen = readyz_not_found
    result = run_cli("failover", "--stack", "prod", "--yes", "--url", url, "--poll-seconds", "0.05")

    assert result.code == 0, result.err
    assert seen.count("/readyz") == 3, seen
    assert "serving from us-east1 (failover)" in result.out


def test_failover_without_yes_asks_and_a_no_changes_nothing(
        fake_pulumi: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    result = run_cli("failover", "--stack", "prod")
    assert result.code == 2
    assert not fake_pulumi.exists()


def test_failover_refuses_a_stack_without_a_failover_region(fake_pulumi: Path, run_cli: Any) -> None:
    result = run_cli("failover", "--stack", "staging", "--yes")
    assert result.code == 2
    assert "Pulumi.staging.yaml: platform:gcp.failoverRegion" in result.err
    assert not fake_pulumi.exists()


# ---------------------------------------------------------------------------------------------
# The drill, with real binaries


def test_a_short_failover_drill_restores_every_acknowledged_order_on_the_standby() -> None:
    import shutil
    import tempfile

    from infra.ops.drill import DrillSettings
    from infra.ops.failover_drill import run_failover_drill

    # Every directory above it reachable: run as root, the entrypoint serves PocketBase as the image's user.
    workdir = Path(tempfile.mkdtemp(prefix="dr-failover-test-"))
    workdir.chmod(0o755)
    settings = DrillSettings(warmup_s=1.5, after_s=0.5, rate_per_s=20, clients=2, rto_target_s=120)
    try:
        result = run_failover_drill(workdir, settings, out=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    assert result.failed == 0, [c for c in result.checks if not c[1]]
    assert result.acknowledged > 0 and result.lost == 0
    assert 0 < result.rto_s < 120
