"""The pack sees the Compute Engine VM prod's PocketBase runs on (issue #21, item 2): its size within
C2's bounds (PLAT-VM-001), its daily off-host backups (PLAT-VM-002, read from the `docker run` the gce
backend writes into the VM's cloud-init) and its privacy (PLAT-VM-003). Every case sits on a rule's
boundary, on both sides, and goes to the pack over the Analyzer protocol as the engine sends it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from components.backends.gce import cloud_init
from components.backends.service import ContainerSpec
from infra.analyzer import LEVELS, AnalyzerInput, PolicyPackProcess
from policies.pack import RULES_BY_ID
from policies.rule import Resource
from stacks import registry
from tests import document_numbers as doc
from tests.conftest import PROJECT_DIR, plan_of

INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
BACKUPS = {"PB_BACKUP_CRON": "0 3 * * *", "PB_BACKUP_MAX_KEEP": "30",
           "PB_BACKUP_S3_BUCKET": "acme-commerce-prod-pocketbase-backups",
           "PB_BACKUP_S3_ENDPOINT": "https://storage.googleapis.com", "PB_BACKUP_S3_REGION": "southamerica-east1"}


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure(None)
        yield process


def user_data(env: dict[str, str], image: str = "southamerica-east1-docker.pkg.dev/acme/platform/pocketbase:4ddb2aa6")\
        -> str:
    """The VM's cloud-init exactly as the gce backend writes it for a container with this plain env."""
    spec = ContainerSpec("pocketbase", image, 8090, registry.PROFILES["prod"].services["pocketbase"], env=env,
                         volume_path="/pb/pb_data")
    return cloud_init(spec, image, env, [], "southamerica-east1-docker.pkg.dev")


def vm(name: str = "pocketbase-prod", machine_type: str = "e2-custom-2-4096", env: dict[str, str] | None = None,
       **props: Any) -> dict[str, Any]:
    return {"type": INSTANCE, "name": "database", "props": {
        "name": name, "machineType": machine_type, "tags": [name],
        "networkInterfaces": [{"networkIp": "10.20.0.130", "subnetwork": "cache-subnet-id"}],
        "metadata": {"user-data": user_data(BACKUPS if env is None else env)}, **props}}


def firewall(source_ranges: list[str] | None, target_tags: list[str] | None = None, **props: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "pocketbase-prod-clients", "direction": "INGRESS",
                            "allows": [{"protocol": "tcp", "ports": ["8090"]}], "network": "cache-network-id",
                            "targetTags": ["pocketbase-prod"] if target_tags is None else target_tags, **props}
    if source_ranges is not None:
        body["sourceRanges"] = source_ranges
    return {"type": FIREWALL, "name": "database-clients", "props": body}


def findings(pack: PolicyPackProcess, rule: str, resources: list[dict[str, Any]], stack: str = "prod") -> list[str]:
    """The mandatory findings of `rule` on these resources: `Analyze` each, then `AnalyzeStack`."""
    inputs = [AnalyzerInput(f"urn:pulumi:{stack}::platform::{r['type']}::{r['name']}", r["type"], r["name"],
                            r["props"]) for r in resources]
    responses = [pack.analyze(i) for i in inputs] + [pack.analyze_stack(inputs)]
    found = [(d.policyName, LEVELS[d.enforcementLevel], d.message) for response in responses
             for d in response.diagnostics]
    assert not any("can't run policy" in message for _, _, message in found), found
    return [message for name, level, message in found if name == rule and level == "mandatory"]


# ---- PLAT-VM-001: size within C2 ----

@pytest.mark.parametrize("machine_type,ok", [
    ("e2-custom-2-4096", True),    # C2's peak exactly: 2 vCPU + 4 GB
    ("e2-custom-2-4352", False),   # 4.25 GiB
    ("e2-custom-4-4096", False),   # 4 vCPU
    ("e2-custom-2-2048", True),    # C2's steady 2 GB (E2 custom types start at 2 vCPUs)
    ("e2-custom-2-1792", False),   # under 2 GB
    ("e2-medium", True),           # 2 vCPU, 4 GB
    ("e2-standard-2", False),      # 2 vCPU, 8 GB
    ("n2-standard-2", False),      # a type whose size the pack does not know
])
def test_a_pocketbase_vm_is_sized_within_c2(pack: PolicyPackProcess, machine_type: str, ok: bool) -> None:
    found = findings(pack, "PLAT-VM-001", [vm(machine_type=machine_type)])

    assert (found == []) is ok, (machine_type, found, doc.C2_QUOTE)


def test_a_vm_running_something_else_is_refused(pack: PolicyPackProcess) -> None:
    other = vm(name="worker", env={}, metadata={"user-data": user_data({}, image="docker.io/library/nginx:1.27")})

    assert any("does not know" in f for f in findings(pack, "PLAT-VM-001", [other]))


def test_the_vm_rule_bounds_are_the_documents() -> None:
    config = RULES_BY_ID["PLAT-VM-001"].config_defaults or {}

    assert (config["min_vcpus"], config["min_memory_gib"]) == (doc.POCKETBASE_STEADY.vcpus,
                                                               doc.POCKETBASE_STEADY.memory_gib)
    assert (config["max_vcpus"], config["max_memory_gib"]) == (doc.POCKETBASE_PEAK.vcpus, doc.POCKETBASE_PEAK.memory_gib)


def test_prod_with_pocketbase_at_4_vcpu_and_8_gb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutation the issue names: prod's PocketBase peak 2/4 -> 4/8 passed every rule (a VM is no container)."""
    profile = registry.PROFILES["prod"]
    big = dataclasses.replace(profile.services["pocketbase"], peak_cpu_millis=4000, peak_memory_mib=8192)
    monkeypatch.setitem(registry.PROFILES, "prod", dataclasses.replace(
        profile, services={**profile.services, "pocketbase": big}))
    plan = plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")
    rule = RULES_BY_ID["PLAT-VM-001"]
    assert rule.resource_check is not None

    verdicts = [rule.resource_check(Resource(r.type, r.name, r.urn, r.wire_inputs), dict(rule.config_defaults or {}))
                for r in plan.resources if r.type == INSTANCE]

    assert verdicts and all(isinstance(v, list) and any("4 vCPU" in str(f) for f in v) for v in verdicts), verdicts


# ---- PLAT-VM-002: daily, off-host backups from the VM's docker run ----

@pytest.mark.parametrize("cron,ok", [("0 3 * * *", True), ("30 23 * * *", True), ("0 3 * * 0", False),
                                     ("0 3 */7 * *", False), ("0 3 1 * *", False)])
def test_a_pocketbase_vm_backs_up_daily(pack: PolicyPackProcess, cron: str, ok: bool) -> None:
    found = findings(pack, "PLAT-VM-002", [vm(env={**BACKUPS, "PB_BACKUP_CRON": cron})])

    assert (found == []) is ok, (cron, found, doc.C7_QUOTE)


@pytest.mark.parametrize("change,ok", [
    ({}, True),
    ({"PB_BACKUP_S3_ENDPOINT": "http://storage.googleapis.com"}, False),
    ({"PB_BACKUP_S3_BUCKET": ""}, False),
])
def test_a_prod_pocketbase_vm_backs_up_off_the_host_over_https(pack: PolicyPackProcess, change: dict[str, str],
                                                               ok: bool) -> None:
    found = findings(pack, "PLAT-VM-002", [vm(env={**BACKUPS, **change})])

    assert (found == []) is ok, (change, found)


def test_integration_may_keep_backups_on_the_disk_but_still_daily(pack: PolicyPackProcess) -> None:
    local = {"PB_BACKUP_CRON": "0 3 * * *"}

    assert findings(pack, "PLAT-VM-002", [vm(name="pocketbase-integration", env=local)], stack="integration") == []
    assert findings(pack, "PLAT-VM-002", [vm(name="pocketbase-integration", env={"PB_BACKUP_CRON": "0 3 * * 1"})],
                    stack="integration")


def test_a_vm_whose_docker_run_cannot_be_read_is_refused(pack: PolicyPackProcess) -> None:
    unreadable = vm(metadata={"user-data": "#cloud-config\nruncmd:\n- echo hello\n"})

    assert any("cannot read" in f for f in findings(pack, "PLAT-VM-002", [unreadable]))


# ---- PLAT-VM-003: private ----

def test_prods_private_vm_and_its_engine_only_firewall_pass(pack: PolicyPackProcess) -> None:
    assert findings(pack, "PLAT-VM-003", [vm(), firewall(["10.20.0.0/24"])]) == []


def test_a_vm_with_an_external_address_is_refused(pack: PolicyPackProcess) -> None:
    exposed = vm(networkInterfaces=[{"subnetwork": "cache-subnet-id", "accessConfigs": [{"networkTier": "PREMIUM"}]}])

    assert any("external address" in f for f in findings(pack, "PLAT-VM-003", [exposed]))


@pytest.mark.parametrize("ranges,targets,ok", [
    (["10.20.0.0/24"], None, True),
    (["10.0.0.0/8"], None, True),
    (["0.0.0.0/0"], None, False),
    (["::/0"], None, False),
    (["172.32.0.0/16"], None, False),     # just outside 172.16.0.0/12
    (["8.8.8.0/24", "10.20.0.0/24"], None, False),
    (None, None, False),                  # no source: Compute Engine admits 0.0.0.0/0
    (["0.0.0.0/0"], ["some-other-service"], True),   # reaches no VM of this stack
    (["0.0.0.0/0"], [], False),           # no target: every instance of the network
])
def test_no_ingress_rule_opens_a_vm_beyond_private_ranges(pack: PolicyPackProcess, ranges: list[str] | None,
                                                          targets: list[str] | None, ok: bool) -> None:
    found = findings(pack, "PLAT-VM-003", [vm(), firewall(ranges, targets)])

    assert (found == []) is ok, (ranges, targets, found)


def test_the_prod_plan_passes_the_vm_rules_over_the_analyzer(pack: PolicyPackProcess) -> None:
    """Both VMs (the primary and the failover standby) are judged; their user-data is unknown at preview
    (it holds secret versions), so PLAT-VM-002 waits for the update's run, where it is known."""
    plan = plan_of(PROJECT_DIR / "Pulumi.prod.yaml", "prod")
    inputs = plan.analyzer_inputs()
    assert len([i for i in inputs if i.type == INSTANCE]) == 2

    responses = [pack.analyze(i) for i in inputs] + [pack.analyze_stack(inputs)]

    found = [(d.policyName, d.message) for response in responses for d in response.diagnostics
             if d.policyName.startswith("PLAT-VM-")]
    assert found == []
