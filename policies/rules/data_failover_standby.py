"""PLAT-DATA-007: a prod stack with a failover region declares its standby there, and serves from one
region at a time (C8, C9; issue #13 item 7).

The standby is a PocketBase VM in the failover region (its first start restores the latest replica)
and an engine on Cloud Run there with a serverless NEG, behind the same load balancer. Which region
serves is `platform:gcp.serving` (the stack's config, PULUMI_CONFIG): the load balancer's backend is
that region's NEG, that region's engine is labelled `platform-serving=true` (the other `false`, which
lets PLAT-SCALE-001 leave it cold) and that region's PocketBase runs; the other one is stopped
(`desiredStatus: TERMINATED`). Two running PocketBase VMs are two writers of one replica: orders
written to one are missing from the other, and both replicate to the same path.

Without the stack's config (a pack started by hand), the failover region is the replica bucket's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import CLOUD_RUN, Finding, Resource, as_list, as_map, is_unknown, role, stack_kind
from policies.rules.env_stack_identity import engine_context

GCE_INSTANCE = "gcp:compute/instance:Instance"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
BUCKET = "gcp:storage/bucket:Bucket"


def _gcp_config() -> Mapping[str, Any]:
    _, config = engine_context()
    value = (config or {}).get("platform:gcp")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return as_map(value)


def _bucket_region(resources: Sequence[Resource], content: str) -> str | None:
    for r in resources:
        labels = as_map(r.props.get("labels"))
        if r.type == BUCKET and labels.get("platform-role") == "pocketbase-dr" \
                and labels.get("platform-dr-content") == content and isinstance(r.props.get("location"), str):
            return str(r.props["location"]).lower()
    return None


def _region_of_zone(zone: Any) -> str | None:
    return str(zone).rsplit("-", 1)[0] if isinstance(zone, str) else None


def _running(vm: Resource) -> bool:
    status = vm.props.get("desiredStatus")
    return status is None or is_unknown(status) or status == "RUNNING"


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    if not any(stack_kind(r.stack) == "prod" for r in resources):
        return []
    gcp = _gcp_config()
    failover = gcp.get("failoverRegion") or _bucket_region(resources, "replica")
    primary = gcp.get("region") or _bucket_region(resources, "backups")
    if not isinstance(failover, str) or not failover or failover == primary:
        return []
    serving = str(gcp.get("serving") or "primary")
    serving_region = failover if serving == "failover" else primary
    first = resources[0].urn if resources else ""
    out: list[tuple[str, Finding]] = []

    engines = [r for r in resources if r.type == CLOUD_RUN and role(r) == "engine"]
    vms = [r for r in resources if r.type == GCE_INSTANCE and str(r.props.get("name") or "").startswith("pocketbase")]
    standby_vms = [v for v in vms if _region_of_zone(v.props.get("zone")) == failover]
    standby_engines = [e for e in engines if e.props.get("location") == failover]
    if not standby_vms:
        out.append((first, f"no PocketBase VM in the failover region {failover}: losing {primary} loses the database's "
                           "host with it; expected a standby VM there that restores the replica (C8)"))
    if not standby_engines:
        out.append((first, f"no engine on Cloud Run in the failover region {failover}: nothing can serve the API "
                           f"when {primary} is lost; expected a standby engine there behind the load balancer (C8)"))
    negs = [n for n in resources if n.type == NEG and n.props.get("region") == failover
            and as_map(n.props.get("cloudRun")).get("service") in {e.props.get("name") for e in standby_engines}]
    for engine in standby_engines:
        if not negs:
            out.append((engine.urn, f"the standby engine in {failover} has no serverless NEG: the load balancer "
                                    "cannot send it the API's traffic; expected one naming it"))
        egress = as_list(as_map(as_map(engine.props.get("template")).get("vpcAccess")).get("networkInterfaces"))
        if not egress:
            out.append((engine.urn, f"the standby engine in {failover} has no Direct VPC egress: it cannot reach "
                                    "the standby PocketBase; expected a subnetwork of the stack's VPC there"))

    for engine in engines:
        label = as_map(engine.props.get("labels")).get("platform-serving")
        region = engine.props.get("location")
        if label == "false" and region == serving_region:
            out.append((engine.urn, f"labelled platform-serving=false in {region}, the region that serves "
                                    f"(platform:gcp.serving {serving!r}): it scales to zero while it takes the "
                                    "API's traffic; expected platform-serving=true there"))
        if label == "true" and region != serving_region:
            out.append((engine.urn, f"labelled platform-serving=true in {region}, while {serving_region} serves; "
                                    "expected platform-serving=false"))

    running = [v for v in vms if _running(v)]
    if len(running) > 1:
        out += [(v.urn, f"two PocketBase VMs run ({', '.join(sorted(str(r.props.get('name')) for r in running))}): "
                        "two writers of one replica lose the orders written to the other; expected only the serving "
                        f"region's ({serving_region}) running, the other stopped") for v in running]
    for vm in vms:
        region = _region_of_zone(vm.props.get("zone"))
        if region == serving_region and not _running(vm):
            out.append((vm.urn, f"PocketBase in {region} is stopped while its region serves; expected it running"))
        elif region != serving_region and _running(vm) and len(running) <= 1:
            out.append((vm.urn, f"PocketBase in {region} runs while {serving_region} serves; expected it stopped "
                                "(desiredStatus TERMINATED)"))

    # The load balancer's backend (the edge's API origin) is the serving region's NEG, where the plan knows it.
    all_negs = [n for n in resources if n.type == NEG]
    for backend in (b for b in resources if b.type == BACKEND):
        for group in (as_map(g).get("group") for g in as_list(backend.props.get("backends"))):
            if not isinstance(group, str) or is_unknown(group):
                continue
            target = next((n for n in all_negs if group == f"{n.name}-id"
                           or group.endswith(f"/networkEndpointGroups/{n.props.get('name')}")), None)
            if target is not None and target.props.get("region") != serving_region:
                out.append((backend.urn, f"sends the API's traffic to {target.props.get('region')} while "
                                         f"platform:gcp.serving is {serving!r}; expected the NEG in {serving_region}"))
    return out
