"""`python -m components.observability rules [STACK]|rule-tests [STACK]|dashboard NAME`: print a generated file.

The rules are those the stack deploys (default: integration, whose Prometheus loads them): its thresholds,
an absence alert per scrape job of its backends, its cost expression and budget, read from its stack file.
"""

import sys

from components.images import PROJECT_DIR
from components.observability import dashboards
from components.observability.rules import dump, rule_groups, rule_tests
from components.observability.spec import ObservabilitySpec
from components.observability.stack import TelemetryPlan, plan


def rules_file(stack: str) -> str:
    """The generated rules of a stack: integration's are the ones its Prometheus loads."""
    return "prometheus-rules.yml" if stack == "integration" else f"prometheus-rules.{stack}.yml"


def stack_plan(stack: str, base: ObservabilitySpec | None = None) -> TelemetryPlan:
    """What the committed stack file of `stack` deploys (from another spec than slos.yaml with `base`)."""
    from infra.config import load_model
    from infra.ops.replica import storage_of
    from infra.stackfile import read_stack_file

    model = load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack))
    return plan(model.services, model.alerts.overrides, model.alerts.monthly_budget_usd,
                model.gcp.region if model.gcp else None, base, restore_tested=storage_of(model) is not None,
                postgres=model.database.cloud_sql)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["rules"] and len(args) <= 2:
        sys.stdout.write(dump(rule_groups(stack_plan(args[1] if len(args) == 2 else "integration").spec)))
    elif args[:1] == ["rule-tests"] and len(args) <= 2:
        stack = args[1] if len(args) == 2 else "integration"
        sys.stdout.write(dump(rule_tests(stack_plan(stack).spec, rules_file(stack))))
    elif len(args) == 2 and args[0] == "dashboard" and args[1] in dashboards.DASHBOARDS:
        sys.stdout.write(dashboards.render(args[1]))
    else:
        sys.exit("usage: python -m components.observability rules [STACK]|rule-tests [STACK]|"
                 "dashboard overview|routes|tenants")
