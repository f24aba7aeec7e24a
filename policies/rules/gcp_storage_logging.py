"""Cloud Storage buckets and the audit trail of reading them (issue #22 items 12 and 15).

PLAT-DATA-008: every bucket enforces public access prevention, uniform bucket-level access and object
versioning or a retention policy of 90 days at least (never both: "Retention policies and Object Versioning
are mutually exclusive", cloud.google.com/storage/docs/bucket-lock), and logs its access to another bucket of
the stack (checkov CKV_GCP_62 "Bucket should log access" and CKV_GCP_63 "Bucket should not log to itself",
bridgecrewio/checkov checkov/terraform/checks/resource/gcp/CloudStorageLogging.py and
CloudStorageSelfLogging.py). The bucket that receives the usage logs (labelled `platform-role: access-logs`)
is exempt from logging to itself and keeps what it receives 90 days at least under a retention policy (S5):
cloud.google.com/storage/docs/access-logs.

PLAT-LOG-003: a stack that holds data in Cloud Storage turns on Data Access audit logs for it:
`gcp:projects/iAMAuditConfig:IAMAuditConfig` for storage.googleapis.com (or allServices) with DATA_READ and
DATA_WRITE, nobody exempted (cloud.google.com/logging/docs/audit/configure-data-access); they land in the
_Default log bucket, which keeps them 90 days at least (S5). Usage logs record the HMAC key's requests;
audit logs name the principal.

PLAT-LOG-005: no log exclusion drops audit logs. An exclusion (project, folder, organization, billing
account, or a sink's own) must say `NOT logName:"cloudaudit.googleapis.com"` and name no audit log
otherwise: `resource.type="gcs_bucket"` alone would drop the buckets' Data Access logs too
(cloud.google.com/logging/docs/exclusions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import CLOUD_RUN, Finding, NotApplicable, Resource, Verdict, as_list, as_map, is_unknown

BUCKET = "gcp:storage/bucket:Bucket"
ACCESS_LOGS_ROLE = "access-logs"
MIN_DAYS = 90
AUDIT_CONFIGS = ("gcp:projects/iAMAuditConfig:IAMAuditConfig", "gcp:folder/iamAuditConfig:IamAuditConfig",
                 "gcp:organizations/iamAuditConfig:IamAuditConfig")
PROJECT_AUDIT = AUDIT_CONFIGS[0]
LOG_BUCKET_CONFIG = "gcp:logging/projectBucketConfig:ProjectBucketConfig"


def _is_access_log_bucket(r: Resource) -> bool:
    return as_map(r.get("labels")).get("platform-role") == ACCESS_LOGS_ROLE


def check_buckets(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-DATA-008."""
    buckets = [r for r in resources if r.type == BUCKET]
    log_buckets = {str(r.get("name")) for r in buckets if _is_access_log_bucket(r)}
    min_days = int(config.get("min_days", MIN_DAYS))
    out: list[tuple[str, Finding]] = []
    for r in buckets:
        name = r.get("name")
        if r.get("publicAccessPrevention") != "enforced":
            out.append((r.urn, f"bucket {name!r} has publicAccessPrevention {r.get('publicAccessPrevention')!r}; "
                               "expected 'enforced'"))
        if r.get("uniformBucketLevelAccess") is not True:
            out.append((r.urn, f"bucket {name!r} keeps object ACLs (uniformBucketLevelAccess not true); expected "
                               "uniform bucket-level access"))
        # A retention policy and versioning are "mutually exclusive" (cloud.google.com/storage/docs/bucket-lock):
        # a bucket holds one or the other. A retention policy of `min_days` at least keeps every object as long as
        # versioning's noncurrent versions are meant to (and longer: nothing can be deleted or replaced before).
        versioned = as_map(r.get("versioning")).get("enabled") is True
        period = as_map(r.get("retentionPolicy")).get("retentionPeriod")
        try:
            days = int(str(period)) / 86400
        except ValueError:
            days = 0
        if versioned and period is not None:
            out.append((r.urn, f"bucket {name!r} has both versioning and a retention policy, which Cloud Storage "
                               "refuses (mutually exclusive, cloud.google.com/storage/docs/bucket-lock); expected "
                               "one of them"))
        elif not versioned and days < min_days and not is_unknown(period):
            out.append((r.urn, f"bucket {name!r} does not keep object versions; expected versioning enabled or a "
                               f"retention policy of at least {min_days} days"))
        if _is_access_log_bucket(r):
            if days < min_days:
                out.append((r.urn, f"access-log bucket {name!r} keeps its logs {period!r} seconds under a retention "
                                   f"policy; expected at least {min_days} days ({min_days * 86400} s, S5)"))
            continue
        target = as_map(r.get("logging")).get("logBucket")
        if target is None:
            out.append((r.urn, f"bucket {name!r} logs no access, so a read of it leaves no record "
                               "(checkov CKV_GCP_62); "
                               "expected logging.logBucket naming the stack's access-log bucket"))
        elif target == name:
            out.append((r.urn, f"bucket {name!r} logs its access to itself (checkov CKV_GCP_63); expected the stack's "
                               "access-log bucket"))
        elif not is_unknown(target) and target not in log_buckets:
            out.append((r.urn, f"bucket {name!r} logs its access to {target!r}, not an access-log bucket of this stack "
                               "(labelled platform-role: access-logs); expected one"))
    return out


def _audits_storage(r: Resource) -> bool:
    if r.get("service") not in ("storage.googleapis.com", "allServices"):
        return False
    kinds = {as_map(c).get("logType") for c in as_list(r.get("auditLogConfigs"))
             if not as_list(as_map(c).get("exemptedMembers"))}
    return {"DATA_READ", "DATA_WRITE"} <= kinds


def check_audit(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-LOG-003."""
    min_days = int(config.get("min_days", MIN_DAYS))
    out: list[tuple[str, Finding]] = []
    for r in (r for r in resources if r.type in AUDIT_CONFIGS):
        for c in map(as_map, as_list(r.get("auditLogConfigs"))):
            if as_list(c.get("exemptedMembers")):
                out.append((r.urn, f"audit config for {r.get('service')!r} exempts {as_list(c.get('exemptedMembers'))} "
                                   f"from {c.get('logType')}; expected nobody exempted"))
    projects = {r.get("project") for r in resources if r.type == BUCKET and not _is_access_log_bucket(r)}
    for project in sorted(projects, key=str):
        first = next(r for r in resources if r.type == BUCKET and r.get("project") == project)
        audits = [r for r in resources if r.type == PROJECT_AUDIT and r.get("project") == project]
        if not any(_audits_storage(r) for r in audits):
            out.append((first.urn, f"project {project!r} holds data in Cloud Storage without Data Access audit "
                                   "logs, so "
                                   "a read of the whole database leaves no record of who read it; expected an "
                                   "IAMAuditConfig for storage.googleapis.com with DATA_READ and DATA_WRITE"))
        if any(r.type == CLOUD_RUN for r in resources):
            continue  # PLAT-LOG-001 holds the _Default bucket to 90 days wherever Cloud Run runs
        kept = [r for r in resources if r.type == LOG_BUCKET_CONFIG and r.get("project") == project
                and r.get("bucketId") == "_Default"]
        days = kept[0].get("retentionDays") if kept else None
        if not isinstance(days, int) or days < min_days:
            out.append((first.urn, f"project {project!r} keeps its audit logs {days or 30} days (the _Default bucket); "
                                   f"expected at least {min_days} (S5)"))
    return out


EXCLUSION_TYPES = ("gcp:logging/projectExclusion:ProjectExclusion", "gcp:logging/folderExclusion:FolderExclusion",
                   "gcp:logging/organizationExclusion:OrganizationExclusion",
                   "gcp:logging/billingAccountExclusion:BillingAccountExclusion")
SINK_TYPES = ("gcp:logging/projectSink:ProjectSink", "gcp:logging/folderSink:FolderSink",
              "gcp:logging/organizationSink:OrganizationSink", "gcp:logging/billingAccountSink:BillingAccountSink")
_KEEPS_AUDIT = re.compile(r'(?i)(\bNOT\s+|-)logName\s*:\s*"?[^"\s]*cloudaudit\.googleapis\.com')
_AUDIT = re.compile(r"(?i)cloudaudit|activity|data_access|system_event|policy")


def _exclusion_problem(what: str, filter_: Any) -> str | None:
    if not isinstance(filter_, str) or not filter_.strip():
        return f"{what} has filter {filter_!r}, which drops logs this rule cannot judge; expected a filter that " \
               "keeps " \
               "audit logs"
    kept = _KEEPS_AUDIT.search(filter_)
    if kept is None:
        return f"{what} drops {filter_!r}, audit logs included; expected the filter to say NOT " \
               'logName:"cloudaudit.googleapis.com" (S5)'
    rest = filter_[:kept.start()] + filter_[kept.end():]
    if _AUDIT.search(rest) or re.search(r"(?i)\bOR\b", filter_):
        return f"{what} drops {filter_!r}, which names audit logs or widens with OR; expected audit logs kept (S5)"
    return None


def check_log_exclusions(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-LOG-005."""
    if resource.type in EXCLUSION_TYPES:
        if resource.get("disabled") is True:
            return []
        problem = _exclusion_problem(f"log exclusion {resource.get('name')!r}", resource.get("filter"))
        return [problem] if problem else []
    if resource.type in SINK_TYPES:
        out: list[str] = []
        for e in map(as_map, as_list(resource.get("exclusions"))):
            if e.get("disabled") is True:
                continue
            problem = _exclusion_problem(f"sink {resource.get('name')!r} exclusion {e.get('name')!r}", e.get("filter"))
            out += [problem] if problem else []
        if resource.get("name") in ("_Required", "_Default") and resource.get("disabled") is True:
            out.append(f"sink {resource.get('name')!r} is disabled, so audit logs go nowhere; expected it enabled")
        return out
    return NotApplicable("not a log exclusion or sink")
