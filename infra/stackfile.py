"""Read a `Pulumi.<stack>.yaml` the way the Pulumi engine hands it to a program.

The engine passes every value as a string (structured values JSON-encoded) and lists the secret
keys apart. `secure:` values cannot be decrypted offline: they become `UNDECRYPTED`, still secret.
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
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(name, [f"no such stack file: {path}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(name, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from None

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
        full = str(key) if ":" in str(key) else f"{NAMESPACE}:{key}"  # pyright: ignore[reportUnknownArgumentType]
        plain, secret = _unwrap_secure(value)
        values[full] = _encode(plain)
        if secret:
            secret_keys.add(full)
    return RawConfig(file=name, values=values, secret_keys=frozenset(secret_keys), stack=stack)


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
