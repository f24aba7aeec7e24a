"""PLAT-IAM-005: a Vercel environment variable that holds a credential is marked sensitive."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict

CREDENTIAL = re.compile(r"(TOKEN|SECRET|PASSWORD|PRIVATE_KEY|API_KEY)$")


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable":
        return NotApplicable("not a Vercel environment variable")
    key = str(resource.props.get("key", ""))
    if not CREDENTIAL.search(key):
        return NotApplicable(f"{key} does not name a credential")
    if resource.props.get("sensitive") is not True:
        return [f"{key} holds a credential but is not marked sensitive; expected sensitive: true"]
    return []
