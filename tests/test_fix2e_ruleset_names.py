"""Every `cloudflare.Ruleset` the edge declares ignores changes to its `name` (#20 audit, item 1).

Why: in terraform-provider-cloudflare (v5; the bridged pulumi-cloudflare 6.x) the ruleset's `name` is
`Required` with `PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}`
(internal/services/ruleset/schema.go, like `zone_id`, `account_id`, `kind` and `phase`). An entry point made in
the dashboard is named "default"; the program names its own "platform WAF" etc. So once `adopt-zone` has
imported such an entry point, the next `up` would plan a replace: a create-first POST of a second entry point
for the phase, which Cloudflare refuses ("Each phase has at most one entry point ruleset",
https://developers.cloudflare.com/ruleset-engine/about/phases/), on a resource `pulumi import` protected.

Pulumi's engine, with `ignoreChanges`: "Pulumi ignores a property by using the old value from the state instead
of the value provided by the Pulumi program when determining whether an update or replace is needed. Ignored
properties will still be used from the program when there is no previous value in the state, most importantly
when creating the resource" (https://www.pulumi.com/docs/iac/concepts/options/ignorechanges/; pulumi/pulumi#2657:
"will be ignored for purposes of updates, and as a result also cannot trigger replacements").

The options are read from the registrations the program sends the (mock) engine, as `pulumi up` sends them.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.plan import Plan, PlanMonitor
from tests.conftest import PROJECT_DIR, STACKS, plan_of

RULESET_TYPE = "cloudflare:index/ruleset:Ruleset"


def plan_with_options(stack: str) -> tuple[Plan, dict[str, list[str]]]:
    """The stack's plan and, by URN, the `ignoreChanges` each resource was registered with."""
    ignored: dict[str, list[str]] = {}
    original = PlanMonitor.RegisterResource

    def spy(self: PlanMonitor, request: Any) -> Any:
        response = original(self, request)
        ignored[response.urn] = list(request.ignoreChanges)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PlanMonitor, "RegisterResource", spy)
        plan = plan_of(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack)
    return plan, ignored


@pytest.mark.parametrize("stack", STACKS)
def test_every_ruleset_ignores_changes_to_its_name(stack: str) -> None:
    plan, ignored = plan_with_options(stack)

    rulesets = [r for r in plan.resources if r.type == RULESET_TYPE]
    assert rulesets, "a stack with no ruleset proves nothing"
    for ruleset in rulesets:
        assert "name" in ignored[ruleset.urn], (
            f"{ruleset.name} ({ruleset.inputs['phase']}): `name` is RequiresReplace in the provider, so an adopted "
            f"entry point named 'default' would be replaced (a second entry point, refused); ignore_changes is "
            f"{ignored[ruleset.urn]}")
        # Created ones still get the program's name: ignore_changes only applies where state has a value.
        assert ruleset.inputs["name"].startswith("platform ")
