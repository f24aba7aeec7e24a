"""PLAT-ENV-001: the stack is what it says.

The engine names the stack: in every URN, and to the pack as PULUMI_STACK, with the stack's config
as PULUMI_CONFIG (pulumi/pulumi sdk/go/common/resource/plugin/analyzer_plugin.go, constructEnv).
`platform:environment` in that config must equal the stack name; every resource must belong to the
stack; what resources say about their environment (Cloud Run's `platform-environment` label, the
services' ENVIRONMENT variable) must say the stack; and the docker backend (one host, no failover,
no managed backups) runs only in integration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import CLOUD_RUN, CONTAINER_TYPES, DOCKER, Finding, Resource, as_map, service_env, stack_kind


def engine_context() -> tuple[str | None, Mapping[str, Any] | None]:
    """(PULUMI_STACK, the stack's config) when the engine started the pack; (None, None) otherwise."""
    stack = os.environ.get("PULUMI_STACK") or None
    raw = os.environ.get("PULUMI_CONFIG")
    config: Mapping[str, Any] | None = None
    if raw:
        try:
            config = as_map(json.loads(raw))
        except ValueError:
            config = {}
    return stack, config


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    out: list[tuple[str, Finding]] = []
    engine_stack, stack_config = engine_context()
    stacks = {r.stack for r in resources}
    expected = engine_stack or (sorted(stacks)[0] if len(stacks) == 1 else None)
    first = resources[0].urn if resources else ""
    if engine_stack is not None:
        claimed = (stack_config or {}).get("platform:environment")
        if claimed != engine_stack:
            out.append((first, f"platform:environment is {claimed!r} but the stack is {engine_stack!r}; expected the "
                               "stack's own name, so it gets its own environment's profile"))
    for r in resources:
        if expected is not None and r.stack != expected:
            out.append((r.urn, f"belongs to stack {r.stack!r}, not {expected!r}; expected one stack"))
        said = _said(r)
        if said is not None and said != r.stack:
            out.append((r.urn, f"says environment {said!r} in stack {r.stack!r}; expected {r.stack!r}"))
        if r.type == DOCKER and stack_kind(r.stack) != "integration":
            out.append((r.urn, f"runs on the docker backend in {r.stack}; the docker backend runs in integration "
                               "only (one host: no failover, no managed backups)"))
    return out


def _said(r: Resource) -> str | None:
    labels: Mapping[str, Any] = as_map(r.get("labels")) if r.type == CLOUD_RUN else {}
    if "platform-environment" in labels:
        return str(labels["platform-environment"])
    if r.type in CONTAINER_TYPES:
        env = service_env(r) or {}
        if isinstance(env.get("ENVIRONMENT"), str):
            return str(env["ENVIRONMENT"])
    return None
