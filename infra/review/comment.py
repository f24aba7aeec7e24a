"""The pull-request comment of one stack's offline plan (issue #24, items 3 and 4), and its full report.

`python -m infra comment --stack S --plan-json plan.json --base-json base-plan.json --exit-code N --stderr F
[--artifact-url URL] [--full]` prints Markdown on stdout. The comment puts the changes first: per changed
resource, the properties that change with their old and new values (a list of named entries, as a container's
`envs`, is diffed by name, so the engine's variables are diffed by key); a secret is shown as changed, added or
removed, never with its value nor its digest; then the stack outputs that change (a new tenant's DNS records for
its owner), the change in monthly cost (infra/review/cost.py), and, when `plan` failed, its policy findings
(exit 1) or its config errors (exit 2) instead of a diff it could not make.

Whatever the plan's size the comment fits GitHub's limit, "Body is too long (maximum is 65536 characters)"
(the 422 `createComment` answers; docs.github.com/en/rest/issues/comments, "Create an issue comment"): it is
measured in UTF-8 bytes, which are never fewer than characters or UTF-16 code units, and kept under
COMMENT_LIMIT with margin: a summary (count per type), the first changes, then "and K more" with the artifact's
link. `--full` is the report for the job summary and the artifact, kept under SUMMARY_LIMIT: "$GITHUB_STEP_SUMMARY
... The maximum size for a job summary is 1MiB" (docs.github.com/en/actions/reference/workflows-and-actions/
workflow-commands#adding-a-job-summary; over it "the upload fails and an error annotation is created").

The first line is the hidden marker `<!-- plan:STACK -->` the workflow finds its earlier comment by.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from infra.review import cost

COMMENT_LIMIT = 60_000
"""GitHub refuses a comment over 65,536 characters; this leaves room for the marker and any wrapping."""
SUMMARY_LIMIT = 1_000_000
"""A step's summary over 1 MiB (1,048,576 bytes) is not uploaded."""
SECRET = re.compile(r"^\[secret(:[0-9a-f]*)?\]$")
"""How `plan` masks a secret (infra/plan.py `mask`): `[secret:<digest>]`; Pulumi's own JSON says `[secret]`."""
FIRST_PROPERTIES = 12
"""Properties shown per changed resource in the comment; the rest are counted."""
COMMENT_VALUE = 100
FULL_VALUE = 2_000
_MISSING = object()


def marker(stack: str) -> str:
    return f"<!-- plan:{stack} -->"


# ---------------------------------------------------------------------------------------------
# The diff, property by property


def _named(items: Sequence[Any]) -> list[tuple[str, Any]] | None:
    """A list whose entries each carry a unique name (`{"name": ...}` or `"KEY=value"`) is diffed by that name,
    so one variable added in the middle is one change, not a shift of every later index."""
    if not items:
        return None
    keyed: list[tuple[str, Any]] = []
    for item in items:
        if isinstance(item, dict) and isinstance(cast(dict[str, Any], item).get("name"), str):
            entry = cast(dict[str, Any], item)
            keyed.append((entry["name"], {k: v for k, v in entry.items() if k != "name"}))
        elif isinstance(item, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", item):
            key, _, value = item.partition("=")
            keyed.append((key, value))
        else:
            return None
    names = [k for k, _ in keyed]
    return keyed if len(set(names)) == len(names) else None


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a JSON value by its path: `a.b`, `list[0]`, `envs[DATABASE_URL].value`."""
    if isinstance(value, dict):
        mapping = cast(dict[str, Any], value)
        if not mapping:
            return {path: {}} if path else {}
        out: dict[str, Any] = {}
        for key in sorted(mapping):
            out.update(flatten(mapping[key], f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list):
        items = cast(list[Any], value)
        if all(not isinstance(v, dict | list) for v in items) and _named(items) is None:
            return {path: items}  # a list of plain values reads best whole
        named = _named(items)
        out = {}
        if named is not None:
            for key, item in named:
                out.update(flatten(item, f"{path}[{key}]"))
        else:
            for i, item in enumerate(items):
                out.update(flatten(item, f"{path}[{i}]"))
        return out
    return {path: value}


def is_secret(value: Any) -> bool:
    return isinstance(value, str) and bool(SECRET.match(value))


@dataclass(frozen=True)
class PropertyChange:
    path: str
    old: Any
    new: Any

    @property
    def secret(self) -> bool:
        return is_secret(self.old) or is_secret(self.new)

    def render(self, width: int, *, in_update: bool = False) -> str:
        """`in_update`: a property of a resource that is updated, where a new one is said to be added."""
        if self.secret:
            # Never the value, nor the digest that would let one guess a short value.
            what = ("secret added" if self.old is _MISSING else "secret removed" if self.new is _MISSING
                    else "secret changed" if is_secret(self.old) and is_secret(self.new)
                    else "now a secret" if is_secret(self.new) else "no longer a secret (value hidden)")
            return f"{self.path}: ({what})"
        if self.old is _MISSING:
            return f"{self.path}: {'(added) ' if in_update else ''}{_show(self.new, width)}"
        if self.new is _MISSING:
            return f"{self.path}: {_show(self.old, width)} → (removed)"
        return f"{self.path}: {_show(self.old, width)} → {_show(self.new, width)}"


SECRET_ANYWHERE = re.compile(r"\[secret(:[0-9a-f]*)?\]")


def _masked(value: Any) -> Any:
    """`value` with every secret inside it (a list item, a mapping value, part of a string) shown as `(secret)`:
    never the digest, which would let one guess a short value."""
    if isinstance(value, str):
        return SECRET_ANYWHERE.sub("(secret)", value)
    if isinstance(value, list):
        return [_masked(v) for v in cast(list[Any], value)]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in cast(dict[Any, Any], value).items()}
    return value


def _show(value: Any, width: int) -> str:
    text = json.dumps(_masked(value), ensure_ascii=False, sort_keys=True)
    text = text.replace("```", "`\u200b``")  # never closes the code block it is shown in
    return text if len(text) <= width else f"{text[:width]}… ({len(text):,} chars)"


def property_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[PropertyChange]:
    a, b = flatten(dict(old or {})), flatten(dict(new or {}))
    return [PropertyChange(p, a.get(p, _MISSING), b.get(p, _MISSING))
            for p in sorted(a.keys() | b.keys()) if a.get(p, _MISSING) != b.get(p, _MISSING)]


@dataclass(frozen=True)
class ResourceChange:
    op: str
    """`+` create, `~` update, `-` delete."""
    type: str
    name: str
    urn: str
    properties: list[PropertyChange]


@dataclass(frozen=True)
class Review:
    stack: str
    changes: list[ResourceChange]
    outputs: list[PropertyChange]
    cost: cost.CostDiff | None
    exit_code: int
    findings: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    errors: list[str] = field(default_factory=list[str])
    waivers: int = 0
    planned: bool = True
    """False when `plan` wrote no plan (config errors, a pack that failed): there is no diff to show."""

    def counts(self) -> Counter[str]:
        return Counter(c.op for c in self.changes)


def _resources(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["urn"]: r for r in document.get("resources", []) if r.get("custom", True)}


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[ResourceChange]:
    """Custom resources by URN (components only group them), as `plan --diff-against` compares them."""
    old, new = _resources(before), _resources(after)
    changes: list[ResourceChange] = []
    for urn in sorted(new.keys() - old.keys()):
        changes.append(ResourceChange("+", new[urn]["type"], new[urn]["name"], urn,
                                      property_changes(None, new[urn].get("inputs"))))
    for urn in sorted(old.keys() & new.keys()):
        props = property_changes(old[urn].get("inputs"), new[urn].get("inputs"))
        if props:
            changes.append(ResourceChange("~", new[urn]["type"], new[urn]["name"], urn, props))
    for urn in sorted(old.keys() - new.keys()):
        changes.append(ResourceChange("-", old[urn]["type"], old[urn]["name"], urn, []))
    # Updates first (they change what runs), then creates, then deletes.
    order = {"~": 0, "+": 1, "-": 2}
    return sorted(changes, key=lambda c: order[c.op])


# ---------------------------------------------------------------------------------------------
# What `plan` said when it failed


_DIFF_START, _DIFF_END = "Changes against the earlier plan:", re.compile(r"^Diff: \d+ to add")


def plan_errors(stderr: str) -> list[str]:
    """The error lines of `plan`'s stderr, without the diff it also writes there (`--json --diff-against`)."""
    lines: list[str] = []
    in_diff = False
    for line in stderr.splitlines():
        if line == _DIFF_START:
            in_diff = True
            continue
        if in_diff:
            in_diff = not _DIFF_END.match(line)
            continue
        if line.strip():
            lines.append(line.rstrip())
    return lines


def load_plan(path: Path | None) -> dict[str, Any] | None:
    """A plan `plan --json` wrote; None when it wrote none (it exits 2 before declaring anything)."""
    if path is None or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        return None
    try:
        document: Any = json.loads(text)
    except ValueError:
        return None
    return cast(dict[str, Any], document) if isinstance(document, dict) and "resources" in document else None


def review(stack: str, plan: Mapping[str, Any] | None, base: Mapping[str, Any] | None, exit_code: int,
           stderr: str) -> Review:
    base = base or {"resources": []}
    policy = cast(dict[str, Any], (plan or {}).get("policy") or {})
    findings = sorted(cast(list[dict[str, Any]], policy.get("violations", [])),
                      key=lambda f: (f.get("level") != "mandatory", f.get("rule", ""), f.get("urn", "")))
    if plan is None:
        return Review(stack, [], [], None, exit_code, findings, plan_errors(stderr), 0, planned=False)
    return Review(stack, diff(base, plan), property_changes(base.get("outputs"), plan.get("outputs")),
                  cost.diff(cost.price(base), cost.price(plan)), exit_code, findings,
                  plan_errors(stderr) if exit_code else [], len(policy.get("waivers", [])))


# ---------------------------------------------------------------------------------------------
# Rendering within a size


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _code(text: str) -> str:
    return text.replace("```", "`\u200b``")


class _Budget:
    """Lines appended while they fit; what does not is counted for the closing "and K more"."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lines: list[str] = []

    def fits(self, text: str) -> bool:
        return self.used + _size(text) + 1 <= self.limit

    def add(self, text: str) -> bool:
        if not self.fits(text):
            return False
        self.lines.append(text)
        self.used += _size(text) + 1
        return True


Budget = _Budget
"""For other bodies posted to GitHub under the same limit (infra/review/drift.py's issue)."""
text_size = _size


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else "(stack)"


def _headline(r: Review) -> str:
    counts = r.counts()
    if not r.planned:
        state = {1: "the policy pack failed", 2: "invalid config: nothing was planned"}.get(
            r.exit_code, f"`plan` failed (exit {r.exit_code})")
        return f"### ❌ Offline plan `{r.stack}`: {state}"
    icon = "✅" if r.exit_code == 0 else "❌"
    verdict = {0: "", 1: " · **blocked by the policy pack**", 2: " · **refused: see the errors**"}.get(
        r.exit_code, f" · `plan` exited {r.exit_code}")
    money = f" · {cost.headline(r.cost)}" if r.cost is not None else ""
    return (f"### {icon} Offline plan `{r.stack}`: {counts['+']} to add, {counts['~']} to change, "
            f"{counts['-']} to remove{money}{verdict}")


def _type_table(r: Review, limit: int) -> list[str]:
    per: dict[str, Counter[str]] = {}
    for c in r.changes:
        per.setdefault(c.type, Counter())[c.op] += 1
    if not per:
        return []
    rows = sorted(per.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    lines = ["| type | add | change | remove |", "|---|--:|--:|--:|"]
    lines += [f"| `{t}` | {n['+'] or ''} | {n['~'] or ''} | {n['-'] or ''} |" for t, n in rows[:limit]]
    if len(rows) > limit:
        rest = Counter[str]()
        for _, n in rows[limit:]:
            rest.update(n)
        lines.append(f"| {len(rows) - limit} more types | {rest['+'] or ''} | {rest['~'] or ''} | {rest['-'] or ''} |")
    return lines


def _resource_lines(c: ResourceChange, properties: int, width: int) -> list[str]:
    lines = [f"{c.op} {c.type}  {c.name}"]
    shown = c.properties[:properties]
    lines += [f"{c.op}     {p.render(width, in_update=c.op == '~')}" for p in shown]
    if len(c.properties) > len(shown):
        lines.append(f"{c.op}     … and {len(c.properties) - len(shown)} more properties")
    return [_code(line) for line in lines]


def render(r: Review, *, artifact_url: str | None = None, full: bool = False) -> str:
    """The comment (or with `full`, the job summary's report), always within its limit."""
    limit = SUMMARY_LIMIT if full else COMMENT_LIMIT
    width = FULL_VALUE if full else COMMENT_VALUE
    properties = 1_000_000 if full else FIRST_PROPERTIES
    where = (f"[the plan's artifact]({artifact_url})" if artifact_url else "the plan's artifact") + \
        " and the job summary"
    # What must always fit is reserved first: the head, the failure's findings or errors (capped), the footer.
    head = [marker(r.stack), _headline(r), ""]
    footer = ["", f"<sub>Offline plan under Pulumi's mock engine (`python -m infra plan`). Policy findings here come "
                  f"from the pull request's own policy pack and inform only: the verdict is the `policy` check, "
                  f"which judges this plan with the base branch's pack. The authoritative diff is `pulumi preview`. "
                  f"Full plan: {where}.</sub>"]
    out = _Budget(limit - 300)  # margin for the footer's link
    for line in head:
        out.add(line)

    if r.errors:
        title = {2: "**Config errors** (nothing was declared; each names the file, key path and value):",
                 1: "**The policy pack failed:**"}.get(r.exit_code, "**`plan` said:**") \
            if not r.planned else "**`plan` refused the change:**"
        out.add(title)
        out.add("```")
        cap = 200 if not full else 5_000
        for i, line in enumerate(r.errors[:cap]):
            if not out.add(_code(line if len(line) <= 2_000 else line[:2_000] + "…")):
                out.add(f"… and {len(r.errors) - i} more lines: see {where}")
                break
        else:
            if len(r.errors) > cap:
                out.add(f"… and {len(r.errors) - cap} more lines")
        out.add("```")
        out.add("")

    mandatory = [f for f in r.findings if f.get("level") == "mandatory"]
    if r.findings:
        out.add(f"**Policy findings: {len(r.findings)}** ({len(mandatory)} mandatory"
                f"{f', {r.waivers} waived by the stack file' if r.waivers else ''}):")
        cap = 40 if not full else 10_000
        for i, f in enumerate(r.findings[:cap]):
            line = (f"- {'❌' if f.get('level') == 'mandatory' else '⚠️'} **{f.get('rule')}** "
                    f"[{f.get('level')}] `{_short(str(f.get('urn') or ''))}`: {f.get('message', '')}")
            if not out.add(line[:1_500]):
                out.add(f"- … and {len(r.findings) - i} more: see {where}")
                break
        else:
            if len(r.findings) > cap:
                out.add(f"- … and {len(r.findings) - cap} more: see {where}")
        out.add("")

    if r.planned:
        table = _type_table(r, 25 if not full else 10_000)
        if table:
            out.add("<details><summary>Changes per resource type</summary>")
            out.add("")
            for line in table:
                out.add(line)
            out.add("")
            out.add("</details>")
            out.add("")
        if r.cost is not None:
            for line in cost.render(r.cost, full=full):
                out.add(line)
            out.add("")
        if r.changes:
            out.add("**Changes** (properties with old → new values; secrets only as changed):")
            out.add("```diff")
            left = len(r.changes)
            for c in r.changes:
                lines = _resource_lines(c, properties, width)
                # Room for the closing fence and the "and K more" line.
                if not all(out.fits(x) for x in lines) or out.used + sum(_size(x) + 1 for x in lines) > out.limit - 400:
                    break
                for line in lines:
                    out.add(line)
                left -= 1
            out.add("```")
            if left:
                rest = Counter(c.op for c in r.changes[len(r.changes) - left:])
                ops = ", ".join(f"{rest[op]} {word}" for op, word in (("~", "to change"), ("+", "to add"),
                                                                       ("-", "to remove")) if rest[op])
                out.add(f"… and **{left} more changes** ({ops}): see {where}.")
            out.add("")
        else:
            out.add("No resource changes.")
            out.add("")
        if r.outputs:
            out.add("**Stack outputs that change:**")
            out.add("```diff")
            for i, p in enumerate(r.outputs):
                line = _code(f"{'+' if p.old is _MISSING else '-' if p.new is _MISSING else '~'} {p.render(width * 3)}")
                if out.used + _size(line) > out.limit - 200 or not out.add(line):
                    out.add(f"… and {len(r.outputs) - i} more outputs: see the job summary")
                    break
            out.add("```")
    body = "\n".join([*out.lines, *footer]) + "\n"
    assert _size(body) < limit + 100, "the renderer overran its budget"
    return body


def render_files(stack: str, plan_json: Path | None, base_json: Path | None, exit_code: int,
                 stderr_file: Path | None, artifact_url: str | None, full: bool) -> str:
    stderr = stderr_file.read_text(encoding="utf-8", errors="replace") if stderr_file and stderr_file.is_file() else ""
    return render(review(stack, load_plan(plan_json), load_plan(base_json), exit_code, stderr),
                  artifact_url=artifact_url, full=full)


