"""The DR alerts (A5, C7) against what the restore test does: they exist where a restore test runs, their
windows span the gap between two pushes, and a new stack gets until its first push is due before the
absence of pushes pages (issue #20 item 11; the promtool cases are in components/observability/sli.dr.test.yml)."""

from __future__ import annotations

import re

import pytest

from components.observability.__main__ import stack_plan
from components.observability.spec import minutes
from components.pocketbase import drtool
from infra.config import load_model
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, STACKS

DR_ALERTS = {"RestoreTestNotReporting", "BackupRestoreTestStale", "ReplicaLagAboveRpo"}
RUN_BOUND_S = 3600 + 60
"""The longest restore test: drtool's `litestream restore` (timeout=3600) and the scratch PocketBase's health
check (verify, timeout_s=60)."""
WINDOW = re.compile(r"\[(\d+)([hd])\]")


def _interval_s(stack: str) -> int:
    model = load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack))
    return model.profile.disaster_recovery.restore_test_interval_hours * 3600


@pytest.mark.parametrize("stack", STACKS)
def test_the_dr_alerts_exist_exactly_where_a_restore_test_runs(stack: str) -> None:
    """Integration replicates nowhere (tests/test_restore.py): its restore test never runs, so its DR alerts would
    see no data forever; staging and prod replicate and test."""
    names = {a.name for a in stack_plan(stack).spec.alerts}

    assert (names & DR_ALERTS) == (set() if stack == "integration" else DR_ALERTS)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_window_looking_for_the_last_push_spans_two_pushes(stack: str) -> None:
    """Two pushes are at most an interval, the start delay after a reboot and one run apart: every window shorter
    than the 30 days of the success's look-back must exceed that, or the series vanishes between pushes."""
    gap = _interval_s(stack) + drtool.START_DELAY_SECONDS + RUN_BOUND_S
    windows = {a.name: [int(n) * {"h": 3600, "d": 86400}[u] for n, u in WINDOW.findall(a.expr)]
               for a in stack_plan(stack).spec.alerts if a.name in DR_ALERTS}

    assert all(windows.values()), windows
    assert {name: [w for w in found if w < gap] for name, found in windows.items()} == {n: [] for n in windows}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_a_new_stack_is_quiet_until_its_first_push_is_due(stack: str) -> None:
    """The first run starts the start delay after PocketBase does and pushes when it ends: the absence alert's
    `for` must outlast that, and stay short of a day (a push path that never works pages the same day)."""
    [absence] = [a for a in stack_plan(stack).spec.alerts if a.name == "RestoreTestNotReporting"]

    assert drtool.START_DELAY_SECONDS + RUN_BOUND_S < minutes(absence.for_) * 60 < 86400
