"""`python -m infra bootstrap-plan ENV`: the bootstrap program run offline under the same mock engine as `plan`
(infra/plan.py), for ENV's bootstrap stack file and ENV's own stack file. Nothing is created."""

from __future__ import annotations

import hashlib
import sys
import urllib.parse
from typing import Any, cast

import pulumi

from infra.bootstrap import BOOTSTRAP_DIR, PROJECT_DIR, access, planned_of, run
from infra.config import ConfigError, load_model
from infra.plan import Plan, PlanMocks, render_tree, run_program
from infra.stackfile import read_stack_file

PERMISSION_GROUPS_CALL = "cloudflare:index/getApiTokenPermissionGroupsList:getApiTokenPermissionGroupsList"
GRAFANA_STACK_CALL = "grafana:cloud/getStack:getStack"
# The ids the stack program used before (components/edge.py), as Cloudflare lists them; others are stand-ins.
KNOWN_IDS = {"Cache Purge": "e17beae8b8cb423a99b1730f21238bed", "Zone Read": "c8fed203ed3043cba015a93ad1616f1f"}
GROUP_NAMES = ({g for g, _, _ in access.CLOUDFLARE_DEPLOY_GROUPS.values()} | set(access.ALWAYS_ZONE_GROUPS)
               | set(access.CATALOG_PURGE_GROUPS))


class BootstrapMocks(PlanMocks):
    """Also answers the lookups the bootstrap makes: permission groups by name, the Grafana Cloud stack."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        rid, state = super().new_resource(args)
        if args.typ == "gcp:iam/workloadIdentityPool:WorkloadIdentityPool":
            pool = state["workloadIdentityPoolId"]
            state["name"] = f"projects/123456789012/locations/global/workloadIdentityPools/{pool}"
        elif args.typ == "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider":
            state["name"] = ("projects/123456789012/locations/global/workloadIdentityPools/github/providers/"
                             f"{state['workloadIdentityPoolProviderId']}")
        elif args.typ == "gcp:projects/iAMCustomRole:IAMCustomRole":
            # "name: The name of the role in the format projects/{{project}}/roles/{{role_id}}" (pulumi_gcp
            # projects/iam_custom_role.py), what a binding names it by.
            state["name"] = f"projects/{state['project']}/roles/{state['roleId']}"
        elif args.typ == "gcp:kms/cryptoKey:CryptoKey":
            rid = f"{state['keyRing']}/cryptoKeys/{state['name']}"
        elif args.typ == "gcp:kms/keyRing:KeyRing":
            rid = f"projects/{state['project']}/locations/{state['location']}/keyRings/{state['name']}"
        elif args.typ == "grafana:cloud/accessPolicyToken:AccessPolicyToken":
            state["token"] = "glc_" + hashlib.sha256(args.name.encode()).hexdigest()[:40]
        elif args.typ == "grafana:cloud/stackServiceAccountToken:StackServiceAccountToken":
            state["key"] = "glsa_" + hashlib.sha256(args.name.encode()).hexdigest()[:40]
        elif args.typ == "pulumi-python:dynamic/railway:ProjectToken":
            state["token"] = hashlib.sha256(args.name.encode()).hexdigest()[:36]
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        call_args = cast(dict[str, Any], args.args)  # pyright: ignore[reportUnknownMemberType]
        if args.token == PERMISSION_GROUPS_CALL:
            name = urllib.parse.unquote(str(call_args.get("name")))
            if name not in GROUP_NAMES:
                return {"results": []}, []
            gid = KNOWN_IDS.get(name) or hashlib.sha256(name.encode()).hexdigest()[:32]
            return {"results": [{"id": gid, "name": name, "category": "", "description": "",
                                 "scopes": [call_args.get("scope")]}]}, []
        if args.token == GRAFANA_STACK_CALL:
            slug = str(call_args.get("slug"))
            return {"id": str(int(hashlib.sha256(slug.encode()).hexdigest()[:6], 16)), "slug": slug}, []
        return super().call(args)


def bootstrap_plan(environment: str) -> Plan:
    """The bootstrap's plan for ENV; ConfigError when either stack file is invalid."""
    stack_raw = read_stack_file(PROJECT_DIR / f"Pulumi.{environment}.yaml", environment)
    model = load_model(stack_raw)
    planned = planned_of(model, stack_raw, environment)  # the stack's own plan first, then the bootstrap's
    raw = read_stack_file(BOOTSTRAP_DIR / f"Pulumi.{environment}.yaml", environment)
    return run_program(model, raw, environment, lambda _: run(environment, planned), BootstrapMocks())


def main(environment: str) -> int:
    try:
        plan = bootstrap_plan(environment)
    except ConfigError as err:
        print(f"error: invalid stack config, nothing was declared:\n{err}", file=sys.stderr)
        return 2
    except access.UnreviewedType as err:
        print(f"error: {err}; add it to infra/bootstrap/access.py with the reason", file=sys.stderr)
        return 2
    sys.stdout.write(render_tree(plan).replace("Plan for stack", "Bootstrap plan for environment", 1))
    for key, value in sorted(plan.outputs.items()):
        print(f"  output {key}: {value}")
    return 0
