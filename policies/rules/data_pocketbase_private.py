"""PLAT-DATA-004: PocketBase is public only when the engine runs on another backend and must reach it so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Finding, Resource, backend_of, is_public, role


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    engines = {backend_of(r) for r in resources if role(r) == "engine"}
    violations: list[tuple[str, Finding]] = []
    for pocketbase in (r for r in resources if role(r) == "pocketbase"):
        if is_public(pocketbase) and backend_of(pocketbase) in engines:
            violations.append((pocketbase.urn, "PocketBase (its admin UI included) is public although the engine "
                                               "reaches it on the private network; expected it private"))
    return violations
