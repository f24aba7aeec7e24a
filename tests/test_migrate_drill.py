"""The move to PostgreSQL under load, short (seconds): real PocketBase, real PostgreSQL, the engine and clients
writing orders and payments while `migrate-db` copies, pauses, syncs, proves, and the engine switches (or, before
the PostgreSQL store is merged, rolls back). The full drill, with its figures, is `python3 tools/dev.py drill
--migrate-db` (bench/README.md)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from infra.ops.migrate_drill import MigrateDrillSettings, run_migrate_drill


def test_a_short_migration_under_load_loses_no_acknowledged_order_and_pauses_with_503_retry_after() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="dr-migrate-test-"))
    settings = MigrateDrillSettings(warmup_s=1.5, between_s=0.5, after_s=1.0, rate_per_s=20, clients=3)
    try:
        result = run_migrate_drill(workdir, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    assert result.failed == 0, result.render()
    assert result.acknowledged > 0 and result.lost == 0, result.render()
    # The pause was answered, not failed: every write refused while PocketBase held them got 503 writes_paused
    # with Retry-After (the drill counts anything else: a 500, another 503, no answer within 10 s).
    assert result.paused_answers > 0, result.render()
    assert not {what: n for what, n in result.other_refusals.items() if not what.startswith("engine restarting")}
    assert result.pause_s > 0
