"""PLAT-DATA-005: a Cloud Run variable that holds a credential comes from Secret Manager, not a literal.

CrossGuard hands a policy its inputs with Pulumi secrets already unwrapped, so a rule cannot tell a
secret from a plain value; what it can see is where a service's credentials live. On Cloud Run a
literal `value` is readable by anyone who may view the service; `value_source.secret_key_ref` is not.
A credential is recognised by its name or by its value (`policies/secrets.py`): `DATABASE_URL` with
a password in it is one whatever it is called. A literal under a credential's name that is not known
until apply is refused too: it can only be another resource's output, a generated secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import CLOUD_RUN, NotApplicable, Resource, Verdict, as_list, as_map
from policies.secrets import credential_name, credential_value

CLOUD_RUN_JOB = "gcp:cloudrunv2/job:Job"


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type not in (CLOUD_RUN, CLOUD_RUN_JOB):
        return NotApplicable("not a Cloud Run service or job")
    problems: list[str] = []
    # A job's containers are one level deeper: template (the execution) -> template (the task) -> containers.
    path = ("template", "containers") if resource.type == CLOUD_RUN else ("template", "template", "containers")
    for container in map(as_map, as_list(resource.get(*path))):
        for env in map(as_map, as_list(container.get("envs"))):
            name = str(env.get("name", ""))
            if "value" in env and (credential_name(name) or credential_value(env.get("value"))):
                problems.append(f"{name} is a literal value that holds a credential; expected "
                                "value_source.secret_key_ref (Secret Manager)")
    return problems
