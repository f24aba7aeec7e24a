"""PLAT-IAM-004: only a Cloud Run service labelled public may be invoked by allUsers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import CLOUD_RUN, Resource

PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
INVOKER_GRANTS = ("gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
                  "gcp:cloudrunv2/serviceIamBinding:ServiceIamBinding")


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, str]]:
    public = {r.props.get("name") for r in resources
              if r.type == CLOUD_RUN and r.props.get("labels", {}).get("platform-public") == "true"}
    violations: list[tuple[str, str]] = []
    for grant in (r for r in resources if r.type in INVOKER_GRANTS):
        members = set(grant.props.get("members", [])) | {grant.props.get("member")}
        if members & PUBLIC_MEMBERS and grant.props.get("name") not in public:
            violations.append((grant.urn, f"lets anyone invoke {grant.props.get('name')!r}, which is not labelled "
                                          "platform-public=true; expected public invocation only for public services"))
    return violations
