"""PLAT-LOG-001 and PLAT-LOG-002: logs are kept at least 90 days (S5) wherever the stack keeps them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import CLOUD_RUN, RAILWAY, Resource

BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"
LOG_SINK = "pulumi-python:dynamic/observability:LogSink"


def check_cloud_logging(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, str]]:
    days = int(config["min_days"])
    buckets = [r for r in resources if r.type == BUCKET]
    kept = {b.urn: int(b.props.get("retentionDays") or 30) for b in buckets}
    violations = [(urn, f"keeps logs {d} days; expected at least {days}") for urn, d in kept.items() if d < days]
    defaults = [b for b in buckets if b.props.get("bucketId") == "_Default"]
    for service in (r for r in resources if r.type == CLOUD_RUN):
        if not defaults:
            violations.append((service.urn, "its logs go to Cloud Logging's _Default bucket, kept 30 days unless "
                                            f"configured; expected a bucket config keeping {days} days"))
    return violations


def check_railway_sink(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every Railway service's logs reach a sink that declares at least `min_days` of retention.

    Railway keeps logs 21 days at most and has no drain of its own: a drain service tails them into a
    sink (components/observability/logs.py). A sink is a `LogSink` (or a type named in `sink_types`
    with the same properties): `retention_days` and `sources`, the Railway services whose logs reach it.
    A sink kept less than `min_days` covers nothing. Any other resource, a Cloud Logging sink among them,
    receives no Railway log and covers nothing either."""
    days = int(config["min_days"])
    sink_types = {LOG_SINK, *config.get("sink_types", ())}
    violations: list[tuple[str, str]] = []
    covered: set[str] = set()
    for sink in (r for r in resources if r.type in sink_types and r.get("sources") is not None):
        kept = sink.get("retention_days")
        if not isinstance(kept, int | float) or kept < days:
            violations.append((sink.urn, f"keeps logs {kept} days; expected at least {days}"))
            continue
        sources = sink.get("sources")
        covered |= {str(s) for s in sources} if isinstance(sources, list) else set()  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
    for service in (r for r in resources if r.type == RAILWAY):
        name = str(service.get("name"))
        if name not in covered:
            violations.append((service.urn, f"Railway keeps logs 21 days at most and these reach no sink kept {days} "
                                            f"days; expected a log drain and a sink with retention_days >= {days} "
                                            f"naming {name!r} in its sources"))
    return violations
