"""`python -m infra wait-certificate --stack STACK`: wait until the stack's Certificate Manager certificates are
ACTIVE, so a deploy smokes through its edge only once the origin can present a certificate (#20 item 8).

Google: "Provisioning a Google-managed certificate can take up to 60 minutes after your DNS and load balancer
configuration changes propagate across the internet. If the certificate remains in the `PROVISIONING` state,
check the `managed.provisioningIssue` or `managed.authorizationAttemptInfo` fields for more information"
(docs.cloud.google.com/certificate-manager/docs/troubleshooting, "Managed certificate state"). FAILED:
"Multiple certificate provisioning attempts failed and Certificate Manager gave up. To try again, delete and
create a new managed Certificate resource" (ManagedCertificate.State, certificatemanager v1 reference). Until
then the load balancer has nothing to present and Cloudflare, in Full (strict) mode, answers 525/526: on a
first deploy the smoke would fail although nothing is wrong.

The certificates are the ones the program declares (`gcp:certificatemanager/certificate:Certificate`: their
`name` and `project`), read from the offline plan of the same stack file: the program exports nothing about
them, and the plan names them exactly as `pulumi up` did. Each is read with
`gcloud certificate-manager certificates describe NAME --location=global --project=P --format=json`, every
`--interval-seconds`, until ACTIVE (exit 0), FAILED (exit 1 with Google's reason) or `--timeout-minutes`
(exit 1 with the last state and reason). A stack without one has nothing to wait for (exit 0).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

CERTIFICATE_TYPE = "gcp:certificatemanager/certificate:Certificate"
LOCATION = "global"
"""A certificate the program declares without `location` is global (the provider's default), as load
balancers' certificate maps need."""
DEFAULT_TIMEOUT_MINUTES = 70
"""Google's 60 minutes after DNS and the load balancer propagate, plus the propagation itself."""
DEFAULT_INTERVAL_SECONDS = 30.0
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


@dataclass(frozen=True)
class Certificate:
    name: str
    project: str


class GcloudError(Exception):
    pass


def describe(certificate: Certificate, gcloud: str = "gcloud") -> dict[str, Any]:
    """The certificate as the API returns it, through gcloud (the deploy job's workload identity)."""
    argv = [gcloud, "certificate-manager", "certificates", "describe", certificate.name, f"--location={LOCATION}",
            f"--project={certificate.project}", "--format=json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GcloudError(f"cannot run {' '.join(argv[:4])}: {err}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise GcloudError(f"gcloud could not describe {certificate.name} (exit {done.returncode}): {last}")
    try:
        found: Any = json.loads(done.stdout)
    except ValueError:
        raise GcloudError(f"gcloud answered something that is not JSON for {certificate.name}") from None
    return cast(dict[str, Any], found) if isinstance(found, dict) else {}


def state(found: Mapping[str, Any]) -> str:
    return str(_dict(found.get("managed")).get("state") or "STATE_UNSPECIFIED")


def why(found: Mapping[str, Any]) -> str:
    """What Google says about the provisioning: the issue, then each domain's authorization attempt."""
    managed = _dict(found.get("managed"))
    issue = _dict(managed.get("provisioningIssue"))
    parts = [f"{issue.get('reason')}: {issue.get('details', '')}".rstrip(": ")] if issue.get("reason") else []
    attempts = managed.get("authorizationAttemptInfo")
    for attempt in cast(list[Any], attempts) if isinstance(attempts, list) else []:
        info = _dict(attempt)
        detail = ": ".join(str(info[k]) for k in ("failureReason", "details") if info.get(k))
        if info.get("state") == "FAILED":
            parts.append(f"{info.get('domain')}: {detail or 'FAILED'}")
        else:
            parts.append(f"{info.get('domain')} {info.get('state')}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts) or "Google gives no reason yet"


def wait(certificates: Sequence[Certificate], read: Callable[[Certificate], dict[str, Any]], timeout_s: float,
         interval_s: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         say: Callable[[str], None] = print) -> str | None:
    """None once every certificate is ACTIVE; else why the deploy must stop (FAILED, or the bound)."""
    deadline = clock() + timeout_s
    pending = list(certificates)
    while True:
        for certificate in list(pending):
            found = read(certificate)
            now = state(found)
            if now == "ACTIVE":
                say(f"certificate {certificate.name} is ACTIVE")
                pending.remove(certificate)
            elif now == "FAILED":
                return (f"certificate {certificate.name} is FAILED: Certificate Manager gave up ({why(found)}); "
                        "fix the cause, then delete and create the certificate (`pulumi up --replace` its URN)")
            else:
                say(f"certificate {certificate.name} is {now}: {why(found)}; the edge answers 525/526 until it is "
                    "ACTIVE (up to 60 minutes after DNS and the load balancer propagate)")
                if clock() >= deadline:
                    return (f"certificate {certificate.name} is still {now} after {timeout_s / 60:.0f} minutes "
                            f"({why(found)}); Google documents up to 60 minutes after DNS and the load balancer "
                            "propagate: check the DNS authorization's CNAME in the zone")
        if not pending:
            return None
        sleep(interval_s)


RETRY_PAUSE_SECONDS = 5.0
"""Between two attempts of one read: a blip (a reset connection, a 503) lasts seconds, so attempts back to back
would all meet it."""


def tolerant(read: Callable[[Certificate], dict[str, Any]], attempts: int = 3,
             say: Callable[[str], None] = print, pause_s: float = RETRY_PAUSE_SECONDS,
             sleep: Callable[[float], None] = time.sleep) -> Callable[[Certificate], dict[str, Any]]:
    """`read`, retried on a gcloud error up to `attempts` times in a row, `pause_s` apart (a network blip during
    an hour-long wait must not fail the deploy); a lasting one (PERMISSION_DENIED, NOT_FOUND) still ends it."""
    def again(certificate: Certificate) -> dict[str, Any]:
        for attempt in range(1, attempts + 1):
            try:
                return read(certificate)
            except GcloudError as err:
                if attempt == attempts:
                    raise
                say(f"gcloud failed ({err}); trying again in {pause_s:.0f} s")
                sleep(pause_s)
        raise AssertionError("unreachable")
    return again


def planned_certificates(stack: str, config_file: Path | None) -> list[Certificate] | None:
    """The Certificate Manager certificates the program declares for the stack (None: an invalid stack file, or a
    plan the program refuses; either printed)."""
    from infra.ops import load_stack, plan_stack

    loaded = load_stack(stack, config_file)
    if loaded is None:
        return None
    raw, model = loaded
    plan = plan_stack(model, raw, stack, (config_file or Path(f"Pulumi.{stack}.yaml")).name)
    if plan is None:
        return None
    return [Certificate(str(r.inputs["name"]), str(r.inputs["project"]))
            for r in plan.resources if r.type == CERTIFICATE_TYPE]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    command = commands.add_parser("wait-certificate",
                                  help="wait until the stack's Certificate Manager certificates are ACTIVE")
    command.add_argument("--stack", required=True)
    command.add_argument("--config-file", type=Path, help="a stack file to use instead of Pulumi.<stack>.yaml")
    command.add_argument("--timeout-minutes", type=float, default=DEFAULT_TIMEOUT_MINUTES)
    command.add_argument("--interval-seconds", type=float, default=DEFAULT_INTERVAL_SECONDS)
    command.add_argument("--gcloud", default="gcloud", help="the gcloud executable")


def main(args: argparse.Namespace) -> int:
    if args.timeout_minutes < 0 or args.interval_seconds < 0:
        print("error: --timeout-minutes and --interval-seconds must not be negative", file=sys.stderr)
        return EXIT_INVALID
    certificates = planned_certificates(args.stack, args.config_file)
    if certificates is None:
        return EXIT_INVALID
    if not certificates:
        print(f"wait-certificate: {args.stack} declares no Certificate Manager certificate: nothing to wait for")
        return EXIT_OK
    print(f"wait-certificate: {', '.join(c.name for c in certificates)}: until ACTIVE, at most "
          f"{args.timeout_minutes:.0f} minutes", flush=True)
    try:
        # A retry pauses no longer than a poll would.
        pause_s = min(RETRY_PAUSE_SECONDS, args.interval_seconds)
        reason = wait(certificates, tolerant(lambda c: describe(c, args.gcloud), pause_s=pause_s),
                      args.timeout_minutes * 60, args.interval_seconds, say=lambda line: print(line, flush=True))
    except GcloudError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _dict(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}
