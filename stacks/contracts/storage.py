"""Cloud Storage (`gcp:storage/bucket:Bucket`): what the service refuses in a bucket's configuration."""

from __future__ import annotations

from collections.abc import Sequence

from stacks.contracts.rule import Context, Planned, Problem, Rule, get

BUCKET = "gcp:storage/bucket:Bucket"


def _retention_or_versioning(resource: Planned, _: Context) -> Sequence[Problem]:
    versioning = get(resource.inputs, "versioning", "enabled") is True
    period = get(resource.inputs, "retentionPolicy", "retentionPeriod")
    if versioning and period is not None:
        return [f"versioning enabled and retentionPolicy.retentionPeriod {period}"]
    return []


RULES: tuple[Rule, ...] = (
    Rule("GCS-RETENTION-001", "Cloud Storage", "a bucket has a retention policy or object versioning, never both",
         "https://cloud.google.com/storage/docs/bucket-lock (\"Retention policies and Object Versioning are "
         "mutually exclusive\"; SonarSource rule S6412: \"Object versioning cannot be enabled on a bucket with a "
         "retention policy\")", frozenset({BUCKET}), _retention_or_versioning),
)
