"""What looks like a credential: by the variable's name, and by its value whatever the name.

Names: any part that says secret, token, password, key, credential, auth, session, signing, salt,
DSN, certificate or webhook (`STRIPE_SECRET_KEY`, `DB_PASSWD`, `SENTRY_DSN`). Values: a URL with a
password in it (`postgres://user:pass@host`), a PEM private key, a JWT, or a token with a known
provider prefix (Stripe `sk_live_`, GitHub `ghp_`, Slack `xox?-`, AWS `AKIA`, Google `AIza`).
"""

from __future__ import annotations

import re
from typing import Any

_NAME = re.compile(r"(?i)(^|_)(SECRET|SECRETS|TOKEN|TOKENS|PASSWORD|PASSWD|PWD|PASS|PASSPHRASE|PRIVATE|KEY|KEYS|"
                   r"APIKEY|CREDENTIAL|CREDENTIALS|CREDS|AUTH|SESSION|COOKIE|SIGNING|SALT|DSN|CERT|WEBHOOK)($|_)")
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
_VALUE = re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|^eyJ[\w-]+\.[\w-]+\.[\w-]+$|\b(sk|rk|pk)_(live|test)_\w{8,}|"
                    r"\bgh[pousr]_\w{20,}|\bgithub_pat_\w{20,}|\bxox[abprs]-[\w-]{10,}|\bAKIA[0-9A-Z]{16}\b|"
                    r"\bAIza[\w-]{30,}|\bglpat-[\w-]{20,})")


def credential_name(name: str) -> bool:
    return bool(_NAME.search(name))


def credential_value(value: Any) -> bool:
    return isinstance(value, str) and bool(_URL_PASSWORD.search(value) or _VALUE.search(value))
