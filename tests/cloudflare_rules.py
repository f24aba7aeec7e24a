"""A small evaluator of the Cloudflare Rules language, for the subset the edge writes: terms joined by
`and`, each optionally negated with `not`: `true`, `ssl`, `http.host eq|ne "h"`, `http.host in {"a" "b"}`,
`http.request.method eq "M"`, `starts_with(http.request.uri.path, "p")`. Anything else raises, so a
rule the evaluator does not understand can never pass a test by accident.
(https://developers.cloudflare.com/ruleset-engine/rules-language/)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TERM = re.compile(
    r'^(?P<not>not )?(?:(?P<true>true)|(?P<ssl>ssl)'
    r'|(?P<field>http\.host|http\.request\.method) (?P<op>eq|ne) "(?P<value>[^"]*)"'
    r'|http\.host in \{(?P<set>[^}]*)\}'
    r'|starts_with\(http\.request\.uri\.path, "(?P<prefix>[^"]*)"\))$')


@dataclass(frozen=True)
class Request:
    host: str
    path: str
    method: str = "GET"
    ssl: bool = True


def matches(expression: str, request: Request) -> bool:
    return all(_term(term, request) for term in expression.split(" and "))


def _term(term: str, request: Request) -> bool:
    found = _TERM.match(term)
    if found is None:
        raise ValueError(f"the evaluator does not understand {term!r}")
    if found["true"]:
        result = True
    elif found["ssl"]:
        result = request.ssl
    elif found["field"]:
        actual = request.host if found["field"] == "http.host" else request.method
        result = (actual == found["value"]) == (found["op"] == "eq")
    elif found["set"] is not None:
        result = request.host in set(re.findall(r'"([^"]*)"', found["set"]))
    else:
        result = request.path.startswith(found["prefix"])
    return result != bool(found["not"])


def cache_settings(rules: list[dict[str, object]], request: Request) -> dict[str, object]:
    """What Cloudflare applies to a request: every matching cache rule in order, later ones winning
    (https://developers.cloudflare.com/cache/how-to/cache-rules/order/)."""
    applied: dict[str, object] = {}
    for rule in rules:
        if matches(str(rule["expression"]), request):
            applied.update(rule["actionParameters"])  # pyright: ignore[reportArgumentType, reportCallIssue]
    return applied
