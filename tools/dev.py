#!/usr/bin/env python3
"""The developer entry point; needs only Python 3.11+ and sets up everything else itself.

    python3 tools/dev.py plan STACK [--json] [--diff-against PLAN.json]   the offline plan of a stack
    python3 tools/dev.py test                                          the whole test suite
    python3 tools/dev.py setup                                         the virtual environment only
    python3 tools/dev.py generate                                      regenerate the generated files
    python3 tools/dev.py drill                                         the disaster-recovery drill (bench/README.md)
    python3 tools/dev.py chaos [--short]                               faults under load, each checked (bench/README.md)
    python3 tools/dev.py mutate [--jobs N] [--only PATTERN] [--list]   the mutation campaign (tools/mutations.py)

The virtual environment is `.venv` (the one `Pulumi.yaml` names), reinstalled when pyproject.toml
changes. System packages the tests need are installed with apt-get when run as root; otherwise the
exact command is printed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".platform-installed"

# command the tests run -> Debian package that provides it
SYSTEM_PACKAGES: dict[str, str] = {"redis-server": "redis-server", "promtool": "prometheus",
                                   "prometheus": "prometheus", "prometheus-redis-exporter": "prometheus-redis-exporter"}


def _run(*cmd: str | Path, **kwargs: object) -> None:
    print(f"+ {' '.join(str(c) for c in cmd)}", flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (this file runs on whatever python3 the machine has)
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        _run(sys.executable, "-m", "venv", VENV)
    manifests = [ROOT / "pyproject.toml", ROOT / "components" / "engine" / "pyproject.toml"]
    wanted = hashlib.sha256(b"".join(p.read_bytes() for p in manifests)).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        # The platform and the engine it deploys share the environment: the tests run both.
        _run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]", "-e", "components/engine[dev]")
        STAMP.write_text(wanted)


def system_packages() -> None:
    missing = sorted({pkg for cmd, pkg in SYSTEM_PACKAGES.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"the tests need Debian packages {', '.join(missing)}; install them with:\n"
                 f"  sudo apt-get update && sudo apt-get install -y {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run("apt-get", "update", "-qq", env=env)
    _run("apt-get", "install", "-y", "-qq", *missing, env=env)


def test() -> None:
    setup()
    system_packages()
    bin_dir = VENV / "bin"
    _run(bin_dir / "ruff", "check", ".")
    _run(bin_dir / "pyright")  # strict over infra, stacks, components, policies (pyproject.toml)
    _run(PYTHON, "-m", "pytest")


# Generated files and the command that writes each; tests fail when one drifts.
GENERATED = {
    # The engine's schema and account, which PocketBase's image applies at its start (#11.2).
    "components/pocketbase/pb_hooks/engine_schema.json": ["-m", "engine.schema"],
    "docker-compose.yml": ["-m", "infra", "compose"],
    "policies/POLICIES.md": ["-m", "policies.doc"],
    "components/observability/generated/prometheus-rules.yml": ["-m", "components.observability", "rules"],
    **{f"components/observability/generated/prometheus-rules.{stack}.yml":
       ["-m", "components.observability", "rules", stack] for stack in ("staging", "prod")},
    **{f"components/observability/generated/prometheus-rules.{stack}.test.yml":
       ["-m", "components.observability", "rule-tests", stack] for stack in ("staging", "prod")},
    "components/observability/generated/prometheus-rules.test.yml": ["-m", "components.observability", "rule-tests"],
    **{f"components/observability/generated/dashboards/{name}.json":
       ["-m", "components.observability", "dashboard", name] for name in ("overview", "routes", "tenants")},
}


def generate() -> None:
    setup()
    for target, args in GENERATED.items():
        print(f"+ {target}", flush=True)
        output = subprocess.run([str(PYTHON), *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout
        (ROOT / target).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / target).write_text(output)


def plan(args: list[str]) -> None:
    if not args or args[0].startswith("-"):
        sys.exit("usage: python3 tools/dev.py plan STACK [--json] [--config-file FILE] [--diff-against PLAN.json]")
    setup()
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), "-m", "infra", "plan", "--stack", args[0], *args[1:]])


def drill(args: list[str]) -> None:
    """PocketBase, Litestream, moto's S3 server, Redis and the engine for real: kill, restore, check; then the
    failover to a standby that restores the replica on its first start (infra/ops/failover_drill.py, ~20 s)."""
    setup()
    system_packages()
    os.chdir(ROOT)
    crash = subprocess.run([str(PYTHON), "-m", "infra.ops.drill", *args], check=False)
    failover = subprocess.run([str(PYTHON), "-m", "infra.ops.failover_drill", *args], check=False)
    sys.exit(crash.returncode or failover.returncode)


def chaos(args: list[str]) -> None:
    """PocketBase, Redis and the engine for real, a fault proxy before each dependency: kill, cut, slow, check."""
    setup()
    system_packages()
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), "-m", "infra.ops.chaos", *args])


def mutate(args: list[str]) -> None:
    """Each mutation of tools/mutations.py applied alone to a copy of the tree, its tests run; the kill rate.
    Not part of `test` (it takes long); its last run's table is in bench/README.md."""
    setup()
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), str(ROOT / "tools" / "mutate.py"), *args])


def main() -> None:
    command, *args = sys.argv[1:] or ["help"]
    if command == "setup":
        setup()
    elif command == "test":
        test()
    elif command == "plan":
        plan(args)
    elif command == "drill":
        drill(args)
    elif command == "chaos":
        chaos(args)
    elif command == "mutate":
        mutate(args)
    elif command == "generate":
        generate()
    else:
        print(__doc__)
        sys.exit(0 if command in ("help", "-h", "--help") else 2)


if __name__ == "__main__":
    main()
