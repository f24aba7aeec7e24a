"""PLAT-IMG-001 and PLAT-IMG-002: services run images that cannot change under their name.

What is immutable: a digest (`@sha256:` and 64 hex digits) names exact bytes. A content tag (12 hex
digits, components/images.py) is a function of the build context, so it is immutable only for an
image this stack builds and pushes itself (a `docker:index/image:Image` of the same name). A tag
anywhere else can be pushed again: `latest` (in any case), a branch (`main`), a major or minor
version (`redis:7`), even a full version (official images are rebuilt under the same tag when their
base image is patched: github.com/docker-library/faq#why-does-my-security-scanner-show-that-an-image-has-cves).

PLAT-IMG-001 (mandatory): no moving tag anywhere, a full version tag only in integration; in
staging and prod the platform's own images (the engine, PocketBase) come from the stack's own
registry (where its built images are pushed) as built here or by digest, and in prod every image
is built here or pinned by digest. PLAT-IMG-002 (advisory): third-party images in staging by digest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import DOCKER_IMAGE, Finding, Resource, images, is_unknown, role, stack_kind

DIGEST = re.compile(r"^(?P<name>[^@]+)@sha256:[0-9a-f]{64}$")
CONTENT_TAG = re.compile(r"^[0-9a-f]{12}$")
FULL_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-_.][0-9A-Za-z][0-9A-Za-z._-]*)?$")


def _tag(image: str) -> str | None:
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _registry(image: str) -> str:
    """Everything before the image's own name: `ghcr.io/acme-commerce` of `ghcr.io/acme-commerce/engine:x`."""
    name = image.split("@", 1)[0]
    return name.rsplit("/", 1)[0] if "/" in name else ""


def built_here(resources: Sequence[Resource]) -> tuple[set[str], set[str]]:
    """(image names this stack builds, the registries it pushes them to)."""
    names = {str(r.get("imageName")) for r in resources
             if r.type == DOCKER_IMAGE and isinstance(r.get("imageName"), str)}
    pushed = {_registry(str(r.get("imageName"))) for r in resources
              if r.type == DOCKER_IMAGE and r.get("skipPush") is False and isinstance(r.get("imageName"), str)}
    return names, pushed - {""}


def _problem(image: Any, resource: Resource, built: set[str], registries: set[str]) -> str | None:
    if is_unknown(image) or not isinstance(image, str):
        return f"runs an image not known until apply ({image}); expected a digest or an image this stack builds"
    kind = stack_kind(resource.stack)
    digest = DIGEST.match(image)
    platform_image = role(resource) in ("engine", "pocketbase")
    if "@" in image and digest is None:
        return f"runs {image}, whose digest is not sha256 and 64 hex digits; expected a real digest"
    if digest is not None:
        if kind != "integration" and platform_image and _registry(image) not in registries:
            return (f"runs {image} from {_registry(image) or 'Docker Hub'}, not this stack's registry "
                    f"({', '.join(sorted(registries)) or 'none pushed'}); expected the platform's images from its own "
                    "registry")
        return None
    tag = _tag(image)
    if image in built and tag is not None and CONTENT_TAG.match(tag):
        return None
    if tag is None or not FULL_VERSION.match(tag) or tag.lower() == "latest":
        return f"runs {image}, whose tag {tag or '(none: latest)'} moves; expected a digest or an image built here"
    if kind == "prod" or (kind == "staging" and platform_image):
        return (f"runs {image} by tag in {resource.stack}, where a tag can be pushed again; expected a digest, or "
                "an image this stack builds (content tag) in its own registry")
    return None


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    built, registries = built_here(resources)
    out: list[tuple[str, Finding]] = []
    for r in resources:
        for image in images(r):
            problem = _problem(image, r, built, registries)
            if problem:
                out.append((r.urn, problem))
    return out


def check_third_party(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    built, _ = built_here(resources)
    return [(r.urn, f"runs {image} by tag in {r.stack}; expected it pinned by digest")
            for r in resources if stack_kind(r.stack) == "staging"
            for image in images(r) if isinstance(image, str) and image not in built and DIGEST.match(image) is None]
