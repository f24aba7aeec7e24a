"""PLAT-DATA-002: PocketBase backs up at least daily, and off the host (S3 over HTTPS) in every stack
but integration: the stack requires it, whichever backend it chose (docker in prod included)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict, role, service_env, stack_kind


def _daily(cron: str) -> bool:
    """At least once a day: every day of every month, any minute and hour fields."""
    fields = cron.split()
    return len(fields) == 5 and fields[2:] == ["*", "*", "*"]


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if role(resource) != "pocketbase":
        return NotApplicable("not the PocketBase service")
    env = service_env(resource)
    if env is None:
        return ["cannot read PocketBase's environment to verify its backups"]
    problems: list[str] = []
    cron = str(env.get("PB_BACKUP_CRON") or "")
    if not _daily(cron):
        problems.append(f"backup schedule {cron!r} is not at least daily; expected e.g. '0 3 * * *'")
    if stack_kind(resource.stack) != "integration":
        if not env.get("PB_BACKUP_S3_BUCKET"):
            problems.append(f"backups stay on the service's own volume in {resource.stack}; expected an S3 bucket "
                            "(PB_BACKUP_S3_BUCKET)")
        elif not str(env.get("PB_BACKUP_S3_ENDPOINT", "")).startswith("https://"):
            problems.append("the backup endpoint is not HTTPS; expected backups encrypted in transit")
    return problems
