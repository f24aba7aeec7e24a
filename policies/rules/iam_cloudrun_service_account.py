"""PLAT-IAM-003: every Cloud Run service runs as its own service account, never the default compute one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import CLOUD_RUN, NotApplicable, Resource, Verdict


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != CLOUD_RUN:
        return NotApplicable("not a Cloud Run service")
    account = resource.props.get("template", {}).get("serviceAccount")
    if not account:
        return ["runs as the project's default compute service account; expected a dedicated service account"]
    if str(account).endswith("-compute@developer.gserviceaccount.com"):
        return [f"runs as the default compute service account {account}; expected a dedicated one"]
    return []
