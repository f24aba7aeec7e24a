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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import yaml

from infra.config import NAMESPACE, UNDECRYPTED, ConfigError, RawConfig

STACK_FILE_KEYS = frozenset({"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"})


def read_stack_file(path: Path, stack: str | None = None) -> RawConfig:
    """The file as the engine hands it to the program of `stack` (None: a caller that does not say)."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
        duplicates = duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
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
        raise ConfigError(name, [f"{k}: is not a stack file key; expected one of: "
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
