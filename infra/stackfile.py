"""Read a `Pulumi.<stack>.yaml` the way the Pulumi engine hands it to a program.

The engine passes every value as a string (structured values JSON-encoded) and lists the secret
keys apart. `secure:` values cannot be decrypted offline: they become `UNDECRYPTED`, still secret.

A key given twice in one mapping is refused, as the Pulumi CLI refuses it: the CLI reads a stack file with
`marshaller.Unmarshal` (github.com/pulumi/pulumi, sdk/go/common/workspace/loaders.go, LoadProjectStackBytes),
which is gopkg.in/yaml.v3's `yaml.Unmarshal` (sdk/go/common/encoding/marshal.go, yamlMarshaler), whose decoder
is created with `uniqueKeys: true` and fails with "line %d: mapping key %#v already defined at line %d"
(go-yaml v3 decode.go, newDecoder and `(*decoder).mapping`). YAML itself requires unique keys in a mapping
(yaml.org/spec/1.2.2, 3.2.1.1). PyYAML keeps
the last of the two silently, so without this check `plan` would judge a file the CLI rejects, and a reader
would review the first value while the second is the one in force.

Anchors (`&name`), aliases (`*name`) and merge keys (`<<:`) are refused anywhere in the file: PyYAML and the CLI's
go-yaml resolve a merge each their own way (an outside audit of this repository found the value a key given both
by a merge and by the mapping, or by two merged maps, differs between the plan and the CLI, with Go map iteration
order deciding), so the deploy can use another value than the plan checked; and an alias makes one reviewed
line set values in places a reader does not see. Each is named by file, line and key path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import yaml

from infra.config import NAMESPACE, UNDECRYPTED, ConfigError, RawConfig

STACK_FILE_KEYS = frozenset({"config", "secretsprovider", "encryptedkey", "encryptionsalt"})
ESC_IMPORT = ("environment: imports a Pulumi ESC environment, whose `pulumiConfig` and `environmentVariables` reach "
              "the program and its providers unchecked by config validation and the policy pack "
              "(https://www.pulumi.com/docs/esc/guides/pulumi-iac/); expected every value in this file's `config:`, "
              "and credentials from the deploy job's GitHub environment (docs/review.md)")
"""A stack file's top-level `environment:` (Pulumi ESC) is refused: what it injects is never seen here."""


def read_stack_file(path: Path, stack: str | None = None) -> RawConfig:
    """The file as the engine hands it to the program of `stack` (None: a caller that does not say)."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        duplicates = duplicate_keys(tree) + reference_problems(text, tree)
        document: Any = yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(name, [f"no such stack file: {path}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(name, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from None

    if duplicates:
        raise ConfigError(name, duplicates)
    if not isinstance(document, dict):
        raise ConfigError(name, [f"{json.dumps(document, default=str)[:60]} is not a stack file; "
                                 "expected a mapping with a `config:` key"])
    document = cast(dict[Any, Any], document)
    unknown = sorted(str(k) for k in document if k not in STACK_FILE_KEYS)
    if unknown:
        raise ConfigError(name, [ESC_IMPORT if k == "environment" else
                                 f"{k}: is not a stack file key; expected one of: "
                                 f"{', '.join(sorted(STACK_FILE_KEYS))}" for k in unknown])
    config: Any = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(name, ["config: is not a mapping; expected `key: value` entries"])

    values: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in config.items():  # pyright: ignore[reportUnknownVariableType]
        full = config_key(str(key))  # pyright: ignore[reportUnknownArgumentType]
        plain, secret = _unwrap_secure(value)
        values[full] = _encode(plain)
        if secret:
            secret_keys.add(full)
    return RawConfig(file=name, values=values, secret_keys=frozenset(secret_keys), stack=stack)


def config_key(key: str) -> str:
    """The config key Pulumi makes of a stack file's key: `key` is the project's (`platform:key`), and the
    legacy form `ns:config:key` is `ns:key` (github.com/pulumi/pulumi, sdk/go/common/resource/config/key.go,
    ParseKey: "the legacy form ... `<namespace>:config:<name>`")."""
    if ":" not in key:
        return f"{NAMESPACE}:{key}"
    namespace, rest = key.split(":", 1)
    return f"{namespace}:{rest.removeprefix('config:')}" if rest.startswith("config:") and rest != "config:" else key


def duplicate_keys(node: yaml.Node | None, path: str = "") -> list[str]:
    """Every key given twice in one mapping, as `key path: ... (line A and line B)`. Under `config:`, two keys
    that name the same config key (`zone` and `platform:zone`, `gcp:config:project` and `gcp:project`) are
    the same key."""
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, tuple[str, int]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            raw = str(key_node.value)
            key = config_key(raw) if path == "config" else raw
            line = key_node.start_mark.line + 1
            child = key if path in ("", "config") else f"{path}.{key}"
            if key in seen:
                first_raw, first_line = seen[key]
                also = f" (as {first_raw!r} and {raw!r})" if first_raw != raw else ""
                problems.append(f"{child}: is given twice{also}, at line {first_line} and at line {line}; expected "
                                "each key once: the Pulumi CLI refuses a stack file with a duplicate key (go-yaml: "
                                "\"mapping key already defined\"), and PyYAML would keep only the second")
            else:
                seen[key] = (raw, line)
            problems += duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += duplicate_keys(item, f"{path}[{i}]")
    return problems


def _unwrap_secure(value: Any) -> tuple[Any, bool]:
    """Replace `{secure: ...}` (at any depth) with `UNDECRYPTED`; say whether any was found."""
    if isinstance(value, dict) and set(value) == {"secure"}:  # pyright: ignore[reportUnknownArgumentType]
        return UNDECRYPTED, True
    if isinstance(value, dict):
        pairs = [(str(k), _unwrap_secure(v)) for k, v in cast(dict[Any, Any], value).items()]
        return {k: v for k, (v, _) in pairs}, any(s for _, (_, s) in pairs)
    if isinstance(value, list):
        items = [_unwrap_secure(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _paths(node: yaml.Node | None, path: str, seen: dict[int, str], found: list[tuple[int, str, str]],
           where: dict[tuple[int, int], str], aliases: list[tuple[str, str]]) -> None:
    """Walk the composed tree in document order: `where` maps each node's (line, column) to its key path; a node
    reached a second time is an alias (`aliases`: its path and what it repeats, in document order); a merge key is
    `found` (line, path, what)."""
    if node is None or id(node) in seen:
        return
    seen[id(node)] = path
    where.setdefault((node.start_mark.line, node.start_mark.column), path)
    children: list[tuple[str, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            raw = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            key = config_key(raw) if path == "config" and raw != "<<" else raw
            child = key if path in ("", "config") else f"{path}.{key}"
            if raw == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                found.append((key_node.start_mark.line + 1, child, "is a YAML merge key; the CLI (go-yaml) and the "
                              "plan (PyYAML) may resolve it to different values"))
            children.append((child, value_node))
    elif isinstance(node, yaml.SequenceNode):
        children = [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]
    for child, value_node in children:
        if id(value_node) in seen:
            aliases.append((child, seen[id(value_node)] or "the document"))
        _paths(value_node, child, seen, found, where, aliases)


def reference_problems(text: str, tree: yaml.Node | None) -> list[str]:
    """Every merge key, alias and anchor of the file, as `key path: at line N, ...; expected ...`."""
    found: list[tuple[int, str, str]] = []
    where: dict[tuple[int, int], str] = {}
    aliases: list[tuple[str, str]] = []
    _paths(tree, "", {}, found, where, aliases)
    alias_lines: list[int] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        anchor = getattr(event, "anchor", None)
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            alias_lines.append(mark.line + 1 if mark is not None else 0)
        elif anchor is not None and mark is not None:
            path = where.get((mark.line, mark.column), "") or "(document)"
            found.append((mark.line + 1, path, f"carries the YAML anchor &{anchor}"))
    merges = {path for _, path, _ in found}
    for (path, of), line in zip(aliases, alias_lines, strict=False):  # both in document order
        if path not in merges:  # a merge key's alias is named with the merge
            found.append((line, path, f"is a YAML alias of {of}; a value set in one place and used in another is "
                                      "not what a reader reviews"))
    expected = ("expected plain values written out where they apply: the stack file admits no anchors, aliases or "
                "merge keys")
    return [f"{path}: at line {line}, {what}; {expected}" for line, path, what in sorted(found, key=lambda f: f[0])]
