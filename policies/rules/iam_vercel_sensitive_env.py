"""PLAT-IAM-005: Vercel variables: a credential is sensitive, and none is public.

Deny by default: a variable stays readable (not sensitive) only when neither its name nor its value
looks like a credential and its value is known. `NEXT_PUBLIC_*` variables are inlined into the
JavaScript sent to browsers (nextjs.org/docs/app/guides/environment-variables#bundling-environment-
variables-for-the-browser), so no credential may be one, sensitive or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict, as_list, as_map, is_unknown
from policies.secrets import credential_name, credential_value

VARIABLE_TYPES = ("vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable",
                  "vercel:index/projectEnvironmentVariables:ProjectEnvironmentVariables",
                  "vercel:index/sharedEnvironmentVariable:SharedEnvironmentVariable")


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    if resource.type not in VARIABLE_TYPES:
        return NotApplicable("not a Vercel environment variable")
    entries = as_list(resource.props.get("variables")) if resource.type.endswith("Variables") else [resource.props]
    problems: list[str] = []
    for entry in entries:
        problems += _variable(as_map(entry))
    return problems


def _variable(entry: Mapping[str, Any]) -> list[str]:
    key, value, sensitive = str(entry.get("key", "")), entry.get("value"), entry.get("sensitive")
    looks_secret = credential_name(key) or credential_value(value)
    if key.startswith("NEXT_PUBLIC_"):
        if looks_secret or sensitive is True:
            return [f"{key} is compiled into the browser bundle, so it must hold nothing secret; expected the "
                    "credential in a server-only variable (no NEXT_PUBLIC_ prefix), marked sensitive"]
        if is_unknown(value):
            return [f"{key} is not known until apply, so it cannot be shown to hold nothing secret; expected a "
                    "known value"]
        return []
    if sensitive is True:
        return []
    if looks_secret:
        return [f"{key} holds a credential but is not marked sensitive; expected sensitive: true"]
    if is_unknown(value):
        return [f"{key} is not known until apply and not sensitive; expected it sensitive, or a known plain value"]
    return []
