"""PLAT-DATA-003: Redis is never reachable from the internet and always asks for a password."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import DOCKER, MEMORYSTORE, RAILWAY, NotApplicable, Resource, Verdict, is_public, service_name


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    problems: list[str] = []
    if resource.type == MEMORYSTORE:
        if resource.props.get("authEnabled") is not True:
            problems.append("AUTH is off; expected authEnabled: true")
        if resource.props.get("transitEncryptionMode") != "SERVER_AUTHENTICATION":
            problems.append("traffic is not encrypted; expected transitEncryptionMode SERVER_AUTHENTICATION")
        return problems
    if service_name(resource) != "redis":
        return NotApplicable("not the Redis service")
    if is_public(resource):
        problems.append("Redis is reachable from the internet; expected the private network only")
    if resource.type == DOCKER and "--requirepass" not in " ".join(resource.props.get("command", [])):
        problems.append("Redis runs without --requirepass; expected a password")
    if resource.type == RAILWAY and "REDIS_PASSWORD" not in (resource.props.get("variables") or {}):
        problems.append("Redis runs without REDIS_PASSWORD; expected a password")
    return problems
