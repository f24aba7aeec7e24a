"""A change sized against the providers' API rate limits (stacks/quotas.py), from two plans."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.plan import diff_plans
from stacks.quotas import BUDGETS, Budget


def calls(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[Budget, int]]:
    """Each budget with the number of calls the change from `before` to `after` makes against it."""
    diff = diff_plans(before, after)
    changes = {"create": diff.added, "update": [r for r, _ in diff.changed], "delete": diff.removed}
    return [(budget, sum(1 for op in budget.operations for r in changes[op] if r["type"].startswith(budget.provider)))
            for budget in BUDGETS]


def deploys_needed(before: Mapping[str, Any], after: Mapping[str, Any]) -> int:
    """The fewest deploys the change can be split into, each within every budget."""
    return max([1, *(-(-count // budget.per_deploy) for budget, count in calls(before, after))])


def over_budget(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """One message per provider budget the change from `before` to `after` exceeds."""
    problems: list[str] = []
    for budget, count in calls(before, after):
        if count > budget.per_deploy:
            ops = "/".join(budget.operations)
            problems.append(
                f"platform:tenants: this change makes {count:,} {ops} calls to {budget.provider.rstrip(':')} "
                f"resources in one deploy; the API allows {budget.limit} ({budget.source}); expected at most "
                f"{budget.per_deploy:,} per deploy: onboard or remove the tenants in several smaller changes")
    return problems
