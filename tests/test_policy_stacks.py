"""The pack over every stack's plan: the committed stacks pass with no mandatory violation, and a
stack file that config validation accepts but that breaks a rule makes `plan` exit 1 naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.analyzer import run_policies
from infra.config import load_model
from infra.plan import Plan
from infra.policy_report import policy_config
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, STACKS, CliResult, stack_document, write_stack

Mutation = Callable[[dict[str, Any]], None]


def _service(name: str, **values: Any) -> Mutation:
    return lambda doc: doc["config"].setdefault("platform:services", {}).setdefault(name, {}).update(values)


def _set(key: str, value: Any) -> Mutation:
    return lambda doc: doc["config"].__setitem__(key, value)


def _in(key: str, field: str, value: Any) -> Mutation:
    return lambda doc: doc["config"][key].__setitem__(field, value)


def _tenant(index: int, field: str, value: Any) -> Mutation:
    return lambda doc: doc["config"]["platform:tenants"][index].__setitem__(field, value)


BROKEN: list[tuple[str, str, Mutation, str]] = [
    # (rule it breaks, stack, mutation, resource the violation names)
    ("PLAT-SCALE-001", "prod", _service("engine", minInstances=0), "engine"),
    ("PLAT-SCALE-002", "prod", _service("engine", maxInstances=8), "engine"),
    ("PLAT-SIZE-001", "staging", _service("pocketbase", peakMemoryMib=8192), "database"),
    ("PLAT-SIZE-002", "staging", _service("redis", peakMemoryMib=8192), "cache"),
    # PLAT-IAM-001 (Cloudflare tokens) has no stack-file case any more: no stack declares a token (the bootstrap
    # creates them, #22.3); its probes (tests/policy_probes/token-*.yaml) feed the pack tokens directly.
    ("PLAT-WAF-002", "prod", lambda doc: doc["config"].pop("platform:waivers"), "edge-waf"),
    ("PLAT-WAF-003", "prod", _tenant(1, "rateLimitPerMinute", 10000), "edge-rate-limits"),
    ("PLAT-IMG-001", "prod", _set("platform:engineImage", "ghcr.io/acme-commerce/commission-engine:latest"), "engine"),
    ("PLAT-LOG-001", "prod", _in("platform:gcp", "logRetentionDays", 30), "log-retention"),
    ("PLAT-DATA-004", "staging", _service("pocketbase", public=True), "database"),
]


@pytest.mark.parametrize("stack", STACKS)
def test_every_committed_stack_passes_the_pack_with_no_mandatory_violation(
    stack: str, committed_plans: dict[str, Plan]
) -> None:
    raw = read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack)
    model = load_model(raw)

    # As the engine runs the pack: the stack's name and config in its environment.
    report = run_policies(committed_plans[stack].analyzer_inputs(), policy_config(model.waivers), stack=stack,
                          stack_config=raw.values)

    assert report.mandatory == []
    assert report.rules >= 20


@pytest.mark.parametrize(("rule", "stack", "mutate", "resource"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_stack_file_breaking_one_rule_makes_plan_exit_1_naming_that_rule(
    tmp_path: Path, run_cli: Callable[..., CliResult], rule: str, stack: str, mutate: Mutation, resource: str
) -> None:
    document = stack_document(stack)
    mutate(document)

    result = run_cli("plan", "--stack", stack, "--config-file", str(write_stack(tmp_path, document)))

    assert result.code == 1, result.err
    violations = [line for line in result.out.splitlines() if line.startswith("  ✗ ")]
    assert {v.split()[1] for v in violations} == {rule}, violations
    assert any(f"{rule} [mandatory] {resource}: " in v for v in violations), violations


def test_plan_lists_every_waiver_with_its_reason(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("plan", "--stack", "prod")

    assert result.code == 0
    assert ("~ PLAT-WAF-002 waived for edge-waf (cafedoce) until 2027-01-31, OPS-412: Café Doce (wafMode log) moves "
            "its checkout") in result.out


def test_the_json_plan_carries_the_policy_verdict(run_cli: Callable[..., CliResult]) -> None:
    import json

    document = json.loads(run_cli("plan", "--stack", "staging", "--json").out)

    assert document["policy"]["pack"] == "platform-policies"
    # Staging runs every image by digest or as built here (its Redis rebuilt into its registry, #11.8) and
    # ships every Railway service's logs to a 90-day sink (PLAT-LOG-002): nothing to report, not even advice.
    assert document["policy"]["violations"] == []
