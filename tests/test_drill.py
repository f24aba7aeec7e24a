"""The disaster-recovery drill, short (seconds): the image's entrypoint with Litestream replicating to
moto's S3 server, the engine under order traffic, PocketBase killed with SIGKILL, the replica restored
and verified by the restore command's function, PocketBase restarted on it. The full drill, with its
figures, is `python3 tools/dev.py drill` (bench/README.md)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from infra.ops.drill import DrillSettings, recovery_checks, run_drill


def test_a_short_drill_loses_no_acknowledged_order() -> None:
    # Every directory above it reachable: run as root, the entrypoint serves PocketBase as the image's user.
    workdir = Path(tempfile.mkdtemp(prefix="dr-drill-test-"))
    workdir.chmod(0o755)
    settings = DrillSettings(warmup_s=1.5, after_s=0.5, rate_per_s=20, clients=2, rto_target_s=120,
                             restore_in_process=True)
    try:
        result = run_drill(workdir, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    assert result.failed == 0, result.render()
    assert result.acknowledged > 0 and result.lost == 0 and result.rpo_s == 0
    # The drill judges what it measured with the shared RPO, RTO and replication checks (tests/test_drill_checks.py
    # feeds them figures over their targets): none of them may be left out of the drill.
    judged = {name: ok for name, ok, _ in result.checks}
    assert {name: ok for name, ok, _ in recovery_checks(result, settings)}.items() <= judged.items(), result.render()
