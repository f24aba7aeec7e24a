"""Each environment's deploy credentials reach only that environment (issue #22 item 3): one Cloudflare account and
one Vercel team per environment.

A Cloudflare token's Cloudflare Tunnel and Access permissions are account-level ("Account permissions": Cloudflare
Tunnel Edit, Access: Apps and Policies Edit, developers.cloudflare.com/fundamentals/api/reference/permissions/), and an
API token's account resources are "All accounts" or one account, never part of one: integration's token (deployed
after every merge, without review) could rewrite prod's tunnels and Access applications if they shared an account.
A Vercel token is scoped to a team ("Scope ... the team", vercel.com/docs/rest-api#creating-an-access-token), every
project of it. So two committed stack files naming the same Cloudflare account or Vercel team are refused, like a
shared zone (stacks/identity.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks import identity
from tests.conftest import PROJECT_DIR, STACKS, stack_document

UNDECRYPTED = "[secret]"


def _values(document: dict[str, Any]) -> dict[str, str]:
    config: dict[str, Any] = document["config"]
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def _write(directory: Path, stack: str, document: dict[str, Any]) -> None:
    text: str = yaml.safe_dump(document, sort_keys=False)  # pyright: ignore[reportUnknownMemberType]
    (directory / f"Pulumi.{stack}.yaml").write_text(text)


def _sharing(tmp_path: Path, edit: str) -> list[str]:
    """staging planned beside a prod whose stack file shares one identity with it (staging's own otherwise)."""
    prod, staging = stack_document("prod"), stack_document("staging")
    config = staging["config"]
    theirs = prod["config"]
    if edit == "cloudflare account":
        config["platform:zone"]["accountId"] = theirs["platform:zone"]["accountId"]
    else:
        config["platform:frontend"]["teamId"] = theirs["platform:frontend"]["teamId"]
        config["vercel:team"] = theirs["vercel:team"]
        config["platform:frontend"]["projectName"] = "storefront-staging"
    _write(tmp_path, "prod", prod)
    return identity.shared_problems("staging", _values(staging), UNDECRYPTED, tmp_path)


def test_a_cloudflare_account_shared_with_another_environment_is_refused(tmp_path: Path) -> None:
    problems = _sharing(tmp_path, "cloudflare account")

    line = next((p for p in problems if p.startswith("platform:zone.accountId: ")), None)
    assert line is not None, problems
    assert "prod's Cloudflare account (Pulumi.prod.yaml: platform:zone.accountId)" in line


def test_a_vercel_team_shared_with_another_environment_is_refused(tmp_path: Path) -> None:
    problems = _sharing(tmp_path, "vercel team")

    assert any(p.startswith("platform:frontend.teamId: ") and "prod's Vercel team" in p for p in problems), problems
    assert any(p.startswith("vercel:team: ") and "prod's Vercel team" in p for p in problems), problems


@pytest.mark.parametrize(("section", "field", "provider_key"), [
    ("platform:zone", "accountId", None), ("platform:frontend", "teamId", "vercel:team")])
def test_the_committed_environments_share_no_cloudflare_account_and_no_vercel_team(
    section: str, field: str, provider_key: str | None,
) -> None:
    found = {stack: stack_document(stack)["config"] for stack in STACKS}
    ids = {stack: config[section][field] for stack, config in found.items()}

    assert len(set(ids.values())) == len(STACKS), f"{section}.{field} shared: {ids}"
    if provider_key is not None:
        assert all(config[provider_key] == ids[stack] for stack, config in found.items())
    assert (PROJECT_DIR / "Pulumi.prod.yaml").exists()
