"""PLAT-VM-001 and PLAT-VM-003: Compute Engine VMs, the compute kind the container rules do not see.

The gce backend (components/backends/gce.py) runs one container on a Container-Optimized OS VM: the
container's image and plain environment are `-e KEY=VALUE` flags of the `docker run` in the VM's
cloud-init (`metadata.user-data`), its size is the VM's machine type. Prod's PocketBase runs so.

PLAT-VM-001: a VM runs a service the pack knows (PocketBase: by the image in its `docker run`, or by
its name), within the sizes the document gives (C2: 1 vCPU + 2 GB, up to 2 vCPU + 4 GB at peaks).
Machine types are read as Compute Engine names them: custom types `<series>-custom-<vCPUs>-<MiB>`
(cloud.google.com/compute/docs/instances/creating-instance-with-custom-machine-type: "the machine type
name is ... custom-CPUS-MEMORY", memory in MB) and the E2 predefined types of
cloud.google.com/compute/docs/general-purpose-machines#e2_machine_types (e2-medium: 2 vCPUs, 4 GB;
e2-standard-2: 2 vCPUs, 8 GB; ...). Any other type is refused: the pack cannot tell its size.

PLAT-VM-003: the VM is private. No access config on any interface (an access config is the external
address: cloud.google.com/compute/docs/ip-addresses#externaladdresses), and no ingress firewall rule
that reaches it admits a source outside private address space. A firewall rule without source ranges
or tags admits everyone: the provider sends none and Compute Engine fills in 0.0.0.0/0
(hashicorp/terraform-provider-google#6789, "Firewall source_ranges defaults to 0.0.0.0/0 when
source_tags not provided"). A rule reaches a VM when one of its target tags is a tag of the VM, or it
names no target (tags or service accounts) and so applies to every instance of its network
(cloud.google.com/firewall/docs/firewalls#rule_assignment: "By default, all rules are assigned to all
instances").
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import (
    UNKNOWN,
    Finding,
    NotApplicable,
    Resource,
    Unknown,
    Verdict,
    as_list,
    as_map,
    image_repository,
    is_unknown,
)

GCE_INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
_ROLES = {"pocketbase": "pocketbase"}
"""What a VM may run, by image repository or name prefix: only PocketBase is placed on the gce backend."""

# E2 predefined machine types (vCPUs, GB): cloud.google.com/compute/docs/general-purpose-machines#e2_machine_types
E2_TYPES: dict[str, tuple[float, float]] = {
    "e2-micro": (2, 1), "e2-small": (2, 2), "e2-medium": (2, 4),
    "e2-standard-2": (2, 8), "e2-standard-4": (4, 16), "e2-standard-8": (8, 32),
    "e2-highmem-2": (2, 16), "e2-highmem-4": (4, 32), "e2-highcpu-2": (2, 2), "e2-highcpu-4": (4, 4),
    "e2-highcpu-8": (8, 8),
}
CUSTOM = re.compile(r"^(?:(?:e2|n1|n2|n2d|n4)-)?custom-(\d+)-(\d+)(?:-ext)?$")
PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
"""RFC 1918 and RFC 4193 space: the VPC's own subnets, never the internet."""


def _docker_run_words(user_data: str) -> list[list[str]]:
    found: list[list[str]] = []
    for line in user_data.splitlines():
        if "docker run" not in line:
            continue
        try:
            words = shlex.split(line.split("=", 1)[1] if line.strip().startswith("ExecStart=") else line)
        except ValueError:
            continue
        found.append(words)
    return found


def vm_env(resource: Resource) -> dict[str, str] | Unknown | None:
    """The container's plain environment on a VM (`-e KEY=VALUE` of its `docker run`); UNKNOWN while the
    user-data is computed at apply; None when there is no `docker run` to read."""
    user_data = as_map(resource.props.get("metadata")).get("user-data")
    if is_unknown(user_data):
        return UNKNOWN
    if not isinstance(user_data, str):
        return None
    runs = _docker_run_words(user_data)
    if not runs:
        return None
    env: dict[str, str] = {}
    for words in runs:
        for flag, value in itertools.pairwise(words):
            if flag == "-e" and "=" in value:
                key, _, val = value.partition("=")
                env[key] = val
    return env


def vm_role(resource: Resource) -> str | None:
    """`pocketbase` by the image its `docker run` starts (its last word) or by the VM's name."""
    user_data = as_map(resource.props.get("metadata")).get("user-data")
    if isinstance(user_data, str):
        for words in _docker_run_words(user_data):
            role = _ROLES.get(image_repository(words[-1]))
            if role is not None:
                return role
    name = str(resource.props.get("name") or "")
    return next((role for prefix, role in _ROLES.items() if name == prefix or name.startswith(prefix + "-")), None)


def machine_size(machine_type: Any) -> tuple[float, float] | None:
    """(vCPUs, GiB) of a machine type; None for one the pack does not know."""
    if not isinstance(machine_type, str):
        return None
    name = machine_type.rsplit("/", 1)[-1]
    match = CUSTOM.match(name)
    if match is not None:
        return float(match.group(1)), int(match.group(2)) / 1024
    return E2_TYPES.get(name)


def check_size(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != GCE_INSTANCE:
        return NotApplicable("not a Compute Engine VM")
    role = vm_role(resource)
    if role is None:
        return [f"VM {resource.props.get('name')!r} runs a service the pack does not know (by its image or name); "
                "expected PocketBase, the only service the gce backend places on a VM"]
    size = machine_size(resource.props.get("machineType"))
    if size is None:
        return [f"machine type {resource.props.get('machineType')!r} is not one whose size the pack knows; expected "
                "a custom type <series>-custom-<vCPUs>-<MiB> or an E2 predefined type"]
    cpus, memory = size
    low_cpu, low_mem = float(config["min_vcpus"]), float(config["min_memory_gib"])
    high_cpu, high_mem = float(config["max_vcpus"]), float(config["max_memory_gib"])
    problems: list[str] = []
    if not low_cpu <= cpus <= high_cpu:
        problems.append(f"{role} VM has {cpus:g} vCPU; expected {low_cpu:g} to {high_cpu:g}")
    if not low_mem <= memory <= high_mem:
        problems.append(f"{role} VM has {memory:g} GiB of memory; expected {low_mem:g} to {high_mem:g}")
    return problems


def _public_sources(firewall: Resource) -> list[str] | None:
    """The source ranges of an ingress rule that are not private address space; None when unreadable."""
    ranges, tags = firewall.props.get("sourceRanges"), firewall.props.get("sourceTags")
    if is_unknown(ranges) or is_unknown(tags):
        return None
    listed = [str(r) for r in as_list(ranges)]
    if not listed and not as_list(tags) and not as_list(firewall.props.get("sourceServiceAccounts")):
        return ["0.0.0.0/0 (no source given)"]
    public: list[str] = []
    for text in listed:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            public.append(text)
            continue
        if not any(network.network_address in p and network.broadcast_address in p for p in PRIVATE):
            public.append(text)
    return public


def _reaches(firewall: Resource, vm: Resource) -> bool:
    tags, accounts = firewall.props.get("targetTags"), firewall.props.get("targetServiceAccounts")
    if is_unknown(tags) or is_unknown(accounts) or (not as_list(tags) and not as_list(accounts)):
        return True
    vm_tags = {str(t) for t in as_list(vm.props.get("tags"))}
    vm_account = as_map(vm.props.get("serviceAccount")).get("email")
    return bool({str(t) for t in as_list(tags)} & vm_tags) or vm_account in {str(a) for a in as_list(accounts)}


def check_exposure(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    vms = [r for r in resources if r.type == GCE_INSTANCE]
    out: list[tuple[str, Finding]] = []
    for vm in vms:
        interfaces = vm.props.get("networkInterfaces")
        if is_unknown(interfaces) or any(is_unknown(i) for i in as_list(interfaces)):
            out.append((vm.urn, "the VM's network interfaces are not known at preview; expected interfaces "
                                "without an access config"))
            continue
        for interface in map(as_map, as_list(interfaces)):
            if as_list(interface.get("accessConfigs")) or as_list(interface.get("ipv6AccessConfigs")):
                out.append((vm.urn, f"VM {vm.props.get('name')!r} has an external address (an access config on "
                                    "its network interface); expected a private VM reached only inside the VPC"))
    for firewall in (r for r in resources if r.type == FIREWALL):
        # Anything but exactly EGRESS is judged as ingress: pulumi_gcp compute/firewall.py `direction` takes
        # INGRESS or EGRESS (default INGRESS); a value the rule cannot place (`ingress`, unknown) is no egress.
        if firewall.props.get("direction") == "EGRESS" or not as_list(firewall.props.get("allows")):
            continue
        reached = [vm for vm in vms if _reaches(firewall, vm)]
        if not reached:
            continue
        public = _public_sources(firewall)
        names = sorted(str(vm.props.get("name")) for vm in reached)
        if public is None:
            out.append((firewall.urn, f"firewall {firewall.props.get('name')!r} to {names} admits sources not "
                                      "known at preview; expected private ranges only"))
        elif public:
            out.append((firewall.urn, f"firewall {firewall.props.get('name')!r} admits {public} to the VMs "
                                      f"{names}; expected only private ranges (the engine's egress subnet)"))
    return out
