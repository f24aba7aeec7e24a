"""#25.2: the docs and the config agree. Generic on purpose (config validation is changing beside it): what
the program reads is observed, not listed.

- A `platform:` key a committed stack file holds is used: changing its value changes the plan, or (a secret,
  which a plan only holds as an undecryptable placeholder) the program takes its value (`Secret.output()`,
  instrumented) during the plan. A key the stack requires but never uses is as wrong as an unused one.
- Every key a stack file holds, every secret the spec knows and every variable the workflows read is
  documented (README.md or docs/); every secret a stack file holds has its `config set --secret` line.
- Each stack file's header names only backends the stack runs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pulumi.dynamic as dynamic
import pytest
import yaml

from infra import model as m
from infra.config import ConfigError, load_model
from infra.plan import run_program
from infra.spec import SECRET_FIELDS
from infra.stackfile import read_stack_file
from tests.conftest import PROJECT_DIR, STACKS, stack_document, write_stack

DOCS = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").rglob("*.md"))]


def _docs() -> str:
    return "\n".join(p.read_text() for p in DOCS)


class _ReadKeys:
    """Stands in for the stack's config in a dynamic provider's `configure`: records the keys it reads."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken

    def get(self, key: str, default: Any = None) -> Any:
        self.taken.add(key)
        return default


def _plan_json(path: Path, stack: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, set[str]]:
    """The plan as JSON, and the secret config keys whose values the program took: in the program
    (`Secret.output()`), or in a dynamic provider it declares a resource of (what its `configure` reads, as the
    engine would call it before any create)."""
    taken: set[str] = set()
    output, resource_init = m.Secret.output, dynamic.Resource.__init__

    def spy(self: m.Secret) -> Any:
        taken.add(self.key)
        return output(self)

    def spy_resource(self: dynamic.Resource, provider: Any, *args: Any, **kwargs: Any) -> None:
        provider.configure(dynamic.ConfigureRequest(_ReadKeys(taken)))  # pyright: ignore[reportArgumentType]
        resource_init(self, provider, *args, **kwargs)

    monkeypatch.setattr(m.Secret, "output", spy)
    monkeypatch.setattr(dynamic.Resource, "__init__", spy_resource)
    raw = read_stack_file(path, stack)
    plan = run_program(load_model(raw), raw, stack)
    monkeypatch.setattr(m.Secret, "output", output)
    monkeypatch.setattr(dynamic.Resource, "__init__", resource_init)
    return json.dumps({"resources": plan.to_json()["resources"], "outputs": plan.outputs}, sort_keys=True), taken


def _perturbed(value: Any) -> Iterator[Any]:
    """Copies of a config value with one leaf changed (strings prefixed, numbers moved, booleans flipped)."""
    if isinstance(value, dict):
        for key, inner in value.items():  # pyright: ignore[reportUnknownVariableType]
            for changed in _perturbed(inner):
                out = cast(dict[Any, Any], copy.deepcopy(value))  # pyright: ignore[reportUnknownArgumentType]
                out[key] = changed
                yield out
    elif isinstance(value, list) and value:
        for changed in _perturbed(value[0]):
            yield [changed, *value[1:]]
    elif isinstance(value, bool):
        yield not value
    elif isinstance(value, int | float):
        yield value + 1
    elif isinstance(value, str):
        yield "x" + value


@pytest.mark.parametrize("stack", STACKS)
def test_every_platform_key_a_stack_holds_changes_what_it_declares(
        stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = stack_document(stack)
    base, taken = _plan_json(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack, monkeypatch)
    unused: list[str] = []
    for key, value in document["config"].items():
        if not key.startswith("platform:") or key in ("platform:version", "platform:waivers"):
            continue
        if isinstance(value, dict) and "secure" in value:
            if key not in taken:
                unused.append(f"{key} (a secret the program never takes)")
            continue
        changed_any, accepted_any = False, False
        for changed in _perturbed(value):
            doc = copy.deepcopy(document)
            doc["config"][key] = changed
            try:
                plan, _ = _plan_json(write_stack(tmp_path, doc), stack, monkeypatch)
            except ConfigError:
                continue  # a value validation refuses says nothing of whether a valid one is used
            accepted_any = True
            if plan != base:
                changed_any = True
                break
        if accepted_any and not changed_any:
            unused.append(f"{key} (its plan is byte-identical whatever its value)")
    assert unused == [], f"Pulumi.{stack}.yaml holds keys the program does not use"


@pytest.mark.parametrize("stack", STACKS)
def test_every_key_of_a_stack_file_is_documented(stack: str) -> None:
    docs = _docs()
    keys = list(stack_document(stack)["config"])

    assert [k for k in keys if k not in docs] == []


def test_every_secret_the_spec_knows_and_every_secret_a_stack_holds_has_its_config_set_line() -> None:
    docs = _docs()
    camel = {"platform:" + re.sub(r"_(\w)", lambda g: g.group(1).upper(), f) for f in SECRET_FIELDS}
    held = {k for s in STACKS for k, v in stack_document(s)["config"].items() if isinstance(v, dict) and "secure" in v}

    missing = sorted(k for k in camel | held if not re.search(rf"config set --secret {re.escape(k)}\b", docs))
    assert missing == []


def test_every_variable_and_secret_the_workflows_read_is_documented() -> None:
    docs = _docs()
    names: set[str] = set()
    for workflow in (PROJECT_DIR / ".github" / "workflows").glob("*.yml"):
        names |= set(re.findall(r"\$\{\{\s*(?:vars|secrets)\.(\w+)", workflow.read_text()))

    assert names, "the workflows read variables"
    assert sorted(n for n in names if n not in docs and n != "GITHUB_TOKEN") == []


BACKEND_WORDS = {"railway": "Railway", "cloudrun": "Cloud Run", "docker": "Docker"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_files_header_names_only_the_backends_it_runs(stack: str) -> None:
    text = (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()
    header = " ".join(line for line in text.split("\nconfig:")[0].splitlines() if line.startswith("#"))
    backends = {svc.backend for svc in load_model(read_stack_file(PROJECT_DIR / f"Pulumi.{stack}.yaml", stack))
                .services.values()}

    for backend, word in BACKEND_WORDS.items():
        if backend not in backends:
            assert word not in header, f"the header of Pulumi.{stack}.yaml says {word}; the stack runs {backends}"


def test_spec_keys_the_docs_name_exist() -> None:
    """Nothing documented is unused: a `platform:KEY` the docs name is a key of the spec, or a write credential
    config refuses by name (DEPLOY_CREDENTIALS, #22 item 1), which the docs never tell anyone to set."""
    from infra.spec import DEPLOY_CREDENTIALS, StackSpecV1, raw_fields

    known = set(raw_fields(StackSpecV1))
    named = set(re.findall(r"`platform:(\w+)(?![\w:])", _docs()))
    assert sorted(named - known - set(DEPLOY_CREDENTIALS)) == []
    set_lines = [line for line in _docs().splitlines() if "config set" in line]
    assert not [line for line in set_lines for key in DEPLOY_CREDENTIALS if f"platform:{key}" in line]


def test_yaml_is_loadable() -> None:  # the helper reads what the CLI reads
    for stack in STACKS:
        assert yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
