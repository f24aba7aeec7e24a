"""The engine purges exactly the URL the edge caches each tenant's catalog under, in the zone it
caches it in, with a token that can do that and nothing else (#16.5). The token is created by the
environment's bootstrap (infra/bootstrap), not by the stack: a stack that creates tokens needs a deploy token
with API Tokens Write, which can mint a token for any zone (#22.3)."""

from __future__ import annotations

import json

import pytest

from components.edge import PERMISSION_GROUPS, catalog_path
from infra.plan import Plan
from tests.cloudflare_rules import Request, cache_settings
from tests.conftest import STACKS, stack_document
from tests.environment import service_environment


@pytest.mark.parametrize("stack", STACKS)
def test_the_engine_purges_the_url_the_edge_caches_with_a_zone_scoped_token(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    config = stack_document(stack)["config"]
    env = service_environment(plan, "commission-engine")
    rules = next(r.inputs["rules"] for r in plan.resources
                 if r.type == "cloudflare:index/ruleset:Ruleset" and r.inputs["phase"] == "http_request_cache_settings")

    base, _ = env["CATALOG_PUBLIC_BASE_URL"]
    assert env["CLOUDFLARE_ZONE_ID"][0] == config["platform:zone"]["zoneId"]
    for tenant in config["platform:tenants"]:
        url = base + catalog_path(tenant["slug"])  # what engine/adapters/cloudflare.py sends in `files`
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        assert scheme == "https" and host == f"api.{config['platform:zone']['name']}"
        assert cache_settings(rules, Request(host, "/" + path))["cache"] is True, url

    _, secret = env["CATALOG_PURGE_TOKEN"]
    assert secret, "the purge token reaches the engine as a secret"
    assert "platform:catalogPurgeToken" in config and "secure" in config["platform:catalogPurgeToken"], \
        "the engine's token comes from the stack's secret config, set from the bootstrap's output"
    # API tokens (an Access service token authenticates to one Access application, it mints nothing).
    assert not [r for r in plan.resources if r.type in ("cloudflare:index/apiToken:ApiToken",
                                                       "cloudflare:index/accountToken:AccountToken")], \
        "the stack creates no Cloudflare token: its deploy token needs no API Tokens Write"
    assert "catalogPurgeToken" not in plan.outputs, "a secret only the engine uses is no stack output"


@pytest.mark.parametrize("stack", STACKS)
def test_the_bootstrap_creates_the_purge_token_for_the_zone_with_cache_purge_only(stack: str) -> None:
    from infra.bootstrap.plan import bootstrap_plan

    config = stack_document(stack)["config"]
    plan = bootstrap_plan(stack)

    [api_token] = [r for r in plan.resources if r.name == "catalog-purge-token"]
    [policy] = api_token.inputs["policies"]
    assert json.loads(policy["resources"]) == {f"com.cloudflare.api.account.zone.{config['platform:zone']['zoneId']}": "*"}
    assert [g["id"] for g in policy["permissionGroups"]] == [PERMISSION_GROUPS["Cache Purge"]]
    assert api_token.inputs["expiresOn"] == f"{config['platform:zone']['tokensExpireOn']}T00:00:00Z"
    assert plan.outputs["catalogPurgeToken"].startswith("[secret")
