"""Prod's PocketBase admits the engine only (#22 item 7).

A firewall rule cannot name a Cloud Run service: Direct VPC egress does not support "Network tags or service
identity in ingress firewall rules", and "If you need to create IP-based policies (such as firewall rules), you
must use the whole subnet's IP address range" (cloud.google.com/run/docs/configuring/vpc-direct-vpc, Limitations
and IP address allocation). So the engine is identified by a subnetwork only it egresses through: the rule's
source ranges are exactly that subnetwork's range, and no other Cloud Run service or job leaves through it.
"""

from __future__ import annotations

from typing import Any

from infra.plan import Plan, PlannedResource

PRIMARY = "southamerica-east1"
CLOUD_RUN = ("gcp:cloudrunv2/service:Service", "gcp:cloudrunv2/job:Job")


def _template(resource: PlannedResource) -> dict[str, Any]:
    template: dict[str, Any] = resource.inputs.get("template") or {}
    return template.get("template") or template if resource.type.endswith("Job") else template


def _egress_subnets(resource: PlannedResource) -> list[str]:
    """The subnetworks a Cloud Run service or job leaves from over Direct VPC egress (its `vpcAccess`)."""
    access: dict[str, Any] = _template(resource).get("vpcAccess") or {}
    interfaces: list[dict[str, Any]] = access.get("networkInterfaces") or []
    return [str(nic.get("subnetwork") or nic.get("network")) for nic in interfaces]


def test_pocketbase_admits_exactly_the_engines_subnet_which_no_other_service_egresses_through(
        committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans["prod"]
    subnets = {f"{r.name}-id": r.inputs for r in plan.resources if r.type == "gcp:compute/subnetwork:Subnetwork"}
    runs = [r for r in plan.resources if r.type in CLOUD_RUN]
    engine = [r for r in runs if r.inputs.get("name") == "commission-engine" and r.inputs.get("location") == PRIMARY]
    assert len(engine) == 1
    (engine_subnet,) = _egress_subnets(engine[0])
    engine_range = subnets[engine_subnet]["ipCidrRange"]

    rules = [r.inputs for r in plan.resources if r.type == "gcp:compute/firewall:Firewall"
             and r.inputs.get("targetTags") == ["pocketbase-prod"]]
    assert len(rules) == 1
    assert rules[0]["sourceRanges"] == [engine_range]
    assert not rules[0].get("sourceTags") and not rules[0].get("sourceServiceAccounts")

    others = {str(r.inputs.get("name")): _egress_subnets(r) for r in runs if r is not engine[0]}
    assert {name: s for name, s in others.items() if engine_subnet in s} == {}, \
        "another Cloud Run workload leaves through the engine's subnetwork: the firewall would admit it too"
    # No VM sits in it either (the VMs have their own, NATed subnetwork).
    vms = [r.inputs for r in plan.resources if r.type == "gcp:compute/instance:Instance"]
    assert all(nic["subnetwork"] != engine_subnet for vm in vms for nic in vm["networkInterfaces"])


def test_the_engine_dials_pocketbase_over_tls_at_addresses_its_pinned_certificate_names(
        committed_plans: dict[str, Plan]) -> None:
    """S1: https to both VMs (primary, standby), the certificate the stack generates names exactly their addresses,
    and each engine pins it; the key reaches the VM through Secret Manager only."""
    from tests.environment import service_environment

    plan = committed_plans["prod"]
    [cert] = [r.inputs for r in plan.resources if r.type == "tls:index/selfSignedCert:SelfSignedCert"]
    urls = {service_environment(plan, "commission-engine", standby=standby)["POCKETBASE_URL"][0]
            for standby in (False, True)}
    assert all(url.startswith("https://") for url in urls)
    assert sorted(cert["ipAddresses"]) == sorted(url.removeprefix("https://").rsplit(":", 1)[0] for url in urls)
    assert "server_auth" in cert["allowedUses"] and not cert.get("isCaCertificate")
    for standby in (False, True):
        ca, secret = service_environment(plan, "commission-engine", standby=standby)["POCKETBASE_CA_CERT"]
        assert ca.startswith("-----BEGIN CERTIFICATE-----") and secret
    vm = [r for r in plan.resources if r.type == "gcp:compute/instance:Instance"]
    assert all("PRIVATE KEY" not in str(r.inputs["metadata"]) for r in vm)
