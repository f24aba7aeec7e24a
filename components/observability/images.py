"""The telemetry's third-party images, one directory each under `images/` whose Dockerfile names the
upstream image (the one place its version is written). On the docker backend they run as they are; a
stack with a registry rebuilds each into it under a content tag (components/images.py), so nothing in
staging or prod runs by a tag that can be pushed again (PLAT-IMG-001, PLAT-IMG-002).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pulumi

from components.images import Registry, build_image

IMAGES_DIR = Path(__file__).resolve().parent / "images"
PROMETHEUS = "prometheus"
STACKDRIVER_EXPORTER = "stackdriver-exporter"
JSON_EXPORTER = "json-exporter"
REDIS_EXPORTER = "redis-exporter"
LOCOMOTIVE = "locomotive"


@functools.cache
def upstream(name: str) -> str:
    found = re.search(r"^FROM\s+(\S+)\s*$", (IMAGES_DIR / name / "Dockerfile").read_text(), re.MULTILINE)
    if found is None:
        raise ValueError(f"{IMAGES_DIR / name / 'Dockerfile'} names no image")
    return found.group(1)


class TelemetryImages(pulumi.ComponentResource):
    """Call it with an image's name: the image to run, built into the stack's registry when it has one."""

    def __init__(self, name: str, registry: Registry | None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:observability:Images", name, None, opts)
        self._name = name
        self._registry = registry
        self._built: dict[str, pulumi.Output[str]] = {}
        self.register_outputs({})

    def __call__(self, image: str) -> pulumi.Input[str]:
        if self._registry is None:
            return upstream(image)
        if image not in self._built:
            self._built[image] = build_image(f"{self._name}-{image}", IMAGES_DIR / image, f"telemetry-{image}",
                                             self._registry, self)
        return self._built[image]
