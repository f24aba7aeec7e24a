"""Operations on a deployed stack: `python -m infra restore ...` and `python -m infra failover ...` (dispatched
by `infra.cli`), and the drill that rehearses a crash and a restore here (`python3 tools/dev.py drill`)."""

from __future__ import annotations

import argparse
from pathlib import Path

COMMANDS = ("restore", "failover")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    restore = commands.add_parser("restore", help="restore PocketBase's replica into a fresh directory and verify it")
    restore.add_argument("--stack", required=True)
    restore.add_argument("--at", metavar="TIME", help="the point in time to restore (RFC 3339, UTC); default: latest")
    restore.add_argument("--output", type=Path, metavar="DIR",
                         help="a new PocketBase data directory to restore into (default: ./restore-<stack>-<time>)")
    restore.add_argument("--replica-url", metavar="s3://BUCKET/PATH?endpoint=...",
                         help="another copy of the replica than the stack's (a drill, the failover region's)")
    from infra.ops.failover import add_command

    add_command(commands)


def run(args: argparse.Namespace) -> int:
    if args.command == "failover":
        from infra.ops.failover import main as failover

        return failover(args)
    from infra.ops.restore import main as restore

    return restore(args.stack, args.at, args.output, args.replica_url)
