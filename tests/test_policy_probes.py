"""Every gRPC probe of tests/policy_probes (one class of evasion a file) through one pack process,
exactly as the engine speaks to it: the probe's config, `Analyze` for each resource, then
`AnalyzeStack`. Each must give a mandatory violation of its rule, and none may crash the pack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.analyzer import LEVELS, AnalyzerInput, PolicyPackProcess

PROBES_DIR = Path(__file__).resolve().parent / "policy_probes"
PROBES = {path.stem: yaml.safe_load(path.read_text()) for path in sorted(PROBES_DIR.glob("*.yaml"))}


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        yield process


def _inputs(probe: dict[str, Any]) -> list[AnalyzerInput]:
    return [AnalyzerInput(f"urn:pulumi:{probe['stack']}::platform::{r['type']}::{r['name']}", r["type"], r["name"],
                          r["props"]) for r in probe["resources"]]


def findings(pack: PolicyPackProcess, probe: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(rule, level, message) of everything the pack reports on the probe."""
    pack.configure(probe.get("config"))
    resources = _inputs(probe)
    responses = [pack.analyze(r) for r in resources] + [pack.analyze_stack(resources)]
    return [(d.policyName, LEVELS[d.enforcementLevel], d.message.split("\n", 1)[-1])
            for response in responses for d in response.diagnostics]


def test_there_are_at_least_forty_probes_each_of_its_own_class_and_each_passed_the_old_pack() -> None:
    assert len(PROBES) >= 40
    assert len({p["class"] for p in PROBES.values()}) == len(PROBES)
    assert all(p["before"] in ({"mandatory": 0},) or "crash" in p["before"] for p in PROBES.values())


@pytest.mark.parametrize("name", sorted(PROBES))
def test_a_probe_gets_a_mandatory_violation_of_its_rule(pack: PolicyPackProcess, name: str) -> None:
    probe = PROBES[name]

    found = findings(pack, probe)

    mandatory = [(rule, message) for rule, level, message in found if level == "mandatory"]
    assert any(rule == probe["rule"] for rule, _ in mandatory), (probe["rule"], found)
    assert not any("can't run policy" in message for _, _, message in found), found
