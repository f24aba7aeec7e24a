"""The README's picture of each environment is the one its plan draws (#25.5): a change to what a stack
declares that the committed picture does not show fails here (`python3 tools/dev.py generate` redraws it)."""

from __future__ import annotations

from pathlib import Path

from infra import picture
from infra.plan import Plan

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readmes_pictures_are_the_ones_the_committed_plans_draw(committed_plans: dict[str, Plan]) -> None:
    assert picture.readme_section(README.read_text()) == picture.pictures(committed_plans), (
        "README.md's environments picture is stale: run python3 tools/dev.py generate")


def test_the_picture_comes_right_after_the_commands() -> None:
    text = README.read_text()
    first_section = text.index("\n## ")
    assert text.index(picture.BEGIN) < first_section or text[first_section:].startswith("\n## Environments"), (
        "the pictures follow the commands, before the rest of the README")


def test_prods_picture_shows_each_hop_of_a_request_and_the_replica_region(committed_plans: dict[str, Plan]) -> None:
    drawn = picture.picture(committed_plans["prod"])
    for hop in ("browser --> cloudflare", "cloudflare -->|storefront hosts| vercel", "front --> engine",
                "engine --> database", "engine --> cache", "database -->|Litestream| replica_bucket",
                "front -.->|failover| engine_standby"):
        assert hop in drawn, hop
    assert "replica region us-east1" in drawn and "GCP HTTPS load balancer" in drawn
    assert drawn.count("-->|daily backups|") == 1 and "access-logs" not in drawn  # one backups bucket
    assert "Cloud Run, southamerica-east1<br/>1 to 5 instances" in drawn  # L1: one warm, up to five
    assert "Cloudflare Tunnel" in picture.picture(committed_plans["integration"])
    assert "Railway, " in picture.picture(committed_plans["staging"])
