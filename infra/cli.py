"""`python -m infra plan` (the offline plan of a stack) and `python -m infra compose` (docker-compose.yml).

Exit codes: 0 clean, 1 a mandatory policy violation (or the pack failed), 2 invalid config or usage, a planned
resource that breaks its service's contract (stacks/contracts), or (with --diff-against) a change larger than
the providers allow in one deploy (stacks/quotas.py)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, cast

from infra import judge, ops
from infra.analyzer import PACK_DIR, PolicyPackError, run_policies
from infra.budget import over_budget
from infra.compose import render_compose
from infra.config import ConfigError, RawConfig, load_model, waiver_rules_today
from infra.model import StackModel
from infra.ops import adopt_zone, certificate, rollout
from infra.plan import contract_violations, diff_plans, render_tree, run_program
from infra.policy_report import expiry_warnings, policy_config, policy_json, render_policy
from infra.review import cli as review
from infra.stackfile import read_stack_file
from stacks.contracts import ContractError, Violation

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXIT_OK, EXIT_POLICY, EXIT_INVALID = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="run the program under the mock engine and list its resources")
    plan.add_argument("--stack", required=True, help="stack name: integration, staging, prod, ...")
    plan.add_argument("--config-file", type=Path,
                      help="a stack file to use instead of Pulumi.<stack>.yaml (as in the Pulumi CLI)")
    plan.add_argument("--json", action="store_true", help="print the plan as a stable JSON document")
    plan.add_argument("--diff-against", type=Path, metavar="PLAN.json",
                      help="print what changes against an earlier `--json` plan")
    plan.add_argument("--policy-pack", type=Path, default=PACK_DIR, metavar="DIR",
                      help="the policy pack to run (a pull request's CI runs the base branch's: base/policies), in "
                           "the virtual environment its PulumiPolicy.yaml names, as the CLI does")
    plan.add_argument("--analyzer-inputs", type=Path, metavar="FILE",
                      help="also write the resources as a policy pack receives them, for `judge` in another checkout")
    policy = commands.add_parser("policy-config", help="print the stack's waivers as a --policy-pack-config file")
    policy.add_argument("--stack", required=True)
    policy.add_argument("--config-file", type=Path, help="a stack file to use instead of Pulumi.<stack>.yaml")
    boot = commands.add_parser("bootstrap-plan", help="plan an environment's bootstrap (infra/bootstrap) offline")
    boot.add_argument("stack", metavar="ENV", help="integration, staging or prod")
    compose = commands.add_parser("compose", help="print docker-compose.yml for the docker backend (D4)")
    compose.add_argument("--stack", default="integration", help="a stack whose services all run on docker")
    review.add_commands(commands)  # comment, drift: what a pull request or a refresh shows its reviewers (#24)
    ops.add_commands(commands)  # restore: operations on a deployed stack (infra/ops)
    rollout.add_command(commands)  # rollout: the engine's canary (prod) or watched deploy (staging), rolled back
    adopt_zone.add_command(commands)  # adopt-zone: import the zone's existing entry points before a first deploy
    certificate.add_command(commands)  # wait-certificate: a deploy smokes only once its origin's certificate is ACTIVE
    judge.add_command(commands)  # judge: the base branch's pack over a pull request's plan, running none of its code
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.stack):
        print(f"error: --stack {args.stack!r} is not a stack name; expected letters, digits, '.', '_', '-'",
              file=sys.stderr)
        return EXIT_INVALID
    if args.command in review.COMMANDS:
        return review.run(args)
    if args.command == "bootstrap-plan":
        from infra.bootstrap.plan import main as bootstrap_plan

        return bootstrap_plan(args.stack)
    if args.command in ops.COMMANDS:
        return ops.run(args)
    if args.command == "rollout":
        return rollout.main(args)
    if args.command == "adopt-zone":
        return adopt_zone.main(args)
    if args.command == "wait-certificate":
        return certificate.main(args)
    if args.command == "judge":
        return judge.main(args)
    if args.command == "compose":
        return _compose(args.stack)
    if args.command == "policy-config":
        return _policy_config(args.stack, args.config_file or PROJECT_DIR / f"Pulumi.{args.stack}.yaml")
    config_file: Path = args.config_file or PROJECT_DIR / f"Pulumi.{args.stack}.yaml"
    before: dict[str, Any] | None = None
    if args.diff_against is not None:
        try:
            document: Any = json.loads(args.diff_against.read_text(encoding="utf-8"))
            if not isinstance(document, dict) or "resources" not in document:
                raise ValueError("no `resources` list")
            before = cast(dict[str, Any], document)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: --diff-against {args.diff_against}: not a plan written by `plan --json` ({exc})",
                  file=sys.stderr)
            return EXIT_INVALID
    loaded = _load(config_file, args.stack)
    if loaded is None:
        return EXIT_INVALID
    raw, model = loaded
    try:
        plan = run_program(model, raw, args.stack)
    except ContractError as err:  # the program stopped on a resource it was about to declare
        return _broken_contract(config_file, list(err.violations))
    broken = contract_violations(plan, model)
    if broken:
        return _broken_contract(config_file, broken)
    if args.analyzer_inputs is not None:
        args.analyzer_inputs.write_text(judge.inputs_json(args.stack, plan.analyzer_inputs()), encoding="utf-8")
    try:
        # As the engine starts a pack: the stack's name and its config (PULUMI_STACK, PULUMI_CONFIG).
        report = run_policies(plan.analyzer_inputs(), policy_config(model.waivers), args.policy_pack,
                              stack=args.stack, stack_config=raw.values)
    except PolicyPackError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_POLICY

    today = waiver_rules_today()  # the day config validation judged the waivers by
    if args.json:
        document = plan.to_json() | {"policy": policy_json(report, model.waivers, today)}
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        for line in expiry_warnings(model.waivers, today):  # stdout stays one JSON document
            print(line, file=sys.stderr)
    else:
        sys.stdout.write(render_tree(plan))
        sys.stdout.write(render_policy(report, model.waivers, today))
    if before is not None:
        out = sys.stderr if args.json else sys.stdout
        out.write(diff_plans(before, plan.to_json()).render())
        too_big = over_budget(before, plan.to_json())
        if too_big:
            print("error: the change is too large for one deploy:\n" + "\n".join(
                f"{config_file.name}: {problem}" for problem in too_big), file=sys.stderr)
            return EXIT_INVALID
    return EXIT_POLICY if report.mandatory else EXIT_OK


def _broken_contract(config_file: Path, broken: list[Violation]) -> int:
    """A deploy of this plan would fail at the provider (or on first start): say so, one line per breach, before
    the pack runs, whether the program stopped on it (`ContractError`) or `plan`'s contract check found it."""
    print(ContractError(broken).report(config_file.name), file=sys.stderr)
    return EXIT_INVALID


def _load(config_file: Path, stack: str) -> tuple[RawConfig, StackModel] | None:
    """The stack file and its model; on a mistake, every problem on stderr and None."""
    try:
        raw = read_stack_file(config_file, stack)
        return raw, load_model(raw)
    except ConfigError as err:
        print(f"error: invalid stack config, nothing was declared:\n{err}", file=sys.stderr)
        return None


def _compose(stack: str) -> int:
    loaded = _load(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack)
    if loaded is None:
        return EXIT_INVALID
    try:
        plan = run_program(loaded[1], loaded[0], stack)
    except ContractError as err:
        return _broken_contract(PROJECT_DIR / f"Pulumi.{stack}.yaml", list(err.violations))
    if not any(r.type == "docker:index/container:Container" for r in plan.resources):
        print(f"error: stack {stack!r} runs no service on the docker backend", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(render_compose(plan))
    return EXIT_OK


def _policy_config(stack: str, config_file: Path) -> int:
    """`pulumi preview --policy-pack policies --policy-pack-config <this>` applies the same waivers
    (the pack checks them again itself: PLAT-WAIVER-001)."""
    loaded = _load(config_file, stack)
    if loaded is None:
        return EXIT_INVALID
    sys.stdout.write(json.dumps(policy_config(loaded[1].waivers), indent=2, sort_keys=True) + "\n")
    return EXIT_OK
