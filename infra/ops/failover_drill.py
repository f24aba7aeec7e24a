"""The failover drill, with real binaries on this machine (`python -m infra.ops.failover_drill`; also run by
`python3 tools/dev.py drill`): what `python -m infra failover` makes the cloud do, step for step.

PocketBase started by the image's entrypoint replicates with Litestream to moto's S3 server, the engine in
front, under steady order traffic. Then the failover: the primary is stopped as a VM stop stops it (SIGTERM
to the container's process: Litestream ships the last WAL frames, then exits), and a second PocketBase, a
new image home on an empty data directory with the same replica settings, starts: its entrypoint restores
the latest replica (`drtool.py restore-if-empty`) before it serves, as the standby VM's first start on its
new disk does. The engine keeps its address (the standby engine's POCKETBASE_URL is the standby's). Every
order the engine acknowledged is looked up.

Printed: the RTO (the primary's stop to orders acknowledged again), the restore's part of it, RPO, orders
acknowledged, there and lost, and `failover drill: N passed, M failed`. Exit 0 only when all passed.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

from infra.ops.drill import (
    DrillResult,
    DrillSettings,
    Traffic,
    drill_command,
    drill_stack,
    image_home,
    lost_orders,
    recovery_checks,
)


def run_failover_drill(workdir: Path, settings: DrillSettings, out: Any = sys.stdout) -> DrillResult:
    result = DrillResult()
    with drill_stack(workdir, settings, out, "failover drill") as (stack, _, api_key):
        with Traffic(stack.url, api_key, settings) as traffic:
            time.sleep(settings.warmup_s)
            primary = stack.processes.pop("pocketbase")
            primary.send_signal(signal.SIGTERM)  # `docker stop`, as the VM's stop runs it
            stopped_at = time.monotonic()
            primary.wait(timeout=60)
            down_at = time.monotonic()  # requests in flight at the stop were answered by the primary
            print(f"failover drill: primary stopped (exit {primary.returncode}) after {len(traffic.acks)} "
                  "orders; the standby starts on an empty disk", file=out, flush=True)
            standby_home = image_home(workdir / "pb-home-standby")
            assert not (standby_home / "pb_data").exists() or not any((standby_home / "pb_data").iterdir())
            stack.home = standby_home
            started = time.monotonic()
            stack.start_pocketbase()  # the entrypoint restores the latest replica, verifies it, serves
            result.restore_s = time.monotonic() - started
            while traffic.last_ack() <= down_at and time.monotonic() - stopped_at < settings.rto_target_s:
                time.sleep(0.02)
            result.rto_s = traffic.last_ack() - stopped_at
            time.sleep(settings.after_s)
        acks = list(traffic.acks)
        result.acknowledged = len(acks)
        lost = lost_orders(stack.url, api_key, acks)
        result.lost = len(lost)
        result.restored = result.acknowledged - result.lost
        result.rpo_s = max(0.0, stopped_at - min(a.at for a in lost)) if lost else 0.0
        log = (workdir / "pocketbase.log").read_text(errors="replace")
        result.checks += [
            ("the standby restored the replica on its first start", '"restored"' in log,
             "drtool restore-if-empty reported a verified restore" if '"restored"' in log
             else "no restore in pocketbase.log"),
            ("every acknowledged order is on the standby", not lost,
             f"{len(lost)} of {len(acks)} lost" + (f" (first {lost[0].order_id})" if lost else "")),
            ("orders are acknowledged again after the failover", any(a.at > down_at for a in acks),
             f"{sum(1 for a in acks if a.at > down_at)} by the standby"),
            *recovery_checks(result, settings),
        ]
    return result


def render(result: DrillResult) -> str:
    lines = [f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}" for name, ok, detail in result.checks]
    lines += [f"RTO: {result.rto_s:.2f} s from the primary's stop to orders acknowledged again "
              f"(the standby's start with its restore {result.restore_s:.2f} s)",
              f"RPO: {result.rpo_s:.3f} s of acknowledged writes lost",
              f"orders: {result.acknowledged} acknowledged, {result.restored} on the standby, {result.lost} lost",
              f"failover drill: {result.passed} passed, {result.failed} failed"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return drill_command(argv, prog="python -m infra.ops.failover_drill", description=__doc__,
                         name="failover drill", run=run_failover_drill, render=render)


if __name__ == "__main__":
    sys.exit(main())
