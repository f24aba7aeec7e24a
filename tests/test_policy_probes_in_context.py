"""gRPC probes in the context of a real plan (issue #22 items 13-15; the second outside red-team pass).

Each file of tests/policy_probes_in_context changes the committed plan of its stack, as a pull request would:
`resources` are added, `modify` sets properties (dotted paths) of planned resources by logical name. The pack
then judges every resource through `Analyze` and the stack through `AnalyzeStack`, started as the engine starts
it (PULUMI_STACK and PULUMI_CONFIG of the committed stack file, its waivers as policy config). A probe with
`rule` must add a mandatory violation of that rule; a control (`expect: pass`) must add none. Values:
`$unknown` is the engine's unknown, `{$secret: v}` a secret. `source` names the provider schema or document the
probe models."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from infra.analyzer import LEVELS, AnalyzerInput, PolicyPackProcess, engine_env
from infra.config import load_model
from infra.plan import Plan
from infra.policy_report import policy_config
from infra.stackfile import read_stack_file

from .conftest import PROJECT_DIR, STACKS

PROBES_DIR = Path(__file__).resolve().parent / "policy_probes_in_context"
PROBES = {path.stem: yaml.safe_load(path.read_text()) for path in sorted(PROBES_DIR.glob("*.yaml"))}
_SIG, _SECRET = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _wire(value: Any) -> Any:
    if value == "$unknown":
        return _UNKNOWN
    if isinstance(value, dict):
        mapping = cast(dict[str, Any], value)
        if set(mapping) == {"$secret"}:
            return {_SIG: _SECRET, "value": _wire(mapping["$secret"])}
        return {str(k): _wire(v) for k, v in mapping.items()}
    if isinstance(value, list):
        return [_wire(v) for v in cast(list[Any], value)]
    return value


def _set(props: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    node: Any = props
    for step in path:
        node = _inside(node)
        node = cast(list[Any], node)[int(step)] if isinstance(node, list) else cast(dict[str, Any], node).setdefault(
            step, {})
    node = _inside(node)
    if isinstance(node, list):
        cast(list[Any], node)[int(last)] = value
    else:
        cast(dict[str, Any], node)[last] = value


def _inside(node: Any) -> Any:
    """What a secret envelope holds; anything else as it is."""
    if not isinstance(node, dict):
        return node
    mapping = cast(dict[str, Any], node)
    inner: Any = mapping["value"] if _SIG in mapping else mapping
    return inner


def changed(plan: Plan, probe: dict[str, Any]) -> list[AnalyzerInput]:
    resources = list(plan.analyzer_inputs())
    changes: list[dict[str, Any]] = probe.get("modify") or []
    for change in changes:
        index = next(i for i, r in enumerate(resources) if r.name == change["name"])
        r = resources[index]
        props = copy.deepcopy(dict(r.properties))
        settings: dict[str, Any] = change["set"]
        for path, value in settings.items():
            _set(props, path, _wire(value))
        resources[index] = AnalyzerInput(r.urn, r.type, r.name, props, r.parent)
    stack = str(probe["stack"])
    added: list[dict[str, Any]] = probe.get("resources") or []
    resources += [AnalyzerInput(f"urn:pulumi:{stack}::platform::{n['type']}::{n['name']}", str(n["type"]),
                                str(n["name"]), _wire(n["props"])) for n in added]
    return resources


def mandatory(pack: PolicyPackProcess, resources: list[AnalyzerInput]) -> set[tuple[str, str, str]]:
    responses = [(r.urn, pack.analyze(r)) for r in resources] + [("", pack.analyze_stack(resources))]
    return {(d.policyName, d.urn or urn, d.message.split("\n", 1)[-1]) for urn, response in responses
            for d in response.diagnostics if LEVELS[d.enforcementLevel] == "mandatory"}


@pytest.fixture(scope="module")
def packs() -> Iterator[dict[str, PolicyPackProcess]]:
    """One pack per stack, started as the engine starts it for that stack, and configured with its waivers."""
    started: dict[str, PolicyPackProcess] = {}
    try:
        for stack in STACKS:
            raw = read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack)
            pack = PolicyPackProcess(env=engine_env(stack, raw.values)).__enter__()
            started[stack] = pack
            pack.configure(policy_config(load_model(raw).waivers))
        yield started
    finally:
        for pack in started.values():
            pack.__exit__(None, None, None)


def test_the_committed_plans_pass_in_context(packs: dict[str, PolicyPackProcess],
                                             committed_plans: dict[str, Plan]) -> None:
    for stack in STACKS:
        assert mandatory(packs[stack], list(committed_plans[stack].analyzer_inputs())) == set(), stack


@pytest.mark.parametrize("name", sorted(PROBES))
def test_a_probe_in_context_is_caught_and_a_control_passes(packs: dict[str, PolicyPackProcess],
                                                           committed_plans: dict[str, Plan], name: str) -> None:
    probe = PROBES[name]
    plan = committed_plans[probe["stack"]]
    baseline = mandatory(packs[probe["stack"]], list(plan.analyzer_inputs()))

    found = mandatory(packs[probe["stack"]], changed(plan, probe)) - baseline

    if probe.get("expect") == "pass":
        assert found == set(), found
    else:
        assert any(rule == probe["rule"] for rule, _, _ in found), (probe["rule"], found)
    assert not any("could not read" in message for _, _, message in found), found
