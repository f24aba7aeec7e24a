"""PLAT-DATA-010..014: Cloud SQL for PostgreSQL, the engine's database on the Postgres path (issue #26, A7, C8).

- 010 private and TLS only: no public IPv4 (`ipv4Enabled` defaults to true, so it must say false), no authorized
  networks, no Data API access from the internet, a private network, and `sslMode` ENCRYPTED_ONLY or
  TRUSTED_CLIENT_CERTIFICATE_REQUIRED (ALLOW_UNENCRYPTED_AND_ENCRYPTED, or unset, lets a client speak plain TCP:
  cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances#sslmode).
- 011 a primary is backed up daily with point-in-time recovery, keeps at least `min_backup_days` backups, is
  REGIONAL (a standby in a second zone) outside integration and staging, and every instance is protected from
  deletion twice: the provider's `deletionProtection` (default true, refused when false) and the API's
  `settings.deletionProtectionEnabled` (default false, so it must say true).
- 012 (stack) prod's primary has a read replica in another region (C8), whose `masterInstanceName` is the primary.
- 013 a built-in user's password is a generated one. CrossGuard hands a policy its inputs with secrets unwrapped
  (policies/rules/data_no_plaintext_secret_env.py), so a rule cannot see where a value came from; it judges what it
  can: a value not known until apply (a generated one) passes, a known one must be at least 32 characters (the
  platform generates 40), which a typed password rarely is. A long typed value still passes: the limit of a pack
  that sees values, not their origin.
- 014 (stack) no Cloud Run service's POSTGRES_USER is a Cloud SQL API user (cloudsqlsuperuser, CREATEROLE, CREATEDB):
  the engine's role is made in SQL by `python -m engine migrate` (`check_engine_login`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.rule import Finding, NotApplicable, Resource, Verdict, as_list, as_map, is_unknown, stack_kind

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
USER = "gcp:sql/user:User"
TLS_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})
MIN_PASSWORD = 32


def check_private(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-DATA-010."""
    if resource.type != INSTANCE:
        return NotApplicable("not a Cloud SQL instance")
    ip = as_map(resource.get("settings", "ipConfiguration"))
    problems: list[str] = []
    if ip.get("ipv4Enabled") is not False:
        problems.append(f"ipv4Enabled is {ip.get('ipv4Enabled')!r} (a public IPv4 address; the API's default is true); "
                        "expected false")
    networks = as_list(ip.get("authorizedNetworks"))
    if networks:
        problems.append(f"{len(networks)} authorized network(s) may connect from outside the VPC; expected none")
    if is_unknown(ip.get("privateNetwork")):
        pass  # the VPC's id is known once it exists; the update's policy run sees it
    elif not ip.get("privateNetwork"):
        problems.append("no privateNetwork: the instance has no address in the engine's VPC; expected one")
    if resource.get("settings", "dataApiAccess") == "ALLOW_DATA_API":
        problems.append("dataApiAccess ALLOW_DATA_API lets authorized users reach a private instance from the "
                        "internet through ExecuteSql; expected DISALLOW_DATA_API (the default)")
    mode = ip.get("sslMode")
    if not is_unknown(mode) and mode not in TLS_MODES and ip.get("requireSsl") is not True:
        problems.append(f"sslMode is {mode!r}, so clients may connect without TLS; expected ENCRYPTED_ONLY or "
                        "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    return problems


def check_protected(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-DATA-011."""
    if resource.type != INSTANCE:
        return NotApplicable("not a Cloud SQL instance")
    problems: list[str] = []
    if resource.get("deletionProtection") is False:
        problems.append("deletionProtection is false: a `pulumi destroy` or a replacement deletes the instance; "
                        "expected true")
    if resource.get("settings", "deletionProtectionEnabled") is not True:
        problems.append("settings.deletionProtectionEnabled is not true: the console, gcloud or the API may delete "
                        "the instance and its backups; expected true")
    if resource.get("masterInstanceName"):
        return problems  # a read replica: no backups of its own (SQL-REPLICA-001), promoted by the runbook
    backup = as_map(resource.get("settings", "backupConfiguration"))
    if backup.get("enabled") is not True:
        problems.append("automated backups are off; expected backupConfiguration.enabled true (C7)")
    if backup.get("pointInTimeRecoveryEnabled") is not True:
        problems.append("point-in-time recovery is off; expected backupConfiguration.pointInTimeRecoveryEnabled "
                        "true")
    kept = as_map(backup.get("backupRetentionSettings")).get("retainedBackups")
    minimum = int(config.get("min_backup_days", 7))
    if not is_unknown(kept) and (not isinstance(kept, int) or kept < minimum):
        problems.append(f"keeps {kept if kept is not None else 7} backups (the API's default is 7); expected at least "
                        f"{minimum}, one a day")
    availability = resource.get("settings", "availabilityType")
    if stack_kind(resource.stack) == "prod" and availability != "REGIONAL":
        problems.append(f"availabilityType is {availability or 'ZONAL (the default)'} in {resource.stack}; a zone's "
                        "outage stops the engine; expected REGIONAL (a standby in another zone)")
    return problems


def check_replica(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-DATA-012: in prod, every primary has a read replica in another region."""
    instances = [r for r in resources if r.type == INSTANCE]
    out: list[tuple[str, Finding]] = []
    for primary in (r for r in instances if not r.get("masterInstanceName")):
        if stack_kind(primary.stack) != "prod":
            continue
        name, region = primary.get("name"), primary.get("region")
        replicas = [r for r in instances if r.get("masterInstanceName")
                    and (is_unknown(r.get("masterInstanceName")) or r.get("masterInstanceName") == name)]
        if not replicas:
            out.append((primary.urn, f"{name!r} has no read replica; expected one in the failover region (C8), "
                                     "which a failover promotes"))
        elif not any(r.get("region") != region for r in replicas):
            out.append((primary.urn, f"{name!r}'s replicas are all in its own region {region!r}; expected one in "
                                     "another region (C8)"))
    return out


def check_user(resource: Resource, config: Mapping[str, Any]) -> Verdict:
    """PLAT-DATA-013."""
    if resource.type != USER:
        return NotApplicable("not a Cloud SQL user")
    kind = resource.get("type")
    if kind not in (None, "BUILT_IN"):
        return NotApplicable(f"a {kind} user signs in with IAM, no password")
    password = resource.get("password")
    if is_unknown(password):
        return []
    if not isinstance(password, str) or not password:
        return ["a built-in user without a password; expected a generated one (random.RandomPassword)"]
    if len(password) < MIN_PASSWORD:
        return [f"the password is {len(password)} characters, not a generated one; expected a random.RandomPassword "
                f"of at least {MIN_PASSWORD} characters"]
    return []


SERVICE = "gcp:cloudrunv2/service:Service"


def _postgres_users(service: Resource) -> list[str]:
    """The POSTGRES_USER a Cloud Run service's containers sign in as (plain values; a secret one is not a name)."""
    return [str(env.get("value")) for container in as_list(service.get("template", "containers"))
            for env in as_list(as_map(container).get("envs"))
            if as_map(env).get("name") == "POSTGRES_USER" and isinstance(as_map(env).get("value"), str)]


def check_engine_login(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[tuple[str, Finding]]:
    """PLAT-DATA-014: no Cloud Run service signs in to PostgreSQL as a Cloud SQL API user. "All users you create using
    Cloud SQL are created as part of the cloudsqlsuperuser role, and have the same set of attributes as the postgres
    user: CREATEROLE, CREATEDB, and LOGIN" (https://cloud.google.com/sql/docs/postgres/users); on PostgreSQL 15 a
    CREATEROLE role may "grant or revoke membership in" any non-superuser role
    (https://www.postgresql.org/docs/15/role-attributes.html), the schema owner's included. A workload's role is
    created in SQL by the migration step instead (engine/migrate.py). A job may sign in as one (engine-migrate, as the
    migrator, which needs CREATEROLE to create the engine's role)."""
    users = {str(r.get("name")): r for r in resources if r.type == USER and r.get("type") in (None, "BUILT_IN")
             and isinstance(r.get("name"), str)}
    out: list[tuple[str, Finding]] = []
    for service in (r for r in resources if r.type == SERVICE):
        for login in _postgres_users(service):
            if login in users:
                out.append((users[login].urn,
                            f"the Cloud SQL user {login!r} is the POSTGRES_USER of Cloud Run service "
                            f"{service.name!r}: a user the Cloud SQL API creates is a member of cloudsqlsuperuser with "
                            "CREATEROLE and CREATEDB, so it can give itself any role's rights; expected the service's "
                            "role created in SQL by its migration step (python -m engine migrate), NOCREATEROLE "
                            "NOCREATEDB, no membership"))
    return out
