"""Structured audit events of admin actions (S5): one JSON line each on the engine's output.

Each event names the tenant, the key that acted by its id (`sha256:` and the first 12 hex digits of its
hash, as the registry holds it: never the key, nothing to guess one with), the action and its target,
the record before (null when it is created) and after, and which fields changed. The platform keeps
the engine's output 90 days: Cloud Logging's `_Default` bucket on Cloud Run (which reads `severity`
and `time` from a JSON line: cloud.google.com/logging/docs/structured-logging), Railway's logs drained
to the stack's Loki.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

LOGGER = logging.getLogger("engine.audit")


def _logger() -> logging.Logger:
    if not LOGGER.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)
        LOGGER.setLevel(logging.INFO)
        LOGGER.propagate = False
    return LOGGER


def record(action: str, tenant: str, actor: str, target: str, before: Mapping[str, Any] | None,
           after: Mapping[str, Any]) -> None:
    changed = sorted(k for k in after if before is None or before.get(k) != after[k])
    event = {"event": "audit", "severity": "NOTICE", "time": dt.datetime.now(dt.UTC).isoformat(),
             "action": action, "tenant": tenant, "key_id": actor, "target": target,
             "before": dict(before) if before is not None else None, "after": dict(after), "changed": changed}
    _logger().info(json.dumps(event, sort_keys=True, default=str))
