"""Secret Manager (`gcp:secretmanager/secret:Secret`): what a secret id may be."""

from __future__ import annotations

import re
from collections.abc import Sequence

from stacks.contracts.rule import Context, Planned, Problem, Rule, get

SECRET = "gcp:secretmanager/secret:Secret"
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def _secret_id(resource: Planned, _: Context) -> Sequence[Problem]:
    secret_id = get(resource.inputs, "secretId")
    return [f"secretId {secret_id!r}"] if isinstance(secret_id, str) and not SECRET_ID.match(secret_id) else []


RULES: tuple[Rule, ...] = (
    Rule("SM-ID-001", "Secret Manager", "a secret id is 1-255 letters, digits, '-' and '_'",
         "https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/create (secretId: "
         "\"A secret ID is a string with a maximum length of 255 characters and can contain uppercase and "
         "lowercase letters, numerals, and the hyphen (-) and underscore (_) characters\")",
         frozenset({SECRET}), _secret_id),
)
