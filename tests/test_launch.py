"""The program as the Pulumi CLI launches it, emulated from the CLI's source for this `Pulumi.yaml`.

pulumi/pulumi at 1b5949891b3cefcb9974752b24a5ecef0acc86c8 (v3.259.0):
- `pkg/engine/project.go` `getPwdMain`: no `main` -> the project root; a directory -> that directory;
  a file -> the file's directory. The program chdirs there (`--pwd`), and every provider plugin is
  started there too (`pkg/resource/plugin/plugin.go`: `cmd.Dir = pwd`).
- The Python language host runs `runpy.run_path(".")` there: the directory's `__main__.py`.
- `sdk/python/toolchain/pip.go` `resolveVirtualEnvironmentPath`: the program's `virtualenv` is
  relative to the project root.
- `sdk/python/cmd/pulumi-resource-pulumi-python` (the dynamic-provider launcher, a shell script)
  gets the option raw and resolves it against its own working directory, `$PWD/<virtualenv>`
  (pulumi/pulumi#7061, #7907): so the dynamic provider and the program agree only when pwd is root.
- pulumi-docker `docker.Image`: `build.context` and `build.dockerfile` go through `filepath.Abs`, i.e.
  against the provider's working directory (pulumi/pulumi-docker provider/image.go at 237b7899).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.plan import Plan
from tests.conftest import PROJECT_DIR, STACKS

VENV = PROJECT_DIR / ".venv"  # the one tools/dev.py creates and installs the platform into


def _project(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "Pulumi.yaml").read_text())


def cli_pwd(root: Path, project: dict[str, Any]) -> Path:
    """`getPwdMain`: the working directory of the program and of every provider plugin."""
    main = project.get("main")
    if not main:
        return root
    target = (root / main).resolve()
    return target if target.is_dir() else target.parent


def program_virtualenv(root: Path, project: dict[str, Any]) -> Path:
    venv = Path(project["runtime"]["options"]["virtualenv"])
    return venv if venv.is_absolute() else (root / venv).resolve()


def dynamic_provider_virtualenv(pwd: Path, project: dict[str, Any]) -> Path:
    venv = Path(project["runtime"]["options"]["virtualenv"])
    return venv if venv.is_absolute() else (pwd / venv).resolve()


# Inputs that name a file or folder the provider opens on the machine running `pulumi up`.
PATH_INPUTS = {("docker:index/image:Image", "build", "context"): "dir",
               ("docker:index/image:Image", "build", "dockerfile"): "file"}


def _get(inputs: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = inputs
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def test_the_cli_runs_the_programs_entry_point_from_its_working_directory() -> None:
    pwd = cli_pwd(PROJECT_DIR, _project(PROJECT_DIR))
    entry = pwd / "__main__.py"

    assert entry.is_file(), f"runpy.run_path('.') in {pwd} needs a __main__.py"
    calls = {node.func.id for node in ast.walk(ast.parse(entry.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "run_under_pulumi" in calls


def test_the_program_and_its_dynamic_provider_find_the_virtualenv_the_platform_is_installed_in() -> None:
    project = _project(PROJECT_DIR)
    pwd = cli_pwd(PROJECT_DIR, project)

    assert program_virtualenv(PROJECT_DIR, project) == VENV
    assert dynamic_provider_virtualenv(pwd, project) == VENV, \
        "the Railway provider's launcher would look for a virtualenv that does not exist"


def test_the_policy_pack_finds_the_same_virtualenv() -> None:
    pack_dir = PROJECT_DIR / "policies"
    pack = yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text())

    assert program_virtualenv(pack_dir, pack) == VENV


@pytest.mark.parametrize("stack", STACKS)
def test_every_path_a_provider_opens_exists_from_the_cli_working_directory(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    pwd = cli_pwd(PROJECT_DIR, _project(PROJECT_DIR))
    checked = 0
    for resource in committed_plans[stack].resources:
        for (type_, *path), kind in PATH_INPUTS.items():
            value = _get(resource.inputs, tuple(path)) if resource.type == type_ else None
            if value is None:
                continue
            resolved = Path(value) if Path(value).is_absolute() else pwd / value
            assert (resolved.is_dir() if kind == "dir" else resolved.is_file()), \
                f"{resource.name}: {'.'.join(path)} {value!r} resolves to {resolved}, which is no {kind}"
            assert not Path(value).is_absolute(), f"{resource.name}: {value!r} differs on every machine"
            checked += 1
    images = sum(r.type == "docker:index/image:Image" for r in committed_plans[stack].resources)
    assert checked == 2 * images and images >= 1


def test_the_emulation_reproduces_the_known_failure_of_main_infra() -> None:
    """pulumi/pulumi#7907: `main: infra/` with `virtualenv: .venv` -> the launcher wants infra/.venv."""
    project = {**_project(PROJECT_DIR), "main": "infra/"}

    assert cli_pwd(PROJECT_DIR, project) == PROJECT_DIR / "infra"
    assert dynamic_provider_virtualenv(cli_pwd(PROJECT_DIR, project), project) == PROJECT_DIR / "infra" / ".venv"
