"""#25.1 acceptance: docs/first-deploy.md walked against the bootstrap's plan and the committed stack files.
Every bootstrap output the guide reads exists in that environment's bootstrap plan, every secret a stack file
holds (and every secret the config spec knows) is set by a `pulumi config set --secret` line, and every
`python -m infra` command it runs is one the CLI accepts."""

from __future__ import annotations

import json
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


# --- The guide against the workflows and the config loader (audit of #25.1) --------------------------------------

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
GH_ENVIRONMENT = {"integration": "integration", "staging": "staging", "prod": "production"}


def _guide_lines(stack: str) -> list[str]:
    """The guide's commands for ENV=stack: `# only: a b` lines kept for those stacks only, the guide's shell
    variables ENV, GH_ENV, PREVIEW_ENV substituted."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
    lines: list[str] = []
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        only = re.search(r"#\s*only:\s*([\w ]+)$", line)
        if only and stack not in only.group(1).split():
            continue
        command = line.split("  #")[0].strip()
        if command and not command.startswith("#"):
            lines.append(command.replace("$GH_ENV", GH_ENVIRONMENT[stack]).replace("$PREVIEW_ENV", f"preview-{stack}")
                         .replace("$ENV", stack))
    return lines


def _stack_of(environment: str) -> str:
    return {"production": "prod"}.get(environment, environment.removeprefix("preview-"))


def _workflow_needs() -> dict[str, set[tuple[str, str]]]:
    """GitHub environment ('' for jobs without one: repository level) -> {(secrets|vars, NAME)} the workflows
    read there; a matrix job once per stack, a step under `if: ... matrix.stack == 'X'` for X only."""
    needs: dict[str, set[tuple[str, str]]] = {}
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for stack in job.get("strategy", {}).get("matrix", {}).get("stack", [None]):
                environment = str(job.get("environment", "")).replace("${{ matrix.stack }}", str(stack))
                parts = [json.dumps({k: v for k, v in job.items() if k != "steps"})]
                for step in job.get("steps", []):
                    only = re.search(r"matrix\.stack == '(\w+)'", str(step.get("if", "")))
                    if not only or only.group(1) == stack:
                        parts.append(json.dumps(step))
                found = re.findall(r"\$\{\{[^}]*?\b(secrets|vars)\.(\w+)", "\n".join(parts))
                needs.setdefault(environment, set()).update((k, n) for k, n in found if n != "GITHUB_TOKEN")
    return needs


def _guide_sets(stack: str) -> set[tuple[str, str, str]]:
    """(environment or '' for the repository, secrets|vars, NAME) the guide sets for ENV=stack."""
    sets: set[tuple[str, str, str]] = set()
    for line in _guide_lines(stack):
        match = re.match(r"gh (secret|variable) set (\w+) (.*)$", line)
        if match:
            env = re.search(r"--env (\S+)", match.group(3))
            sets.add((env.group(1) if env else "", "secrets" if match.group(1) == "secret" else "vars", match.group(2)))
    return sets


@pytest.mark.parametrize("stack", STACKS)
def test_the_guide_sets_exactly_the_github_secrets_and_variables_the_workflows_read(stack: str) -> None:
    needs = _workflow_needs()
    sets = _guide_sets(stack)
    repository = {(kind, name) for env, kind, name in sets if env == ""}
    mine = {env: names for env, names in needs.items() if env and _stack_of(env) == stack}

    assert mine, f"the workflows run {stack} in some GitHub environment"
    for env, names in mine.items():
        missing = sorted(n for n in names if (env, *n) not in sets and n not in repository)
        assert missing == [], f"the workflows read these in environment {env!r}; the guide never sets them"
        extra = sorted((k, n) for e, k, n in sets if e == env and (k, n) not in names)
        assert extra == [], f"the guide sets these in {env!r}, which no workflow reads there"
    assert sorted(e for e, _, _ in sets if e and e not in mine) == [], "environments no job of this stack runs in"
    assert needs.get("", set()) <= repository


def test_nothing_the_guide_sets_in_a_stack_is_refused_by_the_config_loader() -> None:
    from infra.spec import StackSpecV1, raw_fields
    from stacks.providerconfig import key_problems

    known = set(raw_fields(StackSpecV1))
    for stack in STACKS:
        for line in _guide_lines(stack):
            match = re.match(r"pulumi config set (--secret )?(\S+)", line)
            if not match:
                continue
            key = match.group(2)
            if key.startswith("platform:"):
                assert key.removeprefix("platform:") in known, line
            else:  # the value is typed in or read from the bootstrap: only whether the key may be there is checked
                assert key_problems({key: "[placeholder]"}, frozenset({key}), "platform") == [], line


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_is_encrypted_with_kms_only_when_its_jobs_have_a_gcp_identity(stack: str) -> None:
    """A job can decrypt a gcpkms:// stack only with a GCP identity that holds the key (the bootstrap's deploy and
    preview accounts); the others use Pulumi Cloud's default secrets provider, which their Pulumi token
    decrypts (pulumi.com/docs/iac/concepts/secrets/#available-encryption-providers)."""
    with_gcp: set[str] = set()
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for s in job.get("strategy", {}).get("matrix", {}).get("stack", [None]):
                environment = str(job.get("environment", "")).replace("${{ matrix.stack }}", str(s))
                for step in job.get("steps", []):
                    only = re.search(r"matrix\.stack == '(\w+)'", str(step.get("if", "")))
                    if str(step.get("uses", "")).startswith("google-github-actions/auth@") and (
                            not only or only.group(1) == s):
                        with_gcp.add(_stack_of(environment))
    [init] = [line for line in _guide_lines(stack) if line.startswith("pulumi stack init")]

    assert ("--secrets-provider" in init) == (stack in with_gcp), init
