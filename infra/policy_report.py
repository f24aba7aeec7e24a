"""How `plan` shows the policy pack's verdict (every violation with its rule, and every waiver), and
the pack's config a stack's waivers become (`plan`, `policy-config`, `pulumi preview
--policy-pack-config`): each rule gets its own waivers, PLAT-WAIVER-001 all of them to check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.analyzer import PolicyReport
from infra.model import Waiver
from policies.pack import WAIVER_RULE


def _entry(waiver: Waiver) -> dict[str, str]:
    return {"resource": waiver.resource, "subject": waiver.subject, "expires": waiver.expires,
            "ticket": waiver.ticket, "reason": waiver.reason}


def policy_config(waivers: Sequence[Waiver]) -> dict[str, dict[str, Any]]:
    config: dict[str, dict[str, Any]] = {WAIVER_RULE: {"waivers": [{"rule": w.rule, **_entry(w)} for w in waivers]}}
    for waiver in waivers:
        config.setdefault(waiver.rule, {"waivers": []})["waivers"].append(_entry(waiver))
    return config


def _waiver_line(w: Waiver) -> str:
    return f"  ~ {w.rule} waived for {w.resource} ({w.subject}) until {w.expires}, {w.ticket}: {w.reason}"


def render_policy(report: PolicyReport, waivers: Sequence[Waiver]) -> str:
    mandatory = len(report.mandatory)
    lines = [f"Policies: {report.pack} {report.version}, {report.rules} rules: "
             f"{len(report.findings)} violations ({mandatory} mandatory)"]
    lines += [f"  {'✗' if f.level == 'mandatory' else '!'} {f.rule} [{f.level}] {f.resource or '(stack)'}: "
              f"{f.message}" for f in report.findings]
    if waivers:
        lines.append("Waivers (from the stack file):")
        lines += [_waiver_line(w) for w in waivers]
    return "\n".join(lines) + "\n"


def policy_json(report: PolicyReport, waivers: Sequence[Waiver]) -> dict[str, Any]:
    return {
        "pack": report.pack,
        "violations": [{"rule": f.rule, "level": f.level, "urn": f.urn, "message": f.message}
                       for f in report.findings],
        "waivers": [{"rule": w.rule, **_entry(w)} for w in waivers],
    }
