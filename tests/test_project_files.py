"""The files the Pulumi CLI and GitHub read, checked against the schemas those tools use."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from tests.conftest import PROJECT_DIR

SCHEMAS = PROJECT_DIR / "tests" / "schemas"
# The Python language host accepts only these runtime options (schemas/README.md).
PYTHON_RUNTIME_OPTIONS = {"toolchain": {"pip", "poetry", "uv"}, "virtualenv": None, "typechecker": {"mypy", "pyright"}}


def test_pulumi_yaml_is_a_valid_project_file() -> None:
    schema = json.loads((SCHEMAS / "pulumi-project.json").read_text())
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())

    jsonschema.validate(project, schema, cls=jsonschema.Draft202012Validator)

    assert project["name"] == "platform"


def test_pulumi_yaml_uses_only_runtime_options_the_python_host_accepts() -> None:
    runtime = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["runtime"]

    assert runtime["name"] == "python"
    for option, value in runtime["options"].items():
        assert option in PYTHON_RUNTIME_OPTIONS, f"unknown Python runtime option {option!r}"
        allowed = PYTHON_RUNTIME_OPTIONS[option]
        assert allowed is None or value in allowed, f"{option}: {value!r} not in {allowed}"
    # Every option but `typechecker`: it would type-check before every `pulumi up` (tests/test_deploy_path_deps.py).
    assert set(runtime["options"]) == set(PYTHON_RUNTIME_OPTIONS) - {"typechecker"}


def test_every_stack_file_belongs_to_this_project_and_names_its_environment() -> None:
    for path in PROJECT_DIR.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        assert config["platform:environment"] == stack
        assert all(":" in key for key in config), f"{path.name}: keys carry their namespace"


def test_github_workflows_are_valid_against_the_vendored_schema() -> None:
    workflows = sorted(str(p) for p in (PROJECT_DIR / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 2

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
         *workflows],
        capture_output=True, text=True, check=False, timeout=120,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme_head = (PROJECT_DIR / "README.md").read_text().splitlines()[:12]
    ci = (PROJECT_DIR / ".ci" / "run").read_text()

    assert any("python3 tools/dev.py test" in line for line in readme_head)
    assert any("python3 tools/dev.py plan" in line for line in readme_head)
    assert "python3 tools/dev.py test" in ci


def test_nothing_in_the_repository_reads_or_points_outside_it() -> None:
    """A clone of this repository alone must work: no file may reach into a sibling folder (such as
    the design folder this project was written from) or climb above the project directory."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True).stdout
    outside = re.compile(r"\.\./shared|/ \"shared\" /|PROJECT_DIR\.parent|parent\.parent\.parent")
    offenders = []
    for name in filter(None, tracked.decode().split("\0")):
        path = PROJECT_DIR / name
        if name == "tests/test_project_files.py" or not path.is_file() or path.suffix in (".png", ".ico"):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if outside.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []
