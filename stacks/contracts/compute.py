"""Compute Engine (`gcp:compute/instance:Instance`): E2 custom machine types, Container-Optimized OS images
and metadata sizes, as the API accepts them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from stacks.contracts.rule import Context, Planned, Problem, Rule, get

INSTANCE = "gcp:compute/instance:Instance"
_E2_CUSTOM = re.compile(r"^e2-custom-(\d+)-(\d+)$")
E2_CPUS = tuple(range(2, 33, 2))
E2_MIB_PER_CPU = (512, 8192)
METADATA_VALUE_MAX_BYTES = 256 * 1024
METADATA_TOTAL_MAX_BYTES = 512 * 1024
# A family (`cos-stable`, `cos-121-lts`, ...) or one image of a milestone build (`cos-81-12871-1160-0`,
# `cos-stable-60-9592-90-0`), in any of the forms the provider resolves.
_COS_IMAGE = re.compile(r"^(?:projects/)?cos-cloud/(?:global/images/)?(?:family/)?cos-(?:arm64-)?"
                        r"(?:stable|beta|dev|\d+-lts|(?:(?:stable|beta|dev)-)?\d+-\d+-\d+-\d+)$")


def _e2_custom(resource: Planned, _: Context) -> Sequence[Problem]:
    machine = get(resource.inputs, "machineType")
    match = _E2_CUSTOM.match(machine) if isinstance(machine, str) else None
    if match is None:
        return []
    cpus, mib = int(match[1]), int(match[2])
    low, high = E2_MIB_PER_CPU
    if cpus not in E2_CPUS or not low * cpus <= mib <= high * cpus or mib % 256:
        return [f"{machine}: {cpus} vCPU, {mib} MiB ({mib / cpus:g} MiB per vCPU)"]
    return []


def _cos_image(resource: Planned, _: Context) -> Sequence[Problem]:
    image = get(resource.inputs, "bootDisk", "initializeParams", "image")
    if not isinstance(image, str) or "cos-cloud" not in image:
        return []
    return [] if _COS_IMAGE.match(image) else [f"image {image}"]


def _metadata(resource: Planned, _: Context) -> Sequence[Problem]:
    metadata = get(resource.inputs, "metadata")
    if not isinstance(metadata, dict):
        return []
    sizes = {str(k): len(str(k).encode()) + len(v.encode()) for k, v in metadata.items()  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType, reportUnknownMemberType]
             if isinstance(v, str)}
    problems = [f"{key}: {size} bytes" for key, size in sizes.items() if size > METADATA_VALUE_MAX_BYTES]
    if sum(sizes.values()) > METADATA_TOTAL_MAX_BYTES:
        problems.append(f"all metadata: {sum(sizes.values())} bytes")
    return problems


_TYPES = frozenset({INSTANCE})
RULES: tuple[Rule, ...] = (
    Rule("GCE-E2-001", "Compute Engine", "an E2 custom machine type has 2 to 32 vCPUs in steps of 2 and 0.5 to "
         "8 GB of memory per vCPU, in multiples of 256 MB",
         "https://cloud.google.com/compute/docs/general-purpose-machines#e2-custom (sample "
         "compute/docs/samples/compute-custom-machine-type-helper-class: cpuSeriesE2Limit allowedCores "
         "makeRange(2, 33, 2), minMemPerCore 512, maxMemPerCore 8192; \"Must be an increment of 0.25 (256 MB)\")",
         _TYPES, _e2_custom),
    Rule("GCE-COS-001", "Compute Engine", "a cos-cloud boot image names a Container-Optimized OS image family "
         "(cos-stable, cos-beta, cos-dev, cos-<milestone>-lts) or a milestone build's image",
         "https://cloud.google.com/container-optimized-os/docs/concepts/versioning (\"image cos-81-12871-1160-0 "
         "has milestone 81 and build number 12871-1160-0\"; \"we use the image families feature to label and "
         "identify our LTS releases\"); family form \"projects/cos-cloud/global/images/family/cos-stable\" "
         "(Cloud Life Sciences VirtualMachine.bootImage)", _TYPES, _cos_image),
    Rule("GCE-META-001", "Compute Engine", "each metadata entry is at most 256 KB and all metadata at most "
         "512 KB", "https://cloud.google.com/compute/docs/reference/rest/v1/instances (Metadata.items.value: "
         "\"their size must be less than or equal to 262144 bytes (256 KiB)\"; items: \"The total "
         "size of all keys and values must be less than 512 KB\")",
         _TYPES, _metadata),
)
