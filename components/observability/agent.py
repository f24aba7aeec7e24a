"""The metrics agent of the cloud stacks: Prometheus in agent mode, scraping and remote-writing (L6).

One generator makes every Prometheus configuration the platform runs: the agents of the cloud stacks
(a sidecar in each Cloud Run instance of the engine, a Railway service finding every engine replica
over the private network, a Cloud Run service for the exporters that read provider APIs) and the scrape
jobs of the docker backend's own Prometheus. `tests/test_metrics_pipeline.py` runs this configuration in
Debian's `prometheus` against the real engine, with the same start-up script.

Prometheus in agent mode scrapes and remote-writes, and keeps no TSDB, rules or queries
(prometheus.io/blog/2021/11/16/agent: "--enable-feature=agent"). Every series carries the stack's
`environment`, and on Cloud Run a `replica` label: each instance's sidecar scrapes its own engine at
localhost, so without it the instances' series would be one series in the remote store. The replica is
the instance id of the metadata server (cloud.google.com/run/docs/container-contract#metadata-server,
`instance/id`), as Google's own Cloud Run Prometheus sidecar labels instances
(GoogleCloudPlatform/run-gmp-sidecar: `instanceId` from `faas.id`), put into `external_labels` by
Prometheus's `expand-external-labels` feature (prometheus.io/docs/prometheus/latest/feature_flags).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

# The image is components/observability/images/prometheus (2.x: agent mode and `expand-external-labels` are
# feature flags there, as in Debian's 2.42 that tests/test_metrics_pipeline.py runs).
AGENT_PORT = 9090
CONFIG_ENV = "PROMETHEUS_AGENT_CONFIG"
"""The configuration, as a variable: neither Railway nor Cloud Run mounts a file the program writes."""
PASSWORD_ENV = "REMOTE_WRITE_PASSWORD"
"""The remote-write token, a secret variable; written to a file Prometheus reads (`password_file`)."""
EXPORTER_PASSWORD_ENV = "RAILWAY_METRICS_PASSWORD"
"""The password the agent presents to Railway's metrics exporter (a secret variable; `password_file`): the
exporter answers no other caller, since it sends its token wherever `/probe?target=` names (#22 item 4)."""
REPLICA_ENV = "REPLICA"
METADATA_INSTANCE_ID = "http://metadata.google.internal/computeMetadata/v1/instance/id"
ReplicaSource = Literal["none", "gce-metadata"]


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job: its `job` label names the source in every alert, dashboard and absence rule."""

    name: str
    targets: tuple[str, ...] = ()
    """host:port scraped as they are."""
    dns_names: tuple[str, ...] = ()
    """Names whose every address is a target (on Railway, `<service>.railway.internal`: one per replica)."""
    dns_type: Literal["A", "AAAA"] = "AAAA"
    dns_port: int = 0
    metrics_path: str = "/metrics"
    scrape_interval: str | None = None
    """For an exporter that calls a provider's API on each scrape: less often than the global interval."""
    params: Mapping[str, tuple[str, ...]] = field(default_factory=dict[str, tuple[str, ...]])
    name_from: tuple[str, Mapping[str, str]] | None = None
    """(label, {value: name}): sets the `name` label the container alerts group by from another label."""
    name_from_pattern: tuple[str, str] | None = None
    """(label, regex with one group): sets `name` to the group where the label matches (a cgroup path)."""
    severity: Literal["page", "ticket"] = "ticket"
    """How loudly its absence is alerted (`rules.absence_alerts`)."""
    what: str = ""
    """What stops being seen when the job is absent: the absence alert's runbook names it."""
    basic_auth_user: str | None = None
    """The exporter admits only this user, with the password the agent reads from `exporter_password_file`."""


@dataclass(frozen=True)
class RemoteWrite:
    url: str
    username: str | None = None
    password_file: str | None = None
    batch_send_deadline: str | None = None
    """Left out, Prometheus's default (5 s)."""


def _interval_seconds(interval: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if interval.endswith(unit):
            return float(interval.removesuffix(unit)) * units[unit]
    raise ValueError(f"not a Prometheus duration: {interval}")


def scrape_config(job: ScrapeJob, scrape_interval: str) -> dict[str, Any]:
    config: dict[str, Any] = {"job_name": job.name, "metrics_path": job.metrics_path}
    interval = job.scrape_interval or scrape_interval
    if job.scrape_interval is not None:
        config["scrape_interval"] = job.scrape_interval
    # A scrape may last at most its interval (Prometheus refuses a longer timeout).
    config["scrape_timeout"] = interval if _interval_seconds(interval) < 10 else "10s"
    if job.basic_auth_user is not None:
        config["basic_auth"] = {"username": job.basic_auth_user, "password_file": exporter_password_file()}
    if job.params:
        config["params"] = {k: list(v) for k, v in job.params.items()}
    if job.targets:
        config["static_configs"] = [{"targets": list(job.targets)}]
    if job.dns_names:
        config["dns_sd_configs"] = [{"names": list(job.dns_names), "type": job.dns_type, "port": job.dns_port,
                                     "refresh_interval": "30s"}]
    if job.name_from is not None:
        label, names = job.name_from
        # The id itself first: a service the map does not know (one made after the agent) is still named.
        config["metric_relabel_configs"] = [{"source_labels": [label], "target_label": "name"}, *(
            {"source_labels": [label], "regex": value, "target_label": "name", "replacement": name}
            for value, name in sorted(names.items()))]
    if job.name_from_pattern is not None:
        label, regex = job.name_from_pattern
        # "replace: Match regex against the concatenated source_labels. Then, set target_label to replacement,
        # with match group references (${1}, ${2}, ...) in replacement substituted by their value. If regex does
        # not match, no replacement takes place" (prometheus.io/docs/prometheus/latest/configuration/configuration,
        # <relabel_config>); the regex is anchored at both ends.
        config.setdefault("metric_relabel_configs", []).append(
            {"source_labels": [label], "regex": regex, "target_label": "name", "replacement": "$1"})
    return config


def agent_config(jobs: Sequence[ScrapeJob], remote_write: RemoteWrite, external_labels: Mapping[str, str],
                 scrape_interval: str = "15s") -> dict[str, Any]:
    """The agent's prometheus.yml. No `rule_files` or `alerting`: an agent evaluates nothing."""
    target: dict[str, Any] = {"url": remote_write.url}
    if remote_write.username is not None:
        target["basic_auth"] = {"username": remote_write.username, "password_file": remote_write.password_file}
    if remote_write.batch_send_deadline is not None:
        target["queue_config"] = {"batch_send_deadline": remote_write.batch_send_deadline}
    return {
        "global": {"scrape_interval": scrape_interval, "external_labels": dict(external_labels)},
        "scrape_configs": [scrape_config(job, scrape_interval) for job in jobs],
        "remote_write": [target],
    }


def render(config: Mapping[str, Any]) -> str:
    text: str = yaml.safe_dump(dict(config), sort_keys=False)  # pyright: ignore[reportUnknownMemberType]
    return text


def start_script(directory: str = "/prometheus", binary: str = "/bin/prometheus", listen: str = f":{AGENT_PORT}",
                 replica: ReplicaSource = "none") -> str:
    """The agent's start-up: the configuration and the token from the environment into files, the replica
    label from the metadata server on Cloud Run (unless `$REPLICA` is set), then Prometheus in agent mode.

    POSIX sh and busybox wget, what the prom/prometheus image has (its base is quay.io/prometheus/busybox).
    """
    lines = [
        "set -eu",
        f'printf "%s" "${CONFIG_ENV}" > {directory}/agent.yml',
        f'printf "%s" "${{{PASSWORD_ENV}:-}}" > {password_file(directory)}',
        f'printf "%s" "${{{EXPORTER_PASSWORD_ENV}:-}}" > {exporter_password_file(directory)}',
    ]
    if replica == "gce-metadata":
        lines.append(f'[ -n "${{{REPLICA_ENV}:-}}" ] || '
                     f'{REPLICA_ENV}="$(wget -q -O - --header "Metadata-Flavor: Google" {METADATA_INSTANCE_ID})"')
        lines.append(f"export {REPLICA_ENV}")
    lines.append(f"exec {binary} --enable-feature=agent,expand-external-labels --config.file={directory}/agent.yml "
                 f"--storage.agent.path={directory}/wal --web.listen-address={listen}")
    return "\n".join(lines)


def password_file(directory: str = "/prometheus") -> str:
    return f"{directory}/remote-write-password"


def exporter_password_file(directory: str = "/prometheus") -> str:
    return f"{directory}/exporter-password"
