"""`python -m infra comment` and `python -m infra drift`: small commands the workflows call (issue #24)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from infra.review import comment, drift

COMMANDS = ("comment", "drift")


def add_commands(commands: Any) -> None:
    c = commands.add_parser("comment", help="the pull-request comment (or with --full the job summary) of a plan")
    c.add_argument("--stack", required=True)
    c.add_argument("--plan-json", type=Path, help="what `plan --json` printed for the pull request (may be empty)")
    c.add_argument("--base-json", type=Path, help="what `plan --json` printed for the base branch")
    c.add_argument("--exit-code", type=int, required=True, help="`plan`'s exit code: 0, 1 policy, 2 config")
    c.add_argument("--stderr", type=Path, help="what `plan` wrote on stderr (its findings and errors)")
    c.add_argument("--artifact-url", help="the link to the artifact holding the full plan")
    c.add_argument("--full", action="store_true", help="the full report (job summary, artifact), under 1 MiB")
    d = commands.add_parser("drift", help="the drift issue's body from `pulumi refresh --preview-only --json`")
    d.add_argument("--stack", required=True)
    d.add_argument("--refresh-json", type=Path, required=True)
    d.add_argument("--run-url", help="the workflow run, linked from the issue")


def run(args: argparse.Namespace) -> int:
    if args.command == "comment":
        sys.stdout.write(comment.render_files(args.stack, args.plan_json, args.base_json, args.exit_code,
                                              args.stderr, args.artifact_url, args.full))
        return 0
    output = os.environ.get("GITHUB_OUTPUT")
    code, text = drift.run(args.stack, args.refresh_json, Path(output) if output else None, args.run_url)
    (sys.stdout if code == 0 else sys.stderr).write(text)
    return code
