"""Cloud NAT covers the VMs' own subnetworks, never the engine's Direct VPC egress subnetwork (#20 item 12).

Cloud Run, "Networking best practices" (cloud.google.com/run/docs/configuring/networking-best-practices,
"Avoid Cloud NAT with Cloud Run subnets"): "When you route internal IP address requests to the VPC network
(--vpc-egress=private-ranges-only), avoid associating Cloud NAT with subnets that run Cloud Run services or
revisions"; the issue adds cold starts of 30 s or more with NAT on a Direct VPC egress subnet. The VMs still
need NAT (the restore test pushes to Grafana Cloud), so they get subnetworks of their own, and the firewall
still admits the engine's egress subnetwork of the same region to PocketBase.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from infra.plan import Plan

PRIMARY, FAILOVER = "southamerica-east1", "us-east1"


def _of(plan: Plan, type_: str) -> list[dict[str, Any]]:
    return [r.inputs for r in plan.resources if r.type == type_]


def _subnets(plan: Plan) -> dict[str, dict[str, Any]]:
    """Subnetworks by the id the program passes around (the mock engine's `<name>-id`)."""
    return {f"{r.name}-id": r.inputs for r in plan.resources if r.type == "gcp:compute/subnetwork:Subnetwork"}


def _engine_egress(plan: Plan) -> dict[str, str]:
    """Region -> the subnetwork id each engine (primary, standby) leaves through."""
    out: dict[str, str] = {}
    for service in _of(plan, "gcp:cloudrunv2/service:Service"):
        for nic in service["template"].get("vpcAccess", {}).get("networkInterfaces", []):
            out.setdefault(service["location"], nic["subnetwork"])
    return out


def test_no_nat_covers_a_subnetwork_cloud_run_leaves_through(committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    run_subnets = set(_of_all_egress(plan))
    nats = _of(plan, "gcp:compute/routerNat:RouterNat")
    assert nats, "the VMs still reach the internet through Cloud NAT"
    for nat in nats:
        assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS", nat
        assert not {s["name"] for s in nat["subnetworks"]} & run_subnets, nat


def _of_all_egress(plan: Plan) -> list[str]:
    return [nic["subnetwork"] for service in _of(plan, "gcp:cloudrunv2/service:Service")
            for nic in service["template"].get("vpcAccess", {}).get("networkInterfaces", [])]


def test_each_vm_sits_in_a_natted_subnetwork_of_its_region_and_admits_that_regions_engine(
    committed_plans: dict[str, Plan],
) -> None:
    plan = committed_plans["prod"]
    subnets, egress = _subnets(plan), _engine_egress(plan)
    natted = {s["name"] for nat in _of(plan, "gcp:compute/routerNat:RouterNat") for s in nat["subnetworks"]}
    vms = {vm["zone"].rsplit("-", 1)[0]: vm for vm in _of(plan, "gcp:compute/instance:Instance")}
    assert set(vms) == {PRIMARY, FAILOVER}
    for region, vm in vms.items():
        [nic] = vm["networkInterfaces"]
        assert nic["subnetwork"] in natted, (region, nic["subnetwork"], natted)
        assert subnets[nic["subnetwork"]]["region"] == region
        assert subnets[nic["subnetwork"]]["privateIpGoogleAccess"] is True  # Secret Manager, the registry
        assert nic["subnetwork"] != egress[region]
        # The VM's own address is in its own subnetwork.
        address = next(a for a in _of(plan, "gcp:compute/address:Address") if a["region"] == region)
        assert address["subnetwork"] == nic["subnetwork"]
        if "address" in address:
            assert ipaddress.ip_address(address["address"]) in ipaddress.ip_network(
                subnets[nic["subnetwork"]]["ipCidrRange"])
        # Only that region's engine egress reaches PocketBase's port.
        [rule] = [f for f in _of(plan, "gcp:compute/firewall:Firewall") if f["targetTags"] == vm["tags"]]
        assert rule["sourceRanges"] == [subnets[egress[region]]["ipCidrRange"]]
        assert rule["allows"] == [{"protocol": "tcp", "ports": ["8443"]}]  # the image's TLS proxy (#22 item 7)
