"""How `plan` shows the policy pack's verdict (every violation with its rule, and every waiver), and
the pack's config a stack's waivers become (`plan`, `policy-config`, `pulumi preview
--policy-pack-config`): each rule gets its own waivers, PLAT-WAIVER-001 all of them to check."""

from __future__ import annotations

import datetime as dt
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


EXPIRY_WARNING_DAYS = 14
"""A waiver this close to its expiry is reported by every plan (#25.9): on the expiry day PLAT-WAIVER-001
refuses it and the deploy turns red, so the fix (or a new reviewed waiver) is due now, not then."""


def expiring_waivers(waivers: Sequence[Waiver], today: dt.date) -> list[tuple[Waiver, int]]:
    """The waivers that expire within EXPIRY_WARNING_DAYS of `today`, with the days each has left."""
    soon: list[tuple[Waiver, int]] = []
    for waiver in waivers:
        try:
            left = (dt.date.fromisoformat(waiver.expires) - today).days
        except ValueError:  # config validation refuses it before a plan; never a traceback here
            continue
        if 0 <= left <= EXPIRY_WARNING_DAYS:
            soon.append((waiver, left))
    return soon


def expiry_warnings(waivers: Sequence[Waiver], today: dt.date) -> list[str]:
    """One line per waiver about to expire: its rule, resource, subject, expiry and ticket."""
    return [f"warning: waiver {w.rule} for {w.resource} ({w.subject}) expires {w.expires}, in {left} days "
            f"({w.ticket}); fix it or renew the waiver before then, or the deploy fails PLAT-WAIVER-001"
            for w, left in expiring_waivers(waivers, today)]


def _waiver_line(w: Waiver) -> str:
    return f"  ~ {w.rule} waived for {w.resource} ({w.subject}) until {w.expires}, {w.ticket}: {w.reason}"


def render_policy(report: PolicyReport, waivers: Sequence[Waiver], today: dt.date | None = None) -> str:
    mandatory = len(report.mandatory)
    lines = [f"Policies: {report.pack} {report.version}, {report.rules} rules: "
             f"{len(report.findings)} violations ({mandatory} mandatory)"]
    lines += [f"  {'✗' if f.level == 'mandatory' else '!'} {f.rule} [{f.level}] {f.resource or '(stack)'}: "
              f"{f.message}" for f in report.findings]
    if waivers:
        lines.append("Waivers (from the stack file):")
        lines += [_waiver_line(w) for w in waivers]
    if today is not None:
        lines += expiry_warnings(waivers, today)
    return "\n".join(lines) + "\n"


def policy_json(report: PolicyReport, waivers: Sequence[Waiver], today: dt.date | None = None) -> dict[str, Any]:
    soon = expiring_waivers(waivers, today) if today is not None else []
    return {
        "expiringWaivers": [{"rule": w.rule, **_entry(w), "daysLeft": left} for w, left in soon],
        "pack": report.pack,
        "violations": [{"rule": f.rule, "level": f.level, "urn": f.urn, "message": f.message}
                       for f in report.findings],
        "waivers": [{"rule": w.rule, **_entry(w)} for w in waivers],
    }
