"""Version 1 of the SLO and alert spec (`slos.yaml`), validated like the stack config."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

SPEC_FILE = Path(__file__).resolve().parent / "slos.yaml"
DURATION = re.compile(r"^(\d+)(m|h|d)$")
NAME = r"^[A-Za-z][A-Za-z0-9]+$"
SLI = r"^[a-z][a-z0-9_]+$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SloSpec(_Spec):
    name: Annotated[str, Field(pattern=SLI)]
    requirement: str
    objective_percent: Annotated[float, Field(gt=0, lt=100)]
    errors: Annotated[str, Field(min_length=1)]
    """PromQL of the bad events per second over `{window}`."""
    total: Annotated[str, Field(min_length=1)]


class AlertSpec(_Spec):
    name: Annotated[str, Field(pattern=NAME)]
    requirement: str
    sli: Annotated[str, Field(pattern=SLI)]
    expr: Annotated[str, Field(min_length=1)]
    above: float
    for_: Annotated[str, Field(alias="for", pattern=DURATION.pattern)]
    severity: Literal["page", "ticket", "info"]
    labels: dict[str, str] = {}
    runbook: Annotated[str, Field(min_length=20)]
    no_data_covered_by: Annotated[str, Field(pattern=NAME)] | None = None
    """The alert that pages when this one's series are absent (an absence alert, never without data itself):
    Grafana may then read this rule's no data as OK instead of paging it (components/observability/grafana.py)."""


class ObjectiveSpec(_Spec):
    """An SLO of the document as the value it keeps (P75 LCP <= 2.5 s), not only the alert past it: recorded
    as `slo:<requirement>:<name>` (rules.py) and drawn with its threshold in the overview's Objectives row."""

    requirement: Annotated[str, Field(pattern=r"^[A-Z][0-9]+$")]
    name: Annotated[str, Field(pattern=SLI)]
    operator: Literal["<", "<="]
    """The document's "<" or "≤": the series keeps the objective while `series <operator> objective`."""
    objective: float
    unit: Literal["s", "percentunit", "none"]
    expr: Annotated[str, Field(min_length=1)] | None = None
    same_sli_as: Annotated[str, Field(pattern=NAME)] | None = None
    """The alert whose SLI this objective bounds (its expression, verbatim), instead of `expr`."""

    @property
    def record(self) -> str:
        return f"slo:{self.requirement.lower()}:{self.name}"


class ObservabilitySpec(_Spec):
    version: Literal[1]
    exporters: dict[str, list[str]]
    slos: list[SloSpec]
    objectives: list[ObjectiveSpec] = []
    alerts: list[AlertSpec]


def with_overrides(spec: ObservabilitySpec,
                   overrides: Iterable[tuple[str, float | None, str | None]]) -> ObservabilitySpec:
    """The spec with a stack's thresholds and durations (validated with the stack config)."""
    by_name = {name: (above, for_) for name, above, for_ in overrides}
    alerts = [alert.model_copy(update={k: v for k, v in (("above", by_name[alert.name][0]),
                                                           ("for_", by_name[alert.name][1])) if v is not None})
              if alert.name in by_name else alert for alert in spec.alerts]
    return spec.model_copy(update={"alerts": alerts})


COST_PER_HOUR = "{cost_usd_per_hour}"
BUDGET = "{monthly_budget_usd}"
PLACEHOLDERS = (COST_PER_HOUR, BUDGET)
"""Filled per stack (`with_cost`): M6 prices what the stack's backends bill against its budget."""


def with_cost(spec: ObservabilitySpec, cost_usd_per_hour: str, monthly_budget_usd: float) -> ObservabilitySpec:
    """The spec with the stack's cost expression (components/observability/cost.py) and budget in place."""
    alerts = [alert.model_copy(update={"expr": alert.expr.replace(COST_PER_HOUR, cost_usd_per_hour)
                                       .replace(BUDGET, f"{monthly_budget_usd:g}")}) for alert in spec.alerts]
    return spec.model_copy(update={"alerts": alerts})


def with_alerts(spec: ObservabilitySpec, extra: Iterable[AlertSpec]) -> ObservabilitySpec:
    return spec.model_copy(update={"alerts": [*spec.alerts, *extra]})


def unresolved(spec: ObservabilitySpec) -> list[str]:
    """Alerts whose expression still holds a placeholder a stack fills."""
    return [alert.name for alert in spec.alerts if any(p in alert.expr for p in PLACEHOLDERS)]


@functools.cache
def load(path: Path = SPEC_FILE) -> ObservabilitySpec:
    """The validated spec; read once per file and process (the result is frozen)."""
    spec = ObservabilitySpec.model_validate(yaml.safe_load(path.read_text()), by_alias=True)
    names = [a.name for a in spec.alerts] + [s.name for s in spec.slos]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"{path.name}: names used twice: {sorted(duplicates)}")
    unbound = [f"{o.record}: {problem}" for o in spec.objectives for problem in _objective_problems(spec, o)]
    if unbound:
        raise ValueError(f"{path.name}: objectives: {unbound}")
    uncovered = uncovered_no_data(spec)
    if uncovered:
        raise ValueError(f"{path.name}: no_data_covered_by names no alert of the spec: {uncovered}")
    return spec


def _objective_problems(spec: ObservabilitySpec, objective: ObjectiveSpec) -> list[str]:
    if (objective.expr is None) == (objective.same_sli_as is None):
        return ["give exactly one of expr and same_sli_as"]
    if objective.same_sli_as is not None and objective.same_sli_as not in {a.name for a in spec.alerts}:
        return [f"same_sli_as names no alert of the spec: {objective.same_sli_as}"]
    return []


def objective_expr(spec: ObservabilitySpec, objective: ObjectiveSpec) -> str:
    """The PromQL an objective records: its own, or the SLI of the alert it shares (as the stack deploys it)."""
    if objective.expr is not None:
        return objective.expr
    [alert] = [a for a in spec.alerts if a.name == objective.same_sli_as]
    return alert.expr


def uncovered_no_data(spec: ObservabilitySpec) -> list[str]:
    """Alerts whose `no_data_covered_by` names an alert the spec does not hold (a stack that drops one drops both)."""
    names = {a.name for a in spec.alerts}
    return [f"{a.name} -> {a.no_data_covered_by}" for a in spec.alerts
            if a.no_data_covered_by is not None and a.no_data_covered_by not in names]


def minutes(duration: str) -> int:
    match = DURATION.match(duration)
    assert match is not None
    return int(match.group(1)) * {"m": 1, "h": 60, "d": 1440}[match.group(2)]
