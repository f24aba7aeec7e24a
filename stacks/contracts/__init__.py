"""Service contracts: the documented rules of each provider's service that our planned resources rely on,
one module per service, each rule with its source. `plan` runs every rule over every planned resource,
including those the program derives (telemetry, standbys, ...), so a resource the provider would refuse, or
that would fail on its first start, stops the plan with exit 2 instead of a failed `pulumi up`.

Rule type and helpers: stacks/contracts/rule.py."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from stacks.contracts import (
    certificatemanager,
    cloudarmor,
    cloudflare,
    cloudrun,
    cloudsql,
    compute,
    grafana,
    memorystore,
    railway,
    secretmanager,
    storage,
)
from stacks.contracts.rule import Context, ContractError, Planned, Rule, Violation

RULES: tuple[Rule, ...] = (*cloudrun.RULES, *compute.RULES, *certificatemanager.RULES, *cloudarmor.RULES,
                           *memorystore.RULES, *cloudsql.RULES, *secretmanager.RULES, *cloudflare.RULES, *grafana.RULES,
                           *railway.RULES, *storage.RULES)

__all__ = ["RULES", "Context", "ContractError", "Planned", "Rule", "Violation", "check"]


NO_CONTEXT = Context()


def check(resources: Iterable[Planned], context: Context = NO_CONTEXT,
          rules: Sequence[Rule] = RULES) -> list[Violation]:
    """Every violation of `rules` by `resources`, in rule order, then by resource."""
    planned = list(resources)
    violations: list[Violation] = []
    for rule in rules:
        if rule.check is not None:
            for resource in (r for r in planned if r.type in rule.types):
                violations += [Violation(resource.type, resource.name, rule, problem)
                               for problem in rule.check(resource, context)]
        if rule.check_plan is not None:
            violations += [Violation(resource.type, resource.name, rule, problem)
                           for resource, problem in rule.check_plan(planned, context)]
    return violations
