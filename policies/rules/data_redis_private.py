"""PLAT-DATA-003: Redis is never reachable from the internet and always asks for a real password.

Redis is recognised by its name or its image (redis, valkey, keydb), so a renamed one is judged.
Reachable means a public port, a custom domain, a port published beyond loopback, or host
networking. The password is what the server is started with: `--requirepass` followed by a literal
of at least 16 characters, or by a variable of the service holding one (a generated value not known
until apply counts, it cannot be empty). Memorystore needs AUTH and TLS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.rule import (
    DOCKER,
    MEMORYSTORE,
    NotApplicable,
    Resource,
    Verdict,
    command_argv,
    is_public,
    is_unknown,
    role,
    service_env,
)

MIN_PASSWORD = 16


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    problems: list[str] = []
    if resource.type == MEMORYSTORE:
        if resource.props.get("authEnabled") is not True:
            problems.append("AUTH is off; expected authEnabled: true")
        if resource.props.get("transitEncryptionMode") != "SERVER_AUTHENTICATION":
            problems.append("traffic is not encrypted; expected transitEncryptionMode SERVER_AUTHENTICATION")
        return problems
    if role(resource) != "redis":
        return NotApplicable("not the Redis service")
    if is_public(resource):
        problems.append("Redis is reachable from the internet (a public port, a domain, a published port or host "
                        "networking); expected the private network only")
    if resource.type == DOCKER and resource.props.get("networkMode") not in (None, "bridge"):
        problems.append(f"Redis runs with network mode {resource.props.get('networkMode')!r}; expected the "
                        "platform's private network")
    problem = _password_problem(command_argv(resource), service_env(resource) or {})
    if problem:
        problems.append(problem)
    return problems


def _password_problem(words: list[str] | None, env: Mapping[str, Any]) -> str | None:
    if words is None:
        return "cannot read Redis's command to find its password; expected --requirepass"
    if "--requirepass" not in words or words.index("--requirepass") + 1 >= len(words):
        return "Redis runs without --requirepass; expected a password"
    value = words[words.index("--requirepass") + 1]
    reference = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value)
    if reference:
        name = reference.group(1)
        value_of: Any = env.get(name)
        if is_unknown(value_of):
            return None
        if not isinstance(value_of, str) or len(value_of) < MIN_PASSWORD:
            return (f"Redis's password ${name} is {'empty' if not value_of else 'too short'}; expected at least "
                    f"{MIN_PASSWORD} characters")
        return None
    if len(value) < MIN_PASSWORD:
        return (f"Redis's password is {'empty' if not value else 'too short'}; expected at least {MIN_PASSWORD} "
                "characters")
    return None
