"""`python -m infra tenant-keys --stack S --tenant T [--key admin|api|both]`: one tenant's keys, and nothing else,
for the deploy job's smoke test and for handing a tenant its keys at onboarding (#22 item 6).

No stack output holds a key: Stack Read would read every tenant's. Where a stack has a Google Cloud project
(prod), each tenant's keys are in the Secret Manager secret `tenant-<slug>-keys`, which only the deploy account
may read (components/tenant_secrets.py): read with `gcloud secrets versions access` as that account (the deploy
job's workload identity; an operator impersonating it). A stack without one (staging on Railway, integration on
docker) keeps them only in its state, encrypted by its secrets provider: read from `pulumi stack export
--show-secrets` (the identity that can decrypt the state: the deploy job's, or a human with state access), of
which this keeps the one tenant's key resources and prints only the key asked for. `pulumi stack export
--show-secrets` writes each secret as `{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
"plaintext": "<JSON>"}` (pulumi/pulumi sdk/go/common/resource/sig: `sig.Key`, `sig.Secret`).

Nothing but the key goes to stdout; errors never quote a value. Exit codes: 0 printed, 1 not read, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from components.tenant_secrets import tenant_secret_id
from infra.ops import load_stack

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SIG_KEY, SIG_SECRET = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
PASSWORD_TYPE = "random:index/randomPassword:RandomPassword"
ENGINE = "engine"
"""The Engine component's name in the program (infra/program.py): its keys are `engine-key-<slug>-api|admin`."""
FIELDS = {"api": "apiKey", "admin": "adminKey"}

Runner = Callable[[Sequence[str]], tuple[int, str]]
"""Runs a command: its exit code and its stdout (stderr is not kept: it is not printed back)."""


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    return proc.returncode, proc.stdout


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    sub = commands.add_parser("tenant-keys", help="print one tenant's key (smoke test, onboarding)")
    sub.add_argument("--stack", required=True, help="the stack file's name: integration, staging, prod")
    sub.add_argument("--tenant", required=True, help="the tenant's slug")
    sub.add_argument("--key", choices=("admin", "api", "both"), default="both",
                     help="which key to print (both: a JSON object with apiKey and adminKey)")
    sub.add_argument("--pulumi-stack", metavar="ORG/PROJECT/STACK",
                     help="the stack's fully qualified name for `pulumi stack export` (default: --stack)")


def _unwrap(value: Any) -> str | None:
    if isinstance(value, dict) and value.get(SIG_KEY) == SIG_SECRET:  # pyright: ignore[reportUnknownMemberType]
        plaintext = value.get("plaintext")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        decoded: Any = json.loads(plaintext) if isinstance(plaintext, str) else None
        return decoded if isinstance(decoded, str) else None
    return value if isinstance(value, str) else None


def keys_from_state(export: str, tenant: str) -> dict[str, str] | str:
    """The tenant's two keys from a `pulumi stack export --show-secrets` document, or why not."""
    try:
        resources: Any = json.loads(export)["deployment"]["resources"]
    except (ValueError, KeyError, TypeError):
        return "the stack export is not a deployment document"
    found: dict[str, str] = {}
    listed: list[Any] = list(resources) if isinstance(resources, list) else []  # pyright: ignore[reportUnknownArgumentType]
    for resource in listed:
        if not isinstance(resource, dict):
            continue
        entry: dict[str, Any] = {str(k): v for k, v in resource.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if entry.get("type") != PASSWORD_TYPE:
            continue
        urn = str(entry.get("urn", ""))
        for kind, field in FIELDS.items():
            if urn.endswith(f"::{ENGINE}-key-{tenant}-{kind}"):
                outputs: Any = entry.get("outputs") or {}
                value = _unwrap(outputs.get("result")) if isinstance(outputs, dict) else None  # pyright: ignore[reportUnknownMemberType]
                if value is None:
                    return f"the state's {kind} key of {tenant!r} is encrypted: export it with --show-secrets"
                found[field] = value
    missing = [kind for kind, field in FIELDS.items() if field not in found]
    return found if not missing else f"the state holds no {' and no '.join(missing)} key of tenant {tenant!r}"


def keys_from_secret(document: str, tenant: str) -> dict[str, str] | str:
    try:
        parsed: Any = json.loads(document)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(parsed.get(f), str) for f in FIELDS.values()):  # pyright: ignore[reportUnknownMemberType]
        return f"the secret {tenant_secret_id(tenant)} does not hold {{\"apiKey\", \"adminKey\"}}"
    return {f: str(parsed[f]) for f in FIELDS.values()}  # pyright: ignore[reportUnknownArgumentType]


def main(stack: str, tenant: str, key: str, pulumi_stack: str | None, run: Runner = run_command) -> int:
    loaded = load_stack(stack)
    if loaded is None:
        return EXIT_USAGE
    _, model = loaded
    slugs = sorted(t.slug for t in model.tenants)
    if tenant not in slugs:
        print(f"error: --tenant {tenant!r} is not a tenant of stack {stack!r}; its tenants: {', '.join(slugs)}",
              file=sys.stderr)
        return EXIT_USAGE
    if model.gcp is not None:
        argv = ["gcloud", "secrets", "versions", "access", "latest", f"--secret={tenant_secret_id(tenant)}",
                f"--project={model.gcp.project}"]
        code, out = run(argv)
        where = f"Secret Manager secret {tenant_secret_id(tenant)} in {model.gcp.project}"
        keys = keys_from_secret(out, tenant) if code == 0 else f"`{' '.join(argv)}` failed ({code})"
    else:
        argv = ["pulumi", "stack", "export", "--show-secrets", "--stack", pulumi_stack or stack]
        code, out = run(argv)
        where = f"the state of stack {pulumi_stack or stack}"
        keys = keys_from_state(out, tenant) if code == 0 else f"`{' '.join(argv)}` failed ({code})"
        del out  # the whole decrypted state: nothing of it is kept but the one tenant's keys
    if isinstance(keys, str):
        print(f"error: {tenant}'s keys not read from {where}: {keys}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(keys, sort_keys=True) if key == "both" else keys[FIELDS[key]])
    return EXIT_OK
