"""PLAT-SECRET-001: what the program generates as a credential is strong, and a secret's value stays a Pulumi secret.

A RandomPassword is every credential this program mints (origin and gate secrets, PocketBase accounts, tenant keys):
`length` is the whole password ("The length of the string desired", pulumi_random/random_password.py); 16 characters
is the floor the pack holds every generated credential to (PLAT-DATA-003 holds Redis's to the same; NIST SP 800-63B
5.1.1.2 sets 8 for memorized secrets chosen by people, not for machine credentials).

A Secret Manager version's `secretData` is "The secret data. Must be no larger than 64KiB. **Note**: This property
is sensitive and will not be displayed in the plan" (pulumi_gcp/secretmanager/secret_version.py): the Pulumi state
keeps it encrypted only when the input is a Pulumi secret. Plain text there is readable by whoever reads the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rule import NotApplicable, Resource, Verdict, is_unknown

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
MIN_LENGTH = 16


def check(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-SECRET-001."""
    if resource.type == RANDOM_PASSWORD:
        length = resource.get("length")
        minimum = max(MIN_LENGTH, int(config.get("min_length", MIN_LENGTH)))
        if not isinstance(length, int) or isinstance(length, bool) or length < minimum:
            return [f"generated credential {resource.name!r} has length {length!r}; expected at least {minimum}"]
        return []
    if resource.type == SECRET_VERSION:
        data = resource.get("secretData")
        if data is not None and not is_unknown(data) and "secretData" not in resource.secret_keys:
            return [f"secret version {resource.name!r} has secretData in plain text, which the state keeps readable; "
                    "expected a Pulumi secret (pulumi.Output.secret or a secret config value)"]
        return []
    return NotApplicable("not a generated credential or a secret version")
