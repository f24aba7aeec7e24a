"""The scheduled restore test (A5) of the PocketBase image keeps its clock on the data volume: a restart of
PocketBase (a deploy, a VM reboot) does not restart it, so frequent deploys cannot starve the test, and an
overdue test runs soon after the start instead of a whole interval later (issue #20 item 11).

Each "boot" below is a real process: `drtool.py replicate` around a short-lived command, as entrypoint.sh
starts it, with a stand-in Litestream that only runs the command (`-exec`) and a stand-in restore test that
logs when it ran. Nothing carries over between boots but the data directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from components.pocketbase import drtool
from tests.conftest import PROJECT_DIR

IMAGE_DIR = PROJECT_DIR / "components" / "pocketbase"
INTERVAL_S = 4.0
START_DELAY_S = 0.2
BOOT_S = 1.5
"""How long each boot lives: longer than the start delay (with room for a slow machine), well under the interval."""

FAKE_LITESTREAM = """#!/bin/sh
# litestream replicate -config FILE -exec CMD: runs CMD, replicates nothing.
[ "$1" = replicate ] || exit 3
while [ $# -gt 0 ]; do
    if [ "$1" = -exec ]; then exec sh -c "$2"; fi
    shift
done
exit 4
"""

BOOT = """
import sys, time
sys.path.insert(0, {image!r})
import drtool

def restore_test(env, home):
    with open({log!r}, "a") as log:
        log.write(f"{{time.time()}}\\n")
    return 0

drtool.restore_test = restore_test
sys.exit(drtool.main(["replicate", "--dir", {data!r}, "--", "sleep", {boot!r}]))
"""


@pytest.fixture
def boot(tmp_path: Path) -> Callable[[], list[float]]:
    home, data = tmp_path / "home", tmp_path / "pb_data"
    home.mkdir()
    data.mkdir()
    litestream = home / "litestream"
    litestream.write_text(FAKE_LITESTREAM)
    litestream.chmod(0o755)
    log = tmp_path / "runs.log"
    env = {**os.environ, "PB_HOME": str(home), "LITESTREAM_BUCKET": "replica-bucket",
           "PB_RESTORE_TEST_INTERVAL_SECONDS": str(INTERVAL_S), "PB_RESTORE_TEST_START_DELAY_SECONDS": str(START_DELAY_S)}
    script = textwrap.dedent(BOOT.format(image=str(IMAGE_DIR), log=str(log), data=str(data), boot=str(BOOT_S)))

    def run() -> list[float]:
        """One boot, to its end; the times the restore test ran during it."""
        before = log.read_text().split() if log.exists() else []
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60, capture_output=True)
        return [float(t) for t in (log.read_text().split() if log.exists() else [])[len(before):]]

    return run


def test_a_restart_does_not_postpone_an_overdue_restore_test_nor_rerun_a_fresh_one(boot: Callable[[], list[float]]) -> None:
    first = boot()  # a new volume: no test has ever run, so one is overdue
    assert len(first) == 1, f"the first boot ran the restore test {len(first)} times; expected once, soon after start"

    time.sleep(max(0.0, first[0] + INTERVAL_S + 0.3 - time.time()))
    second = boot()  # the interval has passed since the last run: overdue again, though this process just started
    assert len(second) == 1, "a reboot after the interval postponed the overdue restore test by a whole interval"

    third = boot()  # right after: the last run is fresh, the clock kept on the volume says so
    assert third == [], "a reboot reran a restore test that was not due"


def _schedule(tmp_path: Path) -> drtool.RestoreSchedule:
    return drtool.RestoreSchedule(tmp_path / drtool.SCHEDULE_FILE, interval=86400.0, start_delay=600.0)


DAY = 86400.0


def test_the_schedule_on_a_fake_clock(tmp_path: Path) -> None:
    """Written from the rule: an interval (a day) after a verified restore, an hour after a failed one, at once
    if never run; after a start, never before the start delay (10 minutes)."""
    schedule = _schedule(tmp_path)
    t0 = 1_000_000.0

    assert schedule.due(t0, starting=True) == t0 + 600  # a new volume
    schedule.record(t0, ok=True)
    assert schedule.due(t0 + 3600, starting=True) == t0 + DAY  # a reboot an hour later: still due a day after
    assert schedule.due(t0 + 2 * DAY, starting=True) == t0 + 2 * DAY + 600  # overdue: soon after the start
    assert schedule.due(t0 + 5, starting=False) == t0 + DAY
    schedule.record(t0 + DAY, ok=False)
    assert schedule.due(t0 + DAY + 60, starting=False) == t0 + DAY + 3600  # a failure is retried within the hour
    assert schedule.due(t0 + DAY + 7200, starting=True) == t0 + DAY + 7200 + 600


def test_an_unreadable_schedule_counts_as_never_run(tmp_path: Path) -> None:
    schedule = _schedule(tmp_path)
    schedule.path.write_text("{not json")

    assert schedule.due(50.0, starting=True) == 650.0
