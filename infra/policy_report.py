"""How `plan` shows the policy pack's verdict: every violation with its rule, and every waiver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.analyzer import PolicyReport
from infra.model import Waiver


def waivers_by_rule(waivers: Sequence[Waiver]) -> dict[str, dict[str, str]]:
    by_rule: dict[str, dict[str, str]] = {}
    for waiver in waivers:
        by_rule.setdefault(waiver.rule, {})[waiver.resource] = waiver.reason
    return by_rule


def render_policy(report: PolicyReport, waivers: Sequence[Waiver]) -> str:
    mandatory = len(report.mandatory)
    lines = [f"Policies: {report.pack} {report.version}, {report.rules} rules: "
             f"{len(report.findings)} violations ({mandatory} mandatory)"]
    lines += [f"  {'✗' if f.level == 'mandatory' else '!'} {f.rule} [{f.level}] {f.resource}: {f.message}"
              for f in report.findings]
    if waivers:
        lines.append("Waivers (from the stack file):")
        lines += [f"  ~ {w.rule} waived for {w.resource}: {w.reason}" for w in waivers]
    return "\n".join(lines) + "\n"


def policy_json(report: PolicyReport, waivers: Sequence[Waiver]) -> dict[str, Any]:
    return {
        "pack": report.pack,
        "violations": [{"rule": f.rule, "level": f.level, "urn": f.urn, "message": f.message}
                       for f in report.findings],
        "waivers": [{"rule": w.rule, "resource": w.resource, "reason": w.reason} for w in waivers],
    }
