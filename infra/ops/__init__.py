"""Operations on a deployed stack: `python -m infra restore ...`, `python -m infra failover ...`, `python -m infra
tenant-keys ...` and `python -m infra migrate-db ...` (dispatched by `infra.cli`), and the drills that rehearse a
crash and a restore, and the move to PostgreSQL, here (`python3 tools/dev.py drill`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.config import RawConfig
    from infra.model import StackModel
    from infra.plan import Plan

COMMANDS = ("restore", "failover", "tenant-keys", "migrate-db")


def load_stack(stack: str, config_file: Path | None = None) -> tuple[RawConfig, StackModel] | None:
    """A deployed stack's config and model for an operation on it (restore, failover, rollout); None, with
    the invalid config printed, when the stack file is not valid."""
    from infra.config import ConfigError, load_model
    from infra.stackfile import read_stack_file

    path = config_file or Path(__file__).resolve().parents[2] / f"Pulumi.{stack}.yaml"
    try:
        raw = read_stack_file(path, stack)
        return raw, load_model(raw)
    except ConfigError as err:
        print(f"error: invalid stack config:\n{err}", file=sys.stderr)
        return None


def plan_stack(model: StackModel, raw: RawConfig, stack: str, config_name: str) -> Plan | None:
    """The program's plan for an operation that needs it (wait-certificate, failback); None, with the rule lines
    printed as `plan` prints them, when the program stops on a resource that breaks its service's contract."""
    from infra.plan import run_program
    from stacks.contracts import ContractError

    try:
        return run_program(model, raw, stack)
    except ContractError as err:
        print(err.report(config_name), file=sys.stderr)
        return None


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    restore = commands.add_parser("restore", help="restore PocketBase's replica into a fresh directory and verify it")
    restore.add_argument("--stack", required=True)
    restore.add_argument("--at", "--to", dest="at", metavar="TIME",
                         help="the point in time to restore (RFC 3339, UTC); default: latest")
    restore.add_argument("--output", type=Path, metavar="DIR",
                         help="a new PocketBase data directory to restore into (default: ./restore-<stack>-<time>)")
    restore.add_argument("--replica-url", metavar="s3://BUCKET/PATH?endpoint=...",
                         help="another copy of the replica than the stack's (a drill, the failover region's)")
    restore.add_argument("--apply", action="store_true",
                         help="then put the verified copy on the stack's PocketBase VM over IAP (gcloud), restart "
                              "PocketBase and check it: docs/runbooks/restore.md")
    from infra.ops.failover import add_command
    from infra.ops.migrate_db import add_command as add_migrate_db
    from infra.ops.tenant_keys import add_command as add_tenant_keys

    add_command(commands)
    add_tenant_keys(commands)
    add_migrate_db(commands)


def run(args: argparse.Namespace) -> int:
    if args.command == "failover":
        from infra.ops.failover import main as failover

        return failover(args)
    if args.command == "migrate-db":
        from infra.ops.migrate_db import main as migrate_db

        return migrate_db(args)
    if args.command == "tenant-keys":
        from infra.ops.tenant_keys import main as tenant_keys

        return tenant_keys(args.stack, args.tenant, args.key, args.pulumi_stack)
    from infra.ops.restore import main as restore

    return restore(args.stack, args.at, args.output, args.replica_url, apply=args.apply)
