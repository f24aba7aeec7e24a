"""PLAT-DATA-005: a Cloud Run variable that holds a credential comes from Secret Manager, not a literal.

CrossGuard hands a policy its inputs with Pulumi secrets already unwrapped, so a rule cannot tell a
secret from a plain value; what it can see is where a service's credentials live. On Cloud Run a
literal `value` is readable by anyone who may view the service; `value_source.secret_key_ref` is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.rule import CLOUD_RUN, NotApplicable, Resource, Verdict

CREDENTIAL = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|_URL_WITH_AUTH|REDIS_URL)$")


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type != CLOUD_RUN:
        return NotApplicable("not a Cloud Run service")
    problems: list[str] = []
    for container in resource.props.get("template", {}).get("containers", []):
        for env in container.get("envs", []):
            if CREDENTIAL.search(str(env.get("name", ""))) and "value" in env:
                problems.append(f"{env['name']} is a literal value; expected value_source.secret_key_ref "
                                "(Secret Manager)")
    return problems
