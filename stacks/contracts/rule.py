"""The shape of a service contract: a documented rule of a provider's service, with its source, checked on
the resources a plan would declare (derived ones included), before the provider ever sees them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pulumi.errors import RunError

from stacks.cloudflare import Plan as ZonePlan

UNKNOWN = "[unknown]"


class Planned(Protocol):
    """What a rule reads of a planned resource (infra.plan.PlannedResource has these)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Context:
    """What the stack says that the planned resources do not carry (the zone's Cloudflare plan)."""

    zone_plan: ZonePlan | None = None


Problem = str
"""What is wrong, in a few words with the offending values, e.g. "0.75 vCPU with concurrency 80"."""


@dataclass(frozen=True)
class Rule:
    """One documented rule. `check` judges one planned resource of `types`; `check_plan` the whole plan
    (a rule that spans resources, e.g. one entry point per zone and phase)."""

    id: str
    service: str
    statement: str
    source: str
    """URL or provider-source path, then a short quote of the documented rule."""
    types: frozenset[str] = frozenset()
    check: Callable[[Planned, Context], Sequence[Problem]] | None = None
    check_plan: Callable[[Sequence[Planned], Context], Sequence[tuple[Planned, Problem]]] | None = \
        field(default=None)


@dataclass(frozen=True)
class Violation:
    resource_type: str
    resource_name: str
    rule: Rule
    problem: Problem

    def line(self) -> str:
        """One line: the resource, the rule id (between `: `, as config errors name their key), the rule,
        what was found and where the rule is written."""
        return (f"{self.resource_type} {self.resource_name}: {self.rule.id}: {self.rule.statement} "
                f"(found: {self.problem}); source: {self.rule.source}")


class ContractError(RunError):
    """Raised by the program itself where it finds a resource it is about to declare breaking its service's
    contract (a derived Cloud Run size, a dashboard given two writers): the same rule, the same line as `plan`'s
    contract check, so `python -m infra plan` reports it with exit 2 (infra/cli.py) and never a traceback.

    A `pulumi.RunError`: under the Pulumi CLI, "a clean exit rather than the usual verbose unhandled error logic
    which emits the source program text and complete stack trace" (pulumi/pulumi sdk/python/lib/pulumi/errors.py),
    so a real `pulumi up` stops before registering that resource and prints these lines as its error. Resources the
    program registered before it are not held back: an `up` run without a preview may still create them (as with
    any error the program raises mid-way), so the deploy workflows preview first."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("\n".join(v.line() for v in self.violations))

    def lines(self, file: str) -> list[str]:
        """`<file>: <type> <name>: <RULE-ID>: <statement> (found: ...); source: ...`, one per breach."""
        return [f"{file}: {violation.line()}" for violation in self.violations]

    def report(self, file: str) -> str:
        """What every command that runs the program prints for it (stderr, exit 2)."""
        return (f"error: {len(self.violations)} planned resource(s) break their service's contract; a deploy would "
                "fail:\n" + "\n".join(self.lines(file)))


# --- helpers shared by the service modules --------------------------------------------------------------


def known(value: Any) -> bool:
    """False for what a preview cannot know (an output) or must not show (a secret)."""
    return not (isinstance(value, str) and (value == UNKNOWN or value.startswith("[secret")))


def get(inputs: Mapping[str, Any], *path: str) -> Any:
    """inputs[path[0]][path[1]]...; None where any step is missing, unknown or not a mapping."""
    value: Any = inputs
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]  # pyright: ignore[reportUnknownVariableType]
    return value if known(value) else None  # pyright: ignore[reportUnknownVariableType]


def items(value: Any) -> list[Any]:
    """A list input as a list (a single object where the provider has maxItems 1 counts as one item)."""
    if isinstance(value, list):
        return [v for v in value if known(v)]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, Mapping):
        return [value]
    return []


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_MIB = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0, "Ti": 1024.0 ** 2, "k": 1000 / 1024 ** 2,
               "M": 1000 ** 2 / 1024 ** 2, "G": 1000 ** 3 / 1024 ** 2, "T": 1000 ** 4 / 1024 ** 2}


def cpu_quantity(value: Any) -> float | None:
    """A Kubernetes CPU quantity ("1", "0.5", "500m") in vCPU; None if it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _CPU.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    return float(match[1]) / (1000 if match[2] else 1)


def memory_mib(value: Any) -> float | None:
    """A Kubernetes memory quantity ("512Mi", "1Gi", "2G") in MiB; None if it is not one."""
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    return float(match[1]) * _MEMORY_MIB[match[2]] if match[2] else float(match[1]) / 1024 ** 2
