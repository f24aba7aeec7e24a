"""PLAT-DATA-010..014: Cloud SQL for PostgreSQL, the engine's database on the Postgres path (issue #26, A7, C8).

- 010 private and TLS only: no public IPv4 (`ipv4Enabled` defaults to true, so it must say false), no authorized
  networks, no Data API access from the internet, a private network, and `sslMode` ENCRYPTED_ONLY or
  TRUSTED_CLIENT_CERTIFICATE_REQUIRED (ALLOW_UNENCRYPTED_AND_ENCRYPTED, or unset, lets a client speak plain TCP:
  cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances#sslmode). Every other ipConfiguration input is
  reviewed (IP_KEYS) and an unknown one refused: no Private Service Connect, no private path for Google services, the
  per-instance server CA.
- 011 a primary is backed up daily with point-in-time recovery, keeps at least `min_backup_days` backups (counted
  as COUNT) and `min_log_retention_days` days of transaction logs, is
  REGIONAL (a standby in a second zone) outside integration and staging, and every instance is protected from
  deletion twice: the provider's `deletionProtection` (default true, refused when false) and the API's
  `settings.deletionProtectionEnabled` (default false, so it must say true).
- 012 (stack) prod's primary has a read replica in another region (C8), whose `masterInstanceName` is the primary.
- 013 a built-in user's password is a generated one; no IAM database user or `cloudsql.iam_authentication` flag (the
  platform declares none), and no `rootPassword` on an instance (the `postgres` superuser's). CrossGuard hands a
  policy its inputs with secrets unwrapped (policies/rules/data_no_plaintext_secret_env.py), so a rule cannot see
  where a value came from; it judges what it can: a value not known until apply (a generated one) passes, a known
  one must be at least 32 characters (the platform generates 40), which a typed password rarely is. A long typed
  value still passes: the limit of a pack that sees values, not their origin.
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
    # sslMode alone decides: "The value of sslMode has priority over the value of requireSsl"
    # (cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances#ipconfiguration), and pulumi_gcp 8 has no
    # require_ssl input at all (sql/_inputs.py), so `requireSsl: true` beside ALLOW_UNENCRYPTED_AND_ENCRYPTED excuses
    # nothing.
    if not is_unknown(mode) and mode not in TLS_MODES:
        problems.append(f"sslMode is {mode!r}, so clients may connect without TLS; expected ENCRYPTED_ONLY or "
                        "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    problems += _unreviewed_paths(ip)
    return problems


# Every settings.ipConfiguration input of pulumi_gcp 8 (sql/_inputs.py: IpConfigurationArgsDict),
# each judged: allocatedIpRange (a range of the VPC's own peering) and serverCertificateRotationMode (the server
# certificate rotates under the same CA) are harmless; the rest are checked above or in _unreviewed_paths. A key not
# in this list has not been reviewed and is refused (#22: deny what is not reviewed); `__defaults` is the Terraform
# bridge's bookkeeping of applied defaults, not a setting.
IP_KEYS = frozenset({"allocatedIpRange", "authorizedNetworks", "customSubjectAlternativeNames",
                     "enablePrivatePathForGoogleCloudServices", "ipv4Enabled", "privateNetwork", "pscConfigs",
                     "serverCaMode", "serverCaPool", "serverCertificateRotationMode", "sslMode"})
# GOOGLE_MANAGED_INTERNAL_CA is "an internal CA dedicated to each Cloud SQL instance"; GOOGLE_MANAGED_CAS_CA is a
# regional CA shared by every instance in the region and CUSTOMER_MANAGED_CAS_CA a CA pool that whoever holds it can
# issue from (cloud.google.com/sql/docs/postgres/authorize-ssl#ca-hierarchies): with either, a certificate the engine's
# CA check accepts no longer proves it reached this instance. Unset is the per-instance CA (the API's
# CA_MODE_UNSPECIFIED "is effectively the same as GOOGLE_MANAGED_INTERNAL_CA").
CA_MODES = frozenset({"GOOGLE_MANAGED_INTERNAL_CA"})


def _unreviewed_paths(ip: Mapping[str, Any]) -> list[str]:
    """The ways into the instance besides its private address, and the server identity the engine checks."""
    problems = [f"ipConfiguration.{key} is not a setting this rule has reviewed; expected only "
                f"{', '.join(sorted(IP_KEYS))}" for key in ip if key not in IP_KEYS and not key.startswith("__")]
    # Private Service Connect: "This instance can be connected to with PSC from any network in these projects"
    # (pulumi_gcp sql/_inputs.py, DatabaseInstanceSettingsIpConfigurationPscConfigArgsDict): another project's VPC
    # reaches the database as authorized networks would. The platform connects over private services access only, so
    # every PSC setting that is on (pscEnabled, allowedConsumerProjects, pscAutoConnections into other networks, an
    # outbound networkAttachmentUri, the auto DNS and policy switches) is refused; an entry that says off passes.
    for index, psc in enumerate(as_list(ip.get("pscConfigs"))):
        for key, value in as_map(psc).items():
            if not key.startswith("__") and value not in (None, False, "", []):
                shown = "not known until apply" if is_unknown(value) else repr(value)
                problems.append(f"ipConfiguration.pscConfigs[{index}].{key} is {shown}: Private Service Connect lets "
                                "networks in other projects reach the instance; expected PSC off (no pscConfigs)")
    if ip.get("enablePrivatePathForGoogleCloudServices") not in (None, False):
        problems.append("ipConfiguration.enablePrivatePathForGoogleCloudServices lets Google Cloud services such as "
                        "BigQuery read the data over a private connection; expected false (unset)")
    mode = ip.get("serverCaMode")
    if mode is not None and mode not in CA_MODES:
        problems.append(f"ipConfiguration.serverCaMode is {mode!r}: a CA shared with other instances or held elsewhere "
                        "signs the server certificate the engine trusts; expected GOOGLE_MANAGED_INTERNAL_CA (unset)")
    for key in ("serverCaPool", "customSubjectAlternativeNames"):
        if ip.get(key) not in (None, "", []):
            problems.append(f"ipConfiguration.{key} is set: a customer-managed CA pool signs the server certificate; "
                            "expected none (the per-instance Google CA)")
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
    retention = as_map(backup.get("backupRetentionSettings"))
    kept = retention.get("retainedBackups")
    unit = retention.get("retentionUnit")
    if not is_unknown(unit) and unit not in (None, "COUNT"):
        # The API defines COUNT as the only unit (admin-api/rest/v1/instances#backupretentionsettings).
        problems.append(f"backupRetentionSettings.retentionUnit is {unit!r}; expected COUNT, the only unit the API "
                        "defines")
    # PITR replays the write-ahead log kept transactionLogRetentionDays days ("from 1-7", 7 when unset: pulumi_gcp
    # sql/_inputs.py and cloud.google.com/sql/docs/postgres/backup-recovery/pitr): fewer days shrink the window a
    # restore can reach below the week of backups.
    logs = backup.get("transactionLogRetentionDays")
    minimum_logs = int(config.get("min_log_retention_days", 7))
    if backup.get("pointInTimeRecoveryEnabled") is True and logs is not None and not is_unknown(logs) and (
            not isinstance(logs, int) or logs < minimum_logs):
        problems.append(f"backupConfiguration.transactionLogRetentionDays is {logs!r}: point-in-time recovery reaches "
                        f"back only that many days; expected at least {minimum_logs}")
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
    if resource.type == INSTANCE:
        return _instance_sign_in(resource)
    if resource.type != USER:
        return NotApplicable("not a Cloud SQL user")
    kind = resource.get("type")
    if kind not in (None, "BUILT_IN"):
        # CLOUD_IAM_USER / CLOUD_IAM_SERVICE_ACCOUNT / CLOUD_IAM_GROUP (pulumi_gcp sql/user.py): a Google identity
        # signs in with an IAM token (cloud.google.com/sql/docs/postgres/iam-authentication); the platform declares
        # no IAM database user, so one is a sign-in nobody reviewed.
        return [f"a {kind} user signs in with a Google identity the platform does not declare; expected BUILT_IN "
                "users with generated passwords"]
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


def _instance_sign_in(resource: Resource) -> list[str]:
    """The instance's own ways to sign in: the `postgres` user's password and IAM database authentication."""
    problems: list[str] = []
    # rootPassword: "Initial root password. Can be updated" (pulumi_gcp sql/database_instance.py), the password of
    # `postgres`, a cloudsqlsuperuser member (cloud.google.com/sql/docs/postgres/users). The platform sets none (the
    # migrator is a gcp.sql.User with a generated password; the engine's role is made in SQL), so any value, typed or
    # not, is refused; the value is never repeated in the message.
    for key in ("rootPassword", "rootPasswordWo"):
        if resource.get(key) not in (None, ""):
            problems.append(f"{key} sets the password of the `postgres` superuser in the stack; expected none (users "
                            "are gcp.sql.User resources with generated passwords)")
    # cloudsql.iam_authentication=on lets IAM principals sign in as CLOUD_IAM_* users
    # (cloud.google.com/sql/docs/postgres/iam-authentication, .../flags); the platform declares no IAM database user.
    for flag in as_list(resource.get("settings", "databaseFlags")):
        flag = as_map(flag)
        if flag.get("name") == "cloudsql.iam_authentication" and str(flag.get("value")).lower() != "off":
            problems.append(f"the database flag cloudsql.iam_authentication is {flag.get('value')!r}: Google "
                            "identities may sign in, and the platform declares none; expected it unset or off")
    return problems
