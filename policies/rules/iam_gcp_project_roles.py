"""PLAT-IAM-002: no primitive role (owner, editor, viewer) and no `*.admin` role at project level."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict

PROJECT_IAM = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding",
               "gcp:projects/iAMPolicy:IAMPolicy")
PRIMITIVE = {"roles/owner", "roles/editor", "roles/viewer"}


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type not in PROJECT_IAM:
        return NotApplicable("not a project-level IAM grant")
    if resource.type.endswith("IAMPolicy"):
        return ["an authoritative project IAM policy replaces every grant of the project; expected IAMMember"]
    role = str(resource.props.get("role", ""))
    if role in PRIMITIVE:
        return [f"grants the primitive role {role} on the project; expected a predefined role on the resource"]
    if role.endswith(".admin") or role.endswith("Admin"):
        return [f"grants {role} on the whole project; expected a narrower role, on the resource itself"]
    return []
