"""Apply a data file's `patch` (`set`, `delete`, `append`) to a stack document (tests/broken_stacks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _parts(path: str) -> list[Any]:
    key, *rest = path.split(".")
    return [key, *[int(p) if p.isdigit() else p for p in rest]]


def _walk(doc: dict[str, Any], parts: list[Any]) -> Any:
    target: Any = doc["config"]
    for part in parts:
        target = target[part]
    return target


def apply_patch(doc: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in (patch.get("top") or {}).items():  # a stack-file key beside `config:`
        doc[key] = value
    for path, value in (patch.get("set") or {}).items():
        parts = _parts(path)
        _walk(doc, parts[:-1])[parts[-1]] = value
    for path in patch.get("delete") or []:
        parts = _parts(path)
        del _walk(doc, parts[:-1])[parts[-1]]
    for path, item in (patch.get("append") or {}).items():
        _walk(doc, _parts(path)).append(item)
    return doc
