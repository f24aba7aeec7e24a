"""Container images built by the platform, tagged by the content of their build context.

A content tag is immutable by construction: the same sources give the same tag, any change a new
one, so a deploy never relies on a moving tag such as `latest`.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

COMPONENTS_DIR = Path(__file__).resolve().parent
PROJECT_DIR = COMPONENTS_DIR.parent
_SKIP = {"__pycache__", ".venv", ".pytest_cache", ".ruff_cache", "node_modules"}


def _ignored(context: Path) -> set[str]:
    """Names `.dockerignore` leaves out of the build context (plain names; patterns count as names)."""
    path = context / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return {line.strip().removeprefix("**/").rstrip("/") for line in lines if line.strip() and not line.startswith("#")}


def content_tag(context: Path) -> str:
    """The first 12 hex digits of a SHA-256 over the names and bytes of what the image is built from."""
    digest = hashlib.sha256()
    skip = _SKIP | _ignored(context)
    files = sorted(p for p in context.rglob("*") if p.is_file() and not any(
        fnmatch.fnmatch(part, pattern) for part in p.relative_to(context).parts for pattern in skip))
    for path in files:
        digest.update(path.relative_to(context).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Registry:
    server: str
    repository_prefix: str
    """Everything between the server and the image name, e.g. `acme-commerce` on ghcr.io."""
    username: str
    password: pulumi.Input[str] | None
    """None: the deploy job's own `docker login` (a short-lived token, .github/workflows/deploy.yml); pulumi-docker
    then pushes with the Docker config file's credentials (pulumi/pulumi-docker#461: "use Docker config file
    credentials when username and password are not provided via the Pulumi program")."""


def image_name(context: Path, image: str, registry: Registry | None) -> str:
    """Where `build_image` puts `context`'s image: in the registry when given, under its content tag."""
    prefix = f"{registry.server}/{registry.repository_prefix}/" if registry is not None else ""
    return f"{prefix}{image}:{content_tag(context)}"


def build_image(name: str, context: Path, image: str, registry: Registry | None,
                parent: pulumi.Resource) -> pulumi.Output[str]:
    """Build `context` for linux/amd64; push it when a registry is given (not on the docker backend).

    A pushed image is deployed by its digest (`repoDigest`: "repository@<algorithm>:<hash> ... unique per image build
    and push. Use when passing a reference to a pushed image to container management resources", pulumi_docker
    Image.repo_digest): what runs is the exact bytes this deploy pushed, even if the content tag were pushed again.
    The registry's repository keeps tags immutable besides (Artifact Registry `dockerConfig.immutableTags`, created
    by the bootstrap), so the standby's by-name reference (components/standby.py) names the same bytes."""
    built = docker.Image(
        name,
        image_name=image_name(context, image, registry),
        # Relative to the project directory, where Pulumi runs the program: plans stay machine-independent.
        build={"context": context.relative_to(PROJECT_DIR).as_posix(),
               "dockerfile": (context / "Dockerfile").relative_to(PROJECT_DIR).as_posix(), "platform": "linux/amd64"},
        registry=None if registry is None else
        {"server": registry.server} if registry.password is None else
        {"server": registry.server, "username": registry.username, "password": registry.password},
        skip_push=registry is None,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return built.repo_digest if registry is not None else built.image_name
