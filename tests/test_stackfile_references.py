"""Anchors, aliases and merge keys in a stack file are refused, each named by file, line and key path: the plan
(PyYAML) and the CLI (go-yaml) may resolve `<<:` differently, so the plan would check one value and the deploy use
another; an alias sets a value where a reviewer does not read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import ConfigError
from infra.stackfile import read_stack_file

BASE = "config:\n  platform:version: '1'\n"


@pytest.mark.parametrize(("extra", "path", "line"), [
    ("  platform:a:\n    base: &b\n      x: 1\n    m:\n      <<: *b\n      x: 2\n", "platform:a.m.<<", 7),
    ("  platform:a:\n    base: &b\n      x: 1\n    other: *b\n", "platform:a.other", 6),
    ("  platform:a:\n    list:\n      - &v one\n      - *v\n", "platform:a.list[1]", 6),
    ("  platform:a: &unused\n    x: 1\n", "platform:a", 3),
])
def test_a_reference_is_refused_with_its_file_line_and_path(tmp_path: Path, extra: str, path: str, line: int) -> None:
    file = tmp_path / "Pulumi.prod.yaml"
    file.write_text(BASE + extra)
    with pytest.raises(ConfigError) as refused:
        read_stack_file(file, "prod")
    text = str(refused.value)
    assert "Pulumi.prod.yaml" in text
    assert f"{path}: at line {line}," in text, text


def test_a_file_without_references_reads(tmp_path: Path) -> None:
    file = tmp_path / "Pulumi.prod.yaml"
    file.write_text(BASE + "  platform:a:\n    x: '&not-an-anchor *nor-alias <<'\n")
    assert read_stack_file(file, "prod").values["platform:a"]
