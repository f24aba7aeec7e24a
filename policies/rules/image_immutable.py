"""PLAT-IMG-001: services run images pinned by digest or by a fixed tag, never `latest` or no tag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import CLOUD_RUN, DOCKER, RAILWAY, NotApplicable, Resource, Verdict


def _images(resource: Resource) -> list[str]:
    if resource.type == CLOUD_RUN:
        return [str(c.get("image")) for c in resource.props.get("template", {}).get("containers", [])]
    if resource.type in (RAILWAY, DOCKER):
        return [str(resource.props.get("image"))]
    return []


def pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    images = _images(resource)
    if not images:
        return NotApplicable("runs no container image")
    return [f"runs {image}, which can change under the same name; expected a fixed tag or a digest"
            for image in images if not pinned(image)]
