"""Logs kept 90 days (S5) where the backend keeps fewer: Railway's logs drained into Grafana Cloud Logs,
whose retention the stack declares.

Railway keeps a service's logs for a time set by its plan, shorter than S5's 90 days, and has no log
drain of its own. Locomotive, Railway's log-shipping template ("Nearly equivalent to Heroku's log drain,
but for Railway", brody192/locomotive), tails the environment's logs through Railway's API and pushes
them to Loki (`LOCOMOTIVE_WEBHOOK_MODE=loki`). It needs an account token: "Project-level tokens do not
work" (its README).

Grafana Cloud Logs keeps logs for a retention it manages; a stack asks for another through its self-serve
API: `PUT <LOKI_URL>/loki/api/v1/config/limits/<LIMIT_NAME>` with `Authorization: Bearer
<LOKI_TENANT>:<LOKI_TOKEN>` and a YAML body, reviewed by Grafana "up to 2 business days", the GET showing
`pending` until it is `applied` (grafana.com/docs/grafana-cloud/send-data/logs/config-self-serve-api).
`LogSink` is that request as a resource: the retention the sink is asked for, which services it receives,
and the state Grafana reports (`pending` or `applied`). A configured limit "cannot be removed", so deleting
the resource leaves Grafana's setting as it is. The token is read from the stack config
(`platform:grafanaCloudToken`) when the provider is configured, never an input, as the Railway provider does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

TOKEN_KEY = "platform:grafanaCloudToken"
RETENTION_LIMIT = "retention_period"


class LogSinkError(Exception):
    """A Grafana Cloud Logs API failure. Never carries the token."""


def retention_body(days: int) -> bytes:
    """Loki's `retention_period` limit, a duration (grafana.com/docs/loki/latest/operations/storage/retention)."""
    return f"{RETENTION_LIMIT}: {days * 24}h\n".encode()


class LogSinkProvider(dynamic.ResourceProvider):
    def __init__(self, timeout_s: float = 30.0) -> None:
        super().__init__()
        self._token: str | None = None
        self._timeout_s = timeout_s

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        token = req.config.get(TOKEN_KEY)
        self._token = str(token) if token else None

    def _call(self, method: str, props: dict[str, Any], body: bytes | None = None) -> dict[str, Any]:
        if not self._token:
            raise LogSinkError(f"no Grafana Cloud token: set it with `pulumi config set --secret {TOKEN_KEY}`")
        url = f"{str(props['loki_url']).rstrip('/')}/loki/api/v1/config/limits/{RETENTION_LIMIT}"
        request = urllib.request.Request(url, data=body, method=method, headers={
            "Authorization": f"Bearer {props['loki_user']}:{self._token}", "Content-Type": "application/yaml"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise LogSinkError(f"Grafana Cloud Logs {method} {RETENTION_LIMIT}: HTTP {err.code}") from None
        except (urllib.error.URLError, TimeoutError) as err:
            raise LogSinkError(f"Grafana Cloud Logs {method} {RETENTION_LIMIT}: cannot reach {url}: {err}") from None
        try:
            answer: Any = json.loads(raw) if raw else {}
        except ValueError:
            return {"raw": raw.decode(errors="replace")}
        if isinstance(answer, dict):
            return dict(answer)  # pyright: ignore[reportUnknownArgumentType]
        return {"value": answer}

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        self._call("PUT", props, retention_body(int(props["retention_days"])))
        state = self._call("GET", props)
        return {**props, "state": str(state.get("state") or state.get("status") or "pending")}

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(f"{props['loki_user']}/{RETENTION_LIMIT}", self._apply(props))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        state = self._call("GET", props)
        return dynamic.ReadResult(id_, {**props, "state": str(state.get("state") or state.get("status") or "")})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        keys = ("loki_url", "loki_user", "retention_days", "sources")
        return dynamic.DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys), replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._apply(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """A configured limit cannot be removed (the API's own warning): the setting stays."""


class LogSink(dynamic.Resource, module="observability", name="LogSink"):
    """Type token `pulumi-python:dynamic/observability:LogSink`; PLAT-LOG-002 reads `retention_days` and
    `sources` (the names of the services whose logs reach it)."""

    state: pulumi.Output[str]

    def __init__(self, name: str, *, loki_url: str, loki_user: str, retention_days: int, sources: Sequence[str],
                 drain: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LogSinkProvider(), name, {
            "loki_url": loki_url, "loki_user": loki_user, "retention_days": retention_days,
            "sources": sorted(sources), "drain": drain, "state": None}, opts)
