"""#25.1 acceptance: docs/first-deploy.md walked against the bootstrap's plan and the committed stack files.
Every bootstrap output the guide reads exists in that environment's bootstrap plan, every secret a stack file
holds (and every secret the config spec knows) is set by a `pulumi config set --secret` line, and every
`python -m infra` command it runs is one the CLI accepts."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from infra.bootstrap.plan import bootstrap_plan
from infra.cli import _parser  # pyright: ignore[reportPrivateUsage]
from infra.spec import SECRET_FIELDS
from tests.conftest import PROJECT_DIR, STACKS

GUIDE = PROJECT_DIR / "docs" / "first-deploy.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    lines = [line.split("  #")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _secret_sets() -> dict[str, str]:
    """config key -> the bootstrap output it is set from ('' when typed in by hand)."""
    sets: dict[str, str] = {}
    for line in _commands():
        match = re.match(r"pulumi config set --secret (\S+)(?: \"\$\(out (\w+)\)\")?$", line)
        if match:
            sets[match.group(1)] = match.group(2) or ""
    return sets


def test_every_step_of_the_guide_is_a_command() -> None:
    commands = _commands()
    assert len(commands) >= 20
    for line in commands:
        program = line.split()[0]
        assert program in {"python3", ".venv/bin/python", "export", "gcloud", "pulumi", "gh", "out()"} \
            or re.match(r"^[A-Z_]+=", program), line


@pytest.mark.parametrize("stack", STACKS)
def test_every_secret_the_stack_file_holds_is_set_by_the_guide_from_where_it_comes(stack: str) -> None:
    config = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
    secure = {k for k, v in config.items() if isinstance(v, dict) and "secure" in v}
    sets = _secret_sets()
    outputs = bootstrap_plan(stack).outputs

    assert secure - set(sets) == set(), "secrets of the stack file the guide never sets"
    for key in secure:
        if sets[key]:
            assert sets[key] in outputs, f"{key} is set from output {sets[key]!r}, which {stack}'s bootstrap lacks"


def test_every_secret_the_config_spec_knows_is_in_the_guide() -> None:
    camel = {re.sub(r"_(\w)", lambda m: m.group(1).upper(), f) for f in SECRET_FIELDS}
    assert {f"platform:{k}" for k in camel} - set(_secret_sets()) == set()


def test_every_output_the_guide_reads_is_one_a_bootstrap_declares() -> None:
    read = set(re.findall(r"stack output (\w+)", "\n".join(_commands()))) | {v for v in _secret_sets().values() if v}
    declared = {name for stack in STACKS for name in bootstrap_plan(stack).outputs}
    assert read - declared == set()


def test_every_infra_command_of_the_guide_parses() -> None:
    parser = _parser()
    for line in _commands():
        match = re.search(r"(?:python|python3) -m infra (.+?)(?:\)|$)", line)
        if match:
            argv = shlex.split(match.group(1).replace("$ENV", "prod"))
            parser.parse_args(argv)  # SystemExit on an unknown command or flag
