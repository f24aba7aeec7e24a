"""`python -m infra failover --stack prod [--to failover|primary] [--yes]`: serve the stack from its failover
region (or back), with the real Pulumi CLI, and time the API through the edge (#13 item 7, C8, C9).

The program owns the state, so a later `pulumi up` never undoes a failover: this sets
`platform:gcp.serving` in the stack's config (`pulumi config set --path`) and runs `pulumi up`, and the
program declares what it says (infra/program.py, components/standby.py):

- `--to failover` (one `pulumi up --continue-on-error`: resources in a lost primary region fail, the rest
  goes on; the images come from a multi-region registry, which config requires): the load balancer's
  backend moves to the standby engine's NEG;
  after a drain the standby PocketBase starts on a new disk, restoring the latest replica; the standby
  engine keeps a warm instance; the failover region's Redis is created (a cache: it starts cold); after
  the drain too, the primary PocketBase is stopped and its disk snapshotted and deleted.
- `--to primary` (planned, both regions up): first a targeted `pulumi up` moves the backend back, drains and
  stops the standby PocketBase, whose Litestream ships its last writes; then a full `pulumi up` starts the
  primary PocketBase on a new disk, restoring the replica the standby wrote. Between the two the API answers
  errors: PocketBase is down on both sides, never up on both.

Then it polls `https://api.<zone>/readyz` until it answers 200 and prints the time from the config change
(the RTO this command measured). Exit codes: 0 serving and ready, 1 `pulumi` failed (even if the API
answers) or the API was not ready within the profile's RTO, 2 usage, an invalid stack, no failover region,
or not confirmed.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONFIG_PATH = "platform:gcp.serving"
# What the targeted step of a failback changes, by resource type and name (the program's names).
FAILBACK_FIRST = (("gcp:compute/backendService:BackendService", "engine-backend"),
                  ("time:index/sleep:Sleep", "failover-drain"),
                  ("gcp:compute/instance:Instance", "database-standby"))


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    failover = commands.add_parser("failover", help="serve the stack from its failover region (or back), and time "
                                                    "the API through the edge")
    failover.add_argument("--stack", required=True)
    failover.add_argument("--to", choices=("failover", "primary"), default="failover",
                          help="the region to serve from (default: failover)")
    failover.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    failover.add_argument("--url", help="what is polled until it answers 200 (default: https://api.<zone>/readyz)")
    failover.add_argument("--poll-seconds", type=float, default=5.0, help="between two polls (default: 5)")
    failover.add_argument("--timeout-seconds", type=float,
                          help="give up after this long (default: the profile's RTO)")


def _pulumi(args: Sequence[str]) -> int:
    print(f"$ pulumi {' '.join(args)}", flush=True)
    try:
        return subprocess.run(["pulumi", *args], cwd=PROJECT_DIR, check=False).returncode
    except FileNotFoundError:
        print("error: the Pulumi CLI (`pulumi`) is not on PATH", file=sys.stderr)
        return 127


def _ready(url: str, poll_seconds: float, deadline: float) -> bool:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() + poll_seconds > deadline:
            return False
        time.sleep(poll_seconds)


def main(args: argparse.Namespace) -> int:
    from components.edge import api_hostname
    from infra.ops import load_stack, plan_stack
    from infra.program import failover_region

    config_file = PROJECT_DIR / f"Pulumi.{args.stack}.yaml"
    loaded = load_stack(args.stack, config_file)
    if loaded is None:
        return EXIT_USAGE
    raw, model = loaded
    region = failover_region(model)
    if region is None or model.gcp is None:
        print(f"error: {config_file.name}: platform:gcp.failoverRegion: stack {args.stack!r} has no standby to fail "
              "over to; expected a failover region, the engine on cloudrun and PocketBase on gce, in a profile that "
              "runs a failover region (prod)", file=sys.stderr)
        return EXIT_USAGE
    target_region = region if args.to == "failover" else model.gcp.region
    if not args.yes:
        answer = input(f"Serve stack {args.stack!r} from {target_region} ({args.to}): the API moves there and "
                       "PocketBase restarts from the replica. Type 'yes' to go on: ")
        if answer.strip().lower() != "yes":
            print("failover: nothing changed", file=sys.stderr)
            return EXIT_USAGE

    failback_first: list[str] = []
    if args.to == "primary":
        # Planned before anything changes: a plan the program refuses stops the failback here, not after
        # `pulumi config set` moved the stack to the primary with nothing deployed.
        plan = plan_stack(dataclasses.replace(model, gcp=dataclasses.replace(model.gcp, serving="primary")),
                          raw, args.stack, config_file.name)
        if plan is None:
            return EXIT_USAGE
        failback_first = [r.urn for r in plan.resources if (r.type, r.name) in FAILBACK_FIRST]
    url = args.url or f"https://{api_hostname(model.zone.name)}/readyz"
    timeout = args.timeout_seconds or model.profile.disaster_recovery.rto_minutes * 60.0
    started = time.monotonic()
    # Drawn on every dashboard (infra/ops/annotate.py): the on-call sees when the region changed.
    import os

    from infra.ops.annotate import Annotator

    Annotator.from_env(os.environ, model.environment, str(raw.values.get("grafana:url", ""))).post(
        "failover", f"{args.to}: serving from {target_region} (started)")
    if _pulumi(["config", "set", "--path", CONFIG_PATH, args.to, "--stack", args.stack]) != 0:
        print("error: `pulumi config set` failed; nothing was deployed", file=sys.stderr)
        return EXIT_FAILED
    up = ["up", "--stack", args.stack, "--yes"]
    up_failed: int | None = None
    if args.to == "failover":
        # A lost primary region fails its own resources' steps; every other step still runs.
        code = _pulumi([*up, "--continue-on-error"])
        if code != 0:
            up_failed = code
            print(f"failover: `pulumi up` ended with {code} (a lost {model.gcp.region} fails its own steps); "
                  "waiting for the API", file=sys.stderr)
    else:
        if _pulumi([*up, *[flag for urn in failback_first for flag in ("--target", urn)]]) != 0:
            print("error: the targeted `pulumi up` (edge back to the primary, standby stopped) failed; the primary "
                  "PocketBase was not started", file=sys.stderr)
            return EXIT_FAILED
        if _pulumi(up) != 0:
            print("error: `pulumi up` failed; see its output", file=sys.stderr)
            return EXIT_FAILED
    deployed = time.monotonic() - started
    ready = _ready(url, args.poll_seconds, started + timeout)
    elapsed = time.monotonic() - started
    if not ready:
        print(f"failover: {args.stack} set to serve from {target_region}, but {url} was not ready after "
              f"{elapsed:.0f} s (RTO {timeout / 60:.0f} min)", file=sys.stderr)
        return EXIT_FAILED
    if up_failed is not None:
        # /readyz says PocketBase and Redis answer, not from which region: the primary answers it too if the
        # backend's switch is among the steps that failed.
        print(f"failover: {url} answers after {elapsed:.0f} s, but `pulumi up` ended with {up_failed}: read its "
              f"failed steps, and check that the load balancer's backend is the NEG in {target_region} "
              "(`gcloud compute backend-services describe`) before calling the failover done", file=sys.stderr)
        return EXIT_FAILED
    print(f"failover: {args.stack} serving from {target_region} ({args.to}); pulumi took {deployed:.1f} s, "
          f"{url} ready after {elapsed:.1f} s (RTO measured from the config change; "
          f"the profile allows {model.profile.disaster_recovery.rto_minutes} min)")
    return EXIT_OK
