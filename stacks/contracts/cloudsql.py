"""Cloud SQL for PostgreSQL (`gcp:sql/databaseInstance:DatabaseInstance`) and the private services access it needs
(`gcp:servicenetworking/connection:Connection`): the documented rules the platform's instances rely on.

Sources: the Cloud SQL docs (cloud.google.com/sql/docs/postgres/...) and the provider schema as pulumi-gcp 9.x
generates it (.venv/lib/python3.11/site-packages/pulumi_gcp/sql/_inputs.py, DatabaseInstanceSettingsArgsDict).
`tier_problem` is also what config validation asks of `platform:database.tier` (infra/config.py), so a stack file
with an impossible machine type fails there, naming the key, before any resource is declared.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stacks.contracts.rule import Context, Planned, Problem, Rule, get

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
CONNECTION = "gcp:servicenetworking/connection:Connection"
_SCHEMA = "pulumi-gcp sql/_inputs.py DatabaseInstanceSettingsArgsDict"
_MACHINE_TYPES = "https://cloud.google.com/sql/docs/postgres/instance-settings#machine-type-2ndgen"

TIER = re.compile(r"^db-custom-(\d+)-(\d+)$")
SHARED_CORE = ("db-f1-micro", "db-g1-small")
MAX_VCPUS = 96
MIB_PER_VCPU = (0.9 * 1024, 6.5 * 1024)
"""0.9 to 6.5 GB of memory per vCPU (GB as Compute Engine's custom machine types count them, 2^30 bytes)."""
MIN_MEMORY_MIB = 3840
MEMORY_STEP_MIB = 256
ENTERPRISE_LOG_DAYS = (1, 7)
"""Transaction log retention: "from 1-35 for Cloud SQL Enterprise Plus edition, or 1-7 for Cloud SQL Enterprise
edition" (cloud.google.com/sql/docs/postgres/backup-recovery/configure-pitr)."""


def tier_problem(tier: str) -> Problem | None:
    """Why Cloud SQL for PostgreSQL (Enterprise edition) refuses `tier`, or None when it takes it."""
    if tier in SHARED_CORE:
        return f"{tier} is a shared-core machine type, which carries no SLA and is not for production"
    match = TIER.match(tier)
    if match is None:
        return f"{tier} is not a custom machine type db-custom-<vCPUs>-<memory MiB>"
    cpus, mib = int(match[1]), int(match[2])
    if not (cpus == 1 or (cpus % 2 == 0 and 2 <= cpus <= MAX_VCPUS)):
        return f"{tier}: {cpus} vCPUs (1, or an even number from 2 to {MAX_VCPUS})"
    if mib % MEMORY_STEP_MIB:
        return f"{tier}: {mib} MiB is not a multiple of {MEMORY_STEP_MIB} MB"
    low, high = MIB_PER_VCPU
    if not low * cpus <= mib <= high * cpus:
        return f"{tier}: {mib} MiB for {cpus} vCPU(s) is outside 0.9 to 6.5 GB per vCPU"
    if mib < MIN_MEMORY_MIB:
        return f"{tier}: {mib} MiB is below the {MIN_MEMORY_MIB} MB minimum"
    return None


def _tier(resource: Planned, _: Context) -> Sequence[Problem]:
    tier = get(resource.inputs, "settings", "tier")
    problem = tier_problem(tier) if isinstance(tier, str) else None
    return [problem] if problem else []


def _edition(resource: Planned, _: Context) -> Sequence[Problem]:
    tier = get(resource.inputs, "settings", "tier")
    edition = get(resource.inputs, "settings", "edition")
    version = get(resource.inputs, "databaseVersion")
    if not isinstance(tier, str) or not tier.startswith("db-custom-"):
        return []
    if edition == "ENTERPRISE":
        return []
    major = re.match(r"^POSTGRES_(\d+)$", version) if isinstance(version, str) else None
    if edition is None and major is not None and int(major[1]) < 16:
        return []  # the API's default edition below PostgreSQL 16 is ENTERPRISE
    return [f"tier {tier} with edition {edition or 'unset'} on {version}"]


def _pitr(resource: Planned, _: Context) -> Sequence[Problem]:
    def backup(key: str) -> object:
        return get(resource.inputs, "settings", "backupConfiguration", key)

    if backup("pointInTimeRecoveryEnabled") is True and backup("enabled") is not True:
        return ["pointInTimeRecoveryEnabled without backupConfiguration.enabled"]
    days = backup("transactionLogRetentionDays")
    edition = get(resource.inputs, "settings", "edition")
    low, high = ENTERPRISE_LOG_DAYS
    if isinstance(days, int) and edition != "ENTERPRISE_PLUS" and not low <= days <= high:
        return [f"transactionLogRetentionDays {days} on edition {edition or 'ENTERPRISE'}"]
    return []


def _replica(resource: Planned, _: Context) -> Sequence[Problem]:
    if get(resource.inputs, "masterInstanceName") is None:
        return []
    problems: list[Problem] = []
    if any(get(resource.inputs, "settings", "backupConfiguration", key) is True
           for key in ("enabled", "pointInTimeRecoveryEnabled")):
        problems.append("a read replica with backupConfiguration enabled")
    if get(resource.inputs, "settings", "ipConfiguration", "privateNetwork") is None:
        problems.append("a read replica of a private-IP primary without ipConfiguration.privateNetwork")
    return problems


def _private_needs_connection(plan: Sequence[Planned], _: Context) -> list[tuple[Planned, Problem]]:
    """An instance with a private address in a VPC is created only once the VPC's peering with Google's service
    producer network exists: the connection, declared in the plan, and the instance depends on it (`dependsOn`),
    else the create races it and fails."""
    connections = [r for r in plan if r.type == CONNECTION]
    connected = {get(c.inputs, "network") for c in connections} - {None}
    urns = {str(getattr(c, "urn", c.name)) for c in connections}
    found: list[tuple[Planned, Problem]] = []
    for resource in (r for r in plan if r.type == INSTANCE):
        network = get(resource.inputs, "settings", "ipConfiguration", "privateNetwork")
        if network is None:
            continue
        # URNs the engine creates before it (infra.plan.PlannedResource.dependencies): depends_on and inputs.
        dependencies: frozenset[str] = getattr(resource, "dependencies", frozenset[str]())
        if network not in connected:
            found.append((resource, f"privateNetwork {network} has no servicenetworking Connection in the plan"))
        elif not dependencies & urns:
            found.append((resource, "the instance does not depend on the servicenetworking Connection"))
    return found


def _deletion(resource: Planned, _: Context) -> Sequence[Problem]:
    """Two switches, each guarding a different path: `deletionProtection` is the provider's own (a `pulumi destroy`
    or a replacement is refused by the provider before any API call), `settings.deletionProtectionEnabled` the
    API's (refuses deletion from every surface, console and gcloud included). A replacement (a changed
    databaseVersion, region, or a moved private network) deletes the instance, so both must be on in prod."""
    provider = get(resource.inputs, "deletionProtection")
    api = get(resource.inputs, "settings", "deletionProtectionEnabled")
    if provider is False and api is True:
        # The API refuses the delete anyway; the provider would issue it and fail half-way through a replacement.
        return ["deletionProtection false with settings.deletionProtectionEnabled true"]
    return []


_INSTANCES = frozenset({INSTANCE})
RULES: tuple[Rule, ...] = (
    Rule("SQL-TIER-001", "Cloud SQL", "a PostgreSQL tier is db-custom-<CPUs>-<MiB>: 1 or an even 2-96 vCPUs, "
         "0.9-6.5 GB per vCPU, a multiple of 256 MB, at least 3840 MB",
         f"{_MACHINE_TYPES} (\"vCPUs must be either 1 or an even number between 2 and 96. Memory must be: 0.9 to "
         "6.5 GB per vCPU; A multiple of 256 MB; At least 3.75 GB (3840 MB)\"); " + _SCHEMA
         + " (tier: \"Postgres supports only shared-core machine types, and custom machine types such as "
         "`db-custom-2-13312`\")", _INSTANCES, _tier),
    Rule("SQL-EDITION-001", "Cloud SQL", "a db-custom-* tier needs edition ENTERPRISE (PostgreSQL 16+ defaults to "
         "ENTERPRISE_PLUS)", f"{_SCHEMA} (edition: \"`db-custom-*` require `edition = \\\"ENTERPRISE\\\"`. Omitting "
         "`edition` on a PostgreSQL 16+ instance while setting a shared-core or custom `tier` therefore fails at "
         "create time with `Invalid Tier (...) for (ENTERPRISE_PLUS) Edition`\")", _INSTANCES, _edition),
    Rule("SQL-PITR-001", "Cloud SQL", "point-in-time recovery needs automated backups; Enterprise keeps 1-7 days of "
         "transaction logs", "https://cloud.google.com/sql/docs/postgres/backup-recovery/configure-pitr (\"PITR "
         "requires automated backups\"; \"Days of logs ... from 1-35 for Cloud SQL Enterprise Plus edition, or 1-7 "
         "for Cloud SQL Enterprise edition\")", _INSTANCES, _pitr),
    Rule("SQL-REPLICA-001", "Cloud SQL", "a read replica has no backups of its own and, of a private-IP primary, its "
         "own privateNetwork", "https://cloud.google.com/sql/docs/postgres/replication (\"Read replicas ... You can't "
         "configure backups on a read replica\"); https://cloud.google.com/sql/docs/postgres/replication/create-"
         "replica (a replica of a private-IP primary is created with --network)", _INSTANCES, _replica),
    Rule("SQL-NET-001", "Cloud SQL", "an instance with a private IP needs private services access in its VPC (a "
         "servicenetworking Connection) created before it",
         "https://cloud.google.com/sql/docs/postgres/configure-private-services-access (\"Before you create an "
         "instance with private IP, configure private services access\"; the provider's example "
         "sql_instance_private_ip has `depends_on = [google_service_networking_connection.private_vpc_connection]`)",
         check_plan=_private_needs_connection),
    Rule("SQL-DELETE-001", "Cloud SQL", "the provider's deletionProtection is not off while the API's "
         "deletionProtectionEnabled is on", f"{_SCHEMA} (deletion_protection_enabled: \"guard against accidental "
         "deletion across all surfaces (API, gcloud, Cloud Console and Terraform)\"); pulumi-gcp sql/"
         "database_instance.py (deletion_protection: \"Whether or not to allow the provider to destroy the "
         "instance\")", _INSTANCES, _deletion),
)
