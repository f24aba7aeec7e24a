"""PLAT-LOG-001 and PLAT-LOG-002: logs are kept at least 90 days (S5) wherever the stack keeps them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import CLOUD_RUN, RAILWAY, Resource

BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"


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
    sinks = [r for r in resources if r.type in config["sink_types"]]
    if sinks:
        return []
    days = int(config["min_days"])
    return [(r.urn, f"Railway keeps logs 21 days at most; expected them shipped to a sink kept {days} days")
            for r in resources if r.type == RAILWAY]
