"""What a stack file must say for its telemetry to reach its own Grafana (checked with the stack config).

- A stack whose engine is not on the docker backend writes metrics, traces and logs to its environment's
  Grafana Cloud stack: `platform:grafanaCloud` and the secret `platform:grafanaCloudToken`.
- A stack with a service on Railway drains Railway's logs to that stack's Loki and reads Railway's
  metrics API: `platform:grafanaCloud.lokiUrl`, `.lokiUser`. Locomotive's account token and, where the exporter is a
  Railway service, its project token are write credentials: they come from the deploy job's RAILWAY_LOG_DRAIN_TOKEN
  and RAILWAY_METRICS_TOKEN, never the stack file (infra/config.py DEPLOY_CREDENTIALS; `platform:railwayMetricsToken`
  is refused there). Only a Cloud Run sidecar exporter (the engine on Cloud Run) reads that secret from the stack.
- One Grafana organization per environment. Grafana keeps one notification policy tree per
  organization (grafana.com/docs/grafana/latest/alerting/fundamentals/notifications/notification-policies:
  "a notification policy tree" per organization), which each stack owns whole, so two environments on one
  organization overwrite each other's routing on every deploy. The organization is the provider's
  `grafana:url` and `grafana:orgId` (1 unless set); the project's other stack files are read for theirs
  (beside the stack's file: the working directory, where Pulumi runs the program and `plan` reads them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stacks.profile import ServiceName, ServiceProfile

RAILWAY_METRICS_TOKEN_ENV = "RAILWAY_METRICS_TOKEN"
"""Where the metrics exporter is a Railway service, the deploy job's variable holding its project token (#22 item 1)."""

if TYPE_CHECKING:
    from infra.spec import StackSpecV1


def organization(values: Mapping[str, Any]) -> tuple[str, str] | None:
    url = values.get("grafana:url")
    if not isinstance(url, str) or not url:
        return None
    return url.strip().lower().rstrip("/"), str(values.get("grafana:orgId", 1)).strip('"')


def _other_stacks(file: str) -> list[tuple[str, Mapping[str, Any]]]:
    path = Path(file)
    found: list[tuple[str, Mapping[str, Any]]] = []
    for other in sorted(path.parent.glob("Pulumi.*.yaml")):
        if other.resolve() == path.resolve():
            continue
        try:
            document: Any = yaml.safe_load(other.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(document, dict):
            continue
        config: Any = document.get("config")  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
        if isinstance(config, dict):
            found.append((other.name, {str(k): v for k, v in config.items()}))  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
    return found


def telemetry_config_problems(spec: StackSpecV1, services: Mapping[ServiceName, ServiceProfile], file: str,
                              values: Mapping[str, str], namespace: str) -> list[str]:
    backends = {svc.backend for svc in services.values()}
    cloud = services["engine"].backend != "docker"
    railway = "railway" in backends
    engine_on_railway = services["engine"].backend == "railway"
    needs = [
        (cloud and spec.alerts.monthly_budget_usd is None, "alerts.monthlyBudgetUsd",
         "the cost alert (M6) projects what the stack's backends bill against it"),
        (cloud and spec.grafana_cloud is None, "grafanaCloud",
         "the engine's metrics, traces and logs go to the environment's Grafana Cloud stack"),
        (cloud and spec.grafana_cloud_token is None, "grafanaCloudToken",
         "the agents and the engine write to the environment's Grafana Cloud stack with it"),
        (railway and spec.grafana_cloud is not None and spec.grafana_cloud.loki_url is None, "grafanaCloud.lokiUrl",
         "Railway keeps logs less than 90 days: they are drained to the stack's Loki (S5)"),
        (railway and spec.grafana_cloud is not None and spec.grafana_cloud.loki_user is None, "grafanaCloud.lokiUser",
         "Railway keeps logs less than 90 days: they are drained to the stack's Loki (S5)"),
        (railway and not engine_on_railway and spec.railway_metrics_token is None, "railwayMetricsToken",
         "Railway's metrics are read with a project token of this environment only (Project-Access-Token) by a "
         "sidecar of the Cloud Run telemetry service, which the deploy job's environment cannot reach"),
    ]
    problems = [f"{namespace}:{key}: is required because {why}" for missing, key, why in needs if missing]
    if engine_on_railway and spec.railway_metrics_token is not None:
        # The exporter is a Railway service: its project token can write the environment (Railway has no read-only
        # token), so it comes from the deploy job, like infra/spec.py DEPLOY_CREDENTIALS (#22 item 1).
        problems.append(f"{namespace}:railwayMetricsToken: is a write credential in the stack file; write credentials "
                        "never go in a stack file, not even as a secret (a preview decrypts the stack's config for "
                        "the pull request's code); expected it removed: the Railway metrics exporter's project token "
                        f"is set on its Railway service from the deploy job's {RAILWAY_METRICS_TOKEN_ENV} when the "
                        f"Railway provider applies: set the `staging` GitHub environment's secret "
                        f"{RAILWAY_METRICS_TOKEN_ENV} (docs/first-deploy.md)")
    ours = organization(values)
    if ours is not None:
        for name, config in _other_stacks(file):
            theirs = organization(config)
            environment = config.get(f"{namespace}:environment")
            if theirs == ours and environment != spec.environment:
                problems.append(
                    f"grafana:url: {ours[0]} (organization {ours[1]}) is already the Grafana of environment "
                    f"{environment!r} ({name}); expected one Grafana organization per environment, since each "
                    "stack owns its organization's whole notification policy tree")
    return problems
