"""`python -m infra judge`: a policy pack's verdict on a plan that another checkout wrote, running none of its code.

A pull request's CI plans the pull request's program in one job and writes, with `plan --analyzer-inputs FILE`,
every resource as the engine hands it to a policy pack (URN, type, name, parent, inputs with secrets still marked:
plan-time stand-ins, never real secrets, since `plan` cannot decrypt `secure:` config). A second job checks out only
the base branch, sets up the base branch's own virtual environment and runs the base branch's pack over that file
(`.github/workflows/pull-request.yml`, job `policy`): the pull request can change neither the rules it is judged by
nor the code that runs them. The stack file (waivers, stack config) is read as data by the base branch's loader.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from infra.analyzer import PACK_DIR, AnalyzerInput, PolicyPackError, run_policies
from infra.config import ConfigError, load_model
from infra.policy_report import policy_config, render_policy
from infra.stackfile import read_stack_file

EXIT_OK, EXIT_POLICY, EXIT_INVALID = 0, 1, 2
FORMAT = "platform-analyzer-inputs/1"


def inputs_json(stack: str, resources: Sequence[AnalyzerInput]) -> str:
    document = {"format": FORMAT, "stack": stack,
                "resources": [{"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent,
                               "properties": r.properties} for r in resources]}
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def read_inputs(path: Path, stack: str) -> list[AnalyzerInput]:
    """The resources of an `--analyzer-inputs` file; ValueError naming the file and what is wrong."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable as JSON ({exc})") from exc
    if not isinstance(document, dict) or cast(dict[str, Any], document).get("format") != FORMAT:
        raise ValueError(f"{path}: not written by `plan --analyzer-inputs` (expected format {FORMAT!r})")
    doc = cast(dict[str, Any], document)
    if doc.get("stack") != stack:
        raise ValueError(f"{path}: planned for stack {doc.get('stack')!r}, judged as {stack!r}")
    resources: list[AnalyzerInput] = []
    for index, item in enumerate(cast(list[Any], doc.get("resources") or [])):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: resources[{index}] is not an object")
        entry = cast(dict[str, Any], item)
        fields = ("urn", "type", "name")
        if not all(isinstance(entry.get(f), str) and entry[f] for f in fields) or \
                not isinstance(entry.get("properties"), dict):
            raise ValueError(f"{path}: resources[{index}] needs urn, type, name (strings) and properties (an object)")
        parent = entry.get("parent")
        resources.append(AnalyzerInput(entry["urn"], entry["type"], entry["name"],
                                       cast(dict[str, Any], entry["properties"]),
                                       parent if isinstance(parent, str) else None))
    if not resources:
        raise ValueError(f"{path}: no resources: nothing to judge")
    return resources


def add_command(commands: Any) -> None:
    judge = commands.add_parser("judge", help="run a policy pack over resources written by `plan --analyzer-inputs`")
    judge.add_argument("--stack", required=True)
    judge.add_argument("--analyzer-inputs", type=Path, required=True, metavar="FILE")
    judge.add_argument("--config-file", type=Path, required=True,
                       help="the stack file the plan was made from (its waivers and config), read as data")
    judge.add_argument("--policy-pack", type=Path, default=PACK_DIR, metavar="DIR")


def main(args: argparse.Namespace) -> int:
    try:
        resources = read_inputs(args.analyzer_inputs, args.stack)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    try:
        raw = read_stack_file(args.config_file, args.stack)
    except ConfigError as err:
        print(f"error: invalid stack config:\n{err}", file=sys.stderr)
        return EXIT_INVALID
    try:
        waivers = load_model(raw).waivers
    except ConfigError as err:
        # A pull request may add a key this (base) loader does not know yet; its own `plan` job validated the file
        # with its own loader. Judge it without the file's waivers: stricter, never weaker.
        print(f"warning: the base branch cannot read {args.config_file} ({str(err).splitlines()[0]}); "
              "judging without its waivers", file=sys.stderr)
        waivers = ()
    try:
        report = run_policies(resources, policy_config(waivers), args.policy_pack,
                              stack=args.stack, stack_config=raw.values)
    except PolicyPackError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_POLICY
    print(f"{len(resources)} resources of stack {args.stack} judged by the pack in {args.policy_pack}")
    sys.stdout.write(render_policy(report, waivers))
    return EXIT_POLICY if report.mandatory else EXIT_OK
