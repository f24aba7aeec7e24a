"""Drift: what `pulumi refresh --preview-only --json` says differs between a stack's state and its providers.

`python -m infra drift --stack S --refresh-json refresh.json` prints the issue's Markdown body (hidden marker
`<!-- drift:S -->`) and, under GitHub Actions, writes `drifted=true|false` and `resources=N` to $GITHUB_OUTPUT.

The document is the CLI's preview digest: with `--json` a dry run is rendered by `ShowPreviewDigest`
(pulumi/pulumi pkg/backend/display/display.go `ShowEvents`: `if isPreview && !streamPreview`; and
`refresh --preview-only` is a dry run, pkg/backend/httpstate/backend.go `Refresh`: `DryRun: true`) as one
`PreviewDigest` (pkg/display/json.go): `steps[]` of `PreviewStep` {`op`, `urn`, `provider`, `oldState`,
`newState` (apitype.ResourceV3: `type`, `inputs`, `outputs`, ...), `diffReasons`, `replaceReasons`,
`detailedDiff`: {path: {`kind`, `inputDiff`}}}, `diagnostics[]` {`urn`, `message`, `severity`},
`changeSummary` {op: count}, `duration`. In a refresh:

- every resource first appears with op `refresh`; when its read-back differs, its step is replaced by one with
  op `update` carrying the detailed diff, and a resource its provider no longer finds by op `delete`
  (pkg/backend/display/json.go: `if refresh && ((m.Op == deploy.OpUpdate && m.DetailedDiff != nil) ||
  m.Op == deploy.OpDelete)`; the op is `RefreshStep.ResultOp()`, pkg/resource/deploy/step.go);
- the diff is the one an `up` of the unchanged program would make, inverted: the provider's `Diff` of the
  live inputs against the state's, kinds swapped (`add` <-> `delete`; pkg/resource/deploy/step.go
  `RefreshStep.Apply`, `s.diff = diff.Invert()`; sdk/go/common/resource/plugin/provider.go `DiffKind.Invert`).
  So `delete` means the live resource lost a property the code sets, `add` that it gained one;
- a drifted resource whose provider answers no detailed diff stays `refresh` in the steps, but is counted under
  `update` in `changeSummary`: such drift is reported by count, never dropped;
- secrets are `[secret]` in both states (`massagePropertyValue`): reported as differing, never shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from infra.review.comment import COMMENT_LIMIT, Budget, text_size

DRIFT_OPS = ("update", "delete", "replace")
"""Ops of a refresh step that mean the provider's resource differs from the state."""
KIND_MEANING = {
    "update": "changed outside Pulumi",
    "update-replace": "changed outside Pulumi (an up would replace it)",
    "delete": "removed outside Pulumi",
    "delete-replace": "removed outside Pulumi (an up would replace it)",
    "add": "added outside Pulumi",
    "add-replace": "added outside Pulumi (an up would replace it)",
}


class DriftFormatError(ValueError):
    """Not a preview digest: the refresh failed or printed something else."""


@dataclass(frozen=True)
class PropertyDrift:
    path: str
    kind: str
    state: Any
    live: Any


@dataclass(frozen=True)
class ResourceDrift:
    urn: str
    type: str
    name: str
    op: str
    properties: tuple[PropertyDrift, ...]


@dataclass(frozen=True)
class DriftReport:
    stack: str
    resources: tuple[ResourceDrift, ...]
    unnamed: int
    """Drifted resources counted in `changeSummary` that no step names (their provider gave no detailed diff)."""
    errors: tuple[str, ...]

    @property
    def drifted(self) -> bool:
        return bool(self.resources) or self.unnamed > 0


_PATH_PART = re.compile(r'\.?([^.\[\]"]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def _at(value: Any, path: str) -> Any:
    """A property path as the engine writes it (`a.b[0]`, `labels["x.y"]`) into a JSON value; None if absent."""
    for match in _PATH_PART.finditer(path):
        key, index, quoted = match.groups()
        if index is not None:
            value = cast(list[Any], value)[int(index)] if isinstance(value, list) and int(index) < len(
                cast(list[Any], value)) else None
        else:
            name = key if key is not None else quoted
            value = cast(dict[str, Any], value).get(name) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def _child(value: Any, key: str | None, index: str | None) -> Any:
    if index is not None:
        items = cast(list[Any], value) if isinstance(value, list) else []
        return items[int(index)] if int(index) < len(items) else None
    return cast(dict[str, Any], value).get(key or "") if isinstance(value, dict) else None


def named_path(value: Any, path: str) -> str:
    """The path with each list index that holds a named entry (a container, an environment variable) shown by its
    name, as the pull-request comment shows it: `template.containers[commission-engine].envs[WEB_CONCURRENCY]`."""
    out = ""
    for match in _PATH_PART.finditer(path):
        key, index, quoted = match.groups()
        key = key if key is not None else quoted
        value = _child(value, key, index)
        if index is not None:
            name = cast(dict[str, Any], value).get("name") if isinstance(value, dict) else None
            out += f"[{name}]" if isinstance(name, str) else f"[{index}]"
        else:
            out += f".{key}" if out else str(key)
    return out


def _live(step: Mapping[str, Any], path: str) -> Any:
    new = cast(dict[str, Any], step.get("newState") or {})
    found = _at(new.get("inputs") or {}, path)
    return found if found is not None else _at(new.get("outputs") or {}, path)


def parse(stack: str, document: Any) -> DriftReport:
    if not isinstance(document, dict) or not isinstance(cast(dict[str, Any], document).get("steps", []), list):
        raise DriftFormatError("expected the JSON object `pulumi refresh --preview-only --json` prints (a preview "
                               "digest with `steps`)")
    digest = cast(dict[str, Any], document)
    resources: list[ResourceDrift] = []
    for step in cast(list[dict[str, Any]], digest.get("steps") or []):
        op = str(step.get("op", ""))
        urn = str(step.get("urn", ""))
        if op not in DRIFT_OPS or "::pulumi:pulumi:Stack::" in urn:
            continue
        old = cast(dict[str, Any], step.get("oldState") or {})
        detailed = cast(dict[str, dict[str, Any]], step.get("detailedDiff") or {})
        reasons = cast(list[str], step.get("diffReasons") or [])
        paths = sorted(detailed) or sorted(str(k) for k in reasons)
        properties = tuple(
            PropertyDrift(named_path(old.get("inputs") or {}, p), str(detailed.get(p, {}).get("kind", "update")),
                          _at(old.get("inputs") or {}, p), _live(step, p))
            for p in paths) if op != "delete" else ()
        resources.append(ResourceDrift(urn, str(old.get("type") or urn.rsplit("::", 2)[-2]),
                                       urn.rsplit("::", 1)[-1], op, properties))
    summary = cast(dict[str, int], digest.get("changeSummary") or {})
    counted = sum(int(summary.get(op, 0)) for op in DRIFT_OPS)
    diagnostics = cast(list[dict[str, Any]], digest.get("diagnostics") or [])
    errors = tuple(str(d.get("message", "")).strip() for d in diagnostics if d.get("severity") == "error")
    return DriftReport(stack, tuple(resources), max(0, counted - len(resources)), errors)


def marker(stack: str) -> str:
    return f"<!-- drift:{stack} -->"


def _value(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, str) and value.startswith("[secret"):
        return "(secret)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = text if len(text) <= 200 else text[:200] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


ERRORS_LIMIT = 10_000
"""The refresh's error diagnostics take at most this much of the body, each at most ERROR_CHARS."""
ERROR_CHARS = 1_000


def _resource_block(r: ResourceDrift) -> list[str]:
    what = "deleted outside Pulumi (the provider no longer finds it)" if r.op == "delete" \
        else f"{len(r.properties)} propert{'y differs' if len(r.properties) == 1 else 'ies differ'}"
    lines = [f"### `{r.type}` {r.name}: {what}"]
    if r.properties:
        lines += ["| property | state (code) | live | |", "|---|---|---|---|"]
        for p in r.properties[:50]:
            secret = any(isinstance(v, str) and v.startswith("[secret") for v in (p.state, p.live))
            state, live = ("(secret)", "(secret, differs)") if secret else (_value(p.state), _value(p.live))
            lines.append(f"| `{p.path}` | {state} | {live} | {KIND_MEANING.get(p.kind, p.kind)} |")
        if len(r.properties) > 50:
            lines.append(f"| … {len(r.properties) - 50} more | | | |")
    lines.append(f"<sub>{r.urn}</sub>")
    lines.append("")
    return lines


def _error_lines(errors: tuple[str, ...]) -> list[str]:
    """The errors section within ERRORS_LIMIT (comment.py's Budget): each error cut at ERROR_CHARS."""
    if not errors:
        return []
    budget = Budget(ERRORS_LIMIT)
    for e in errors:
        text = e.replace("```", "'''")
        text = text if len(text) <= ERROR_CHARS else f"{text[:ERROR_CHARS]}… ({len(text):,} chars)"
        if not budget.add(text):
            break
    left = len(errors) - len(budget.lines)
    more = [f"… and {left} more error{'s' * (left != 1)}, see the run"] if left else []
    return ["", "**The refresh reported errors:**", "```", *budget.lines, *more, "```"]


def render(report: DriftReport, run_url: str | None = None) -> str:
    """The issue body, within COMMENT_LIMIT (infra/review/comment.py, under GitHub's 65,536-character limit of an
    issue body, which it refuses with 422): the resources that fit, in order, then "and K more, see the run"."""
    lines = [marker(report.stack), f"## Drift in `{report.stack}`", ""]
    errors = _error_lines(report.errors)
    if not report.drifted:
        lines.append("No drift: every resource reads back as the state has it.")
    else:
        lines.append(f"`pulumi refresh --preview-only` found **{len(report.resources) + report.unnamed} "
                     f"resources** that differ from the state"
                     + (f" ([the run]({run_url}))" if run_url else "") + ". Either bring the code to what is "
                     "live (a pull request) or put it back with `pulumi up` after review; a `pulumi refresh` "
                     "alone would adopt the change into the state.")
        lines.append("")
        tail: list[str] = []
        if report.unnamed:
            plural = "s" * (report.unnamed != 1)
            tail.append(f"⚠️ {report.unnamed} more resource{plural} drifted whose provider gave no property diff "
                        "(`changeSummary` counts them): run `pulumi refresh --preview-only --diff` to see them.")
        reserve = sum(text_size(t) + 1 for t in (*lines, *tail, *errors)) + 500  # the "and K more" line and margin
        budget = Budget(COMMENT_LIMIT - reserve)
        shown = 0
        for r in report.resources:
            if not budget.add("\n".join(_resource_block(r))):
                break
            shown += 1
        lines += budget.lines
        left = len(report.resources) - shown
        if left:
            where = f"[the run]({run_url})" if run_url else "the run"
            lines += [f"… and {left} more drifted resource{'s' * (left != 1)}, see {where} "
                      "(`pulumi refresh --preview-only --diff`).", ""]
        lines += tail
    lines += errors
    return "\n".join(lines).rstrip() + "\n"


def run(stack: str, refresh_json: Path, github_output: Path | None, run_url: str | None) -> tuple[int, str]:
    """(exit code, body): 0 with the body whether or not it drifted; 2 when the file is not a digest."""
    try:
        report = parse(stack, json.loads(refresh_json.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        return 2, f"error: {refresh_json}: {err}\n"
    if github_output is not None:
        with github_output.open("a", encoding="utf-8") as out:
            out.write(f"drifted={'true' if report.drifted else 'false'}\n")
            out.write(f"resources={len(report.resources) + report.unnamed}\n")
    return 0, render(report, run_url)
