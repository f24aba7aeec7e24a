"""Deploys, canary steps, rollbacks and failovers as Grafana annotations, which every dashboard draws by tag
(components/observability/dashboards.py ANNOTATIONS).

Grafana's HTTP API: `POST /api/annotations` with `{"time": <epoch ms>, "tags": [...], "text": ...}` and a
service account token as `Authorization: Bearer` (grafana.com/docs/grafana/latest/developers/http_api/
annotations/; the token needs `annotations:write`). An annotation is a note for the on-call: one that cannot be
posted prints one warning and never fails what it annotates.

    python -m infra.ops.annotate --grafana-url URL --environment prod --tag deploy --text "deployed 1a2b3c"
    (token: $GRAFANA_AUTH, else $GRAFANA_TOKEN; the deploy workflow posts one per `pulumi up` of staging and prod)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping

from components.observability.dashboards import ANNOTATIONS


class Annotator:
    def __init__(self, grafana_url: str, token: str, environment: str, timeout_s: float = 5.0) -> None:
        self.url = grafana_url.rstrip("/")
        self.token = token
        self.environment = environment
        self.timeout_s = timeout_s
        self.warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], environment: str, grafana_url: str) -> Annotator:
        """The deploy's Grafana service account token (GRAFANA_AUTH, Editor: it may write annotations) when it is a
        token, else GRAFANA_TOKEN (the rollout's query token, which may be read-only: then one warning)."""
        auth = env.get("GRAFANA_AUTH", "")
        return cls(grafana_url, auth if auth and ":" not in auth else env.get("GRAFANA_TOKEN", ""), environment)

    def _warn(self, why: str) -> None:
        if not self.warned:
            print(f"warning: no Grafana annotation ({why}); the dashboards will not mark this", file=sys.stderr)
            self.warned = True

    def post(self, tag: str, text: str) -> bool:
        if not self.url or not self.token:
            self._warn("set GRAFANA_TOKEN and the stack's grafana:url to post them")
            return False
        body = json.dumps({"time": int(time.time() * 1000), "tags": [tag, self.environment], "text": text}).encode()
        request = urllib.request.Request(f"{self.url}/api/annotations", data=body, method="POST", headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s):
                return True
        except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors; the token is never printed
            self._warn(f"{self.url}/api/annotations: {type(err).__name__}")
            return False


ROLLOUT_EVENTS = ((re.compile(r"^\+\d\d:\d\d\s+ROLLED BACK"), "rollback"),
                  (re.compile(r"^\+\d\d:\d\d\s+(step \d+/\d+: |PROMOTED)"), "canary"))
"""The rollout's decision lines (infra/ops/rollout.py DecisionLog) that are events on a dashboard."""


def rollout_writer(annotator: Annotator, write: Callable[[str], None]) -> Callable[[str], None]:
    """Prints every line, as the rollout does, and annotates its steps, promotion and rollback."""

    def line(text: str) -> None:
        write(text)
        for pattern, tag in ROLLOUT_EVENTS:
            if pattern.search(text):
                annotator.post(tag, text.split("  ", 1)[-1])
                break

    return line


def main_args(argv: list[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.ops.annotate")
    parser.add_argument("--grafana-url", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--tag", required=True, help=f"one of {', '.join(ANNOTATIONS)}")
    parser.add_argument("--text", required=True)
    args = parser.parse_args(argv)
    if args.tag not in ANNOTATIONS:
        print(f"error: --tag {args.tag!r}: expected one of {', '.join(ANNOTATIONS)} (what the dashboards draw)",
              file=sys.stderr)
        return 2
    Annotator.from_env(env, args.environment, args.grafana_url).post(args.tag, args.text)
    return 0


if __name__ == "__main__":
    sys.exit(main_args(sys.argv[1:], os.environ))
