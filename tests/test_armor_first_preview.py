"""The first preview of prod (and of any new environment): the origin-gate password does not exist yet, so
its `result` is unknown, as the engine answers every computed output of a resource to be created at preview
(pulumi sdk/python/lib/pulumi/runtime/rpc.py `resolve_properties`: "If the engine was able to give us a
reasonable value back, then use it. Otherwise, inform the Output that the value isn't known").

Cloud Armor's rules must still be a known list then, with the default deny known: PLAT-NET-002 answers a rules
list unknown at preview with a mandatory violation, which would stop the first deploy. Only each allow rule's
expression (the one place the gate's value goes) may be unknown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from infra.analyzer import LEVELS, PolicyPackProcess
from infra.plan import Plan, PlanMocks, run_plan
from infra.stackfile import read_stack_file
from tests.boot_harness import plain
from tests.conftest import PROJECT_DIR

ARMOR = "gcp:compute/securityPolicy:SecurityPolicy"
PASSWORD = "random:index/randomPassword:RandomPassword"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""Pulumi's wire format (as the engine hands inputs to a policy pack): a secret is {sig: SECRET, value}, an
unknown this sentinel (pulumi sdk/python/lib/pulumi/runtime/rpc.py UNKNOWN)."""



class GateNotYetCreated(PlanMocks):
    """As at the first preview: the origin gate's password is to be created, so the engine gives no `result`."""

    def new_resource(self, args: Any) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        if args.typ == PASSWORD and args.name == "origin-gate":
            state.pop("result", None)
            state.pop("bcryptHash", None)
        return id_, state


@pytest.fixture(scope="module")
def first_preview() -> Plan:
    return run_plan(read_stack_file(PROJECT_DIR / "Pulumi.prod.yaml"), "prod", mocks=GateNotYetCreated())


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure(None)
        yield process


def _rules(plan: Plan) -> Any:
    [policy] = [r for r in plan.resources if r.type == ARMOR]
    return plain(policy.wire_inputs["rules"])


def test_the_gate_is_unknown_in_this_plan(first_preview: Plan) -> None:
    """The premise: the plan does see the gate unknown (else the rest proves nothing)."""
    [gate] = [r for r in first_preview.resources if r.type == PASSWORD and r.name == "origin-gate"]
    [transforms] = [r for r in first_preview.resources if r.type == "cloudflare:index/ruleset:Ruleset"
                    and r.inputs["phase"] == "http_request_late_transform"]
    values = [header["value"] for rule in plain(transforms.wire_inputs["rules"])
              for name, header in rule["actionParameters"]["headers"].items() if name.lower() == "x-origin-gate"]
    assert gate and values == [_UNKNOWN]


def test_the_rules_list_is_known_with_the_default_deny_while_the_gate_is_unknown(first_preview: Plan) -> None:
    rules = _rules(first_preview)

    assert rules != _UNKNOWN, "the whole rules list is unknown at the first preview"
    assert isinstance(rules, list)
    rules = cast(list[dict[str, Any]], rules)
    assert len(rules) >= 2
    [default] = [r for r in rules if r["priority"] == 2147483647]
    assert default["action"] == "deny(403)"
    assert default["match"]["config"]["srcIpRanges"] == ["*"]
    allow = [r for r in rules if r["priority"] != 2147483647]
    assert allow and all(r["action"] == "allow" for r in allow)
    assert all(r["match"]["expr"]["expression"] == _UNKNOWN for r in allow), "the gate's value, not yet known"


def test_the_pack_passes_the_first_preview_of_prod_over_the_analyzer(first_preview: Plan,
                                                                      pack: PolicyPackProcess) -> None:
    inputs = first_preview.analyzer_inputs()
    responses = [pack.analyze(i) for i in inputs] + [pack.analyze_stack(inputs)]

    found = [(d.policyName, d.message) for response in responses for d in response.diagnostics
             if LEVELS[d.enforcementLevel] == "mandatory" and d.policyName.startswith("PLAT-NET-")]
    assert found == []
