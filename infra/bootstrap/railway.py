"""Railway's project token for one environment, created once by the bootstrap with an account token.

A project token (`projectTokenCreate`, https://docs.railway.com/guides/public-api#project-token) is scoped to
one project and one environment and is sent as `Project-Access-Token`; it is what the stack's dynamic
provider uses (the staging deploy environment's `RAILWAY_TOKEN`, never a stack file: #22 item 1). An account
token reaches every project of the account: it stays
with the human who runs the bootstrap and is never stored in a stack (#22.3). The mutation validates against
Railway's schema (tests/schemas/railway-public-api.graphql) in tests/test_bootstrap.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

API_URL = "https://backboard.railway.com/graphql/v2"
ACCOUNT_TOKEN_VARIABLE = "RAILWAY_API_TOKEN"
PROJECT_TOKEN_CREATE = """
mutation projectTokenCreate($input: ProjectTokenCreateInput!) {
  projectTokenCreate(input: $input)
}"""


class ProjectTokenProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        import os

        account_token = os.environ.get(ACCOUNT_TOKEN_VARIABLE)
        if not account_token:
            raise RuntimeError(f"{ACCOUNT_TOKEN_VARIABLE} is not set: export the Railway account token of the "
                               "human running the bootstrap (Account Settings > Tokens); it is never stored")
        variables = {"input": {"projectId": props["project_id"], "environmentId": props["environment_id"],
                               "name": props["name"]}}
        body = json.dumps({"query": PROJECT_TOKEN_CREATE, "variables": variables,
                           "operationName": "projectTokenCreate"}).encode()
        request = urllib.request.Request(API_URL, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {account_token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"Railway projectTokenCreate: HTTP {err.code}") from None
        if payload.get("errors"):
            raise RuntimeError(f"Railway projectTokenCreate failed: {payload['errors']}")
        token = str(payload["data"]["projectTokenCreate"])
        return dynamic.CreateResult(id_=f"{props['project_id']}/{props['environment_id']}/{props['name']}",
                                    outs={**props, "token": token})


class ProjectToken(dynamic.Resource, module="railway", name="ProjectToken"):
    """Type token `pulumi-python:dynamic/railway:ProjectToken`; `token` is a secret output."""

    token: pulumi.Output[str]

    def __init__(self, name: str, project_id: str, environment_id: str, token_name: str) -> None:
        super().__init__(ProjectTokenProvider(), name,
                         {"project_id": project_id, "environment_id": environment_id, "name": token_name,
                          "token": None},
                         pulumi.ResourceOptions(additional_secret_outputs=["token"]))
