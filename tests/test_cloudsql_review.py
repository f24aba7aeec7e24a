"""Issue #26 item 2 / #22 (deny what is not reviewed): the outside audit's probes of PLAT-DATA-010/011/013 on prod's
planned Cloud SQL primary (`platform:database: {engine: postgres}`), each sent to the pack over Pulumi's Analyzer
protocol as the engine would send it, with the compliant variants beside them.

- Private Service Connect (`settings.ipConfiguration.pscConfigs`) lets "any network in these projects" connect
  (pulumi_gcp sql/_inputs.py, DatabaseInstanceSettingsIpConfigurationPscConfigArgsDict.allowed_consumer_projects).
- `rootPassword` is the `postgres` user's password (pulumi_gcp sql/database_instance.py: "Initial root password").
- `cloudsql.iam_authentication=on` admits IAM principals as database users
  (https://cloud.google.com/sql/docs/postgres/iam-authentication); the platform declares none.
- PITR replays transaction logs kept `transactionLogRetentionDays` days, "from 1-7" (pulumi_gcp sql/_inputs.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.analyzer import PolicyPackProcess
from infra.plan import Plan
from tests.conftest import plan_of
from tests.test_cloudsql import SQL, USER, _inputs, _mandatory, _postgres_stack, _set, _weaken  # pyright: ignore[reportPrivateUsage]

Change = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_of(_postgres_stack(tmp_path_factory.mktemp("pg")), "prod")


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        process.configure()
        yield process


def _ip(**values: Any) -> Change:
    def change(props: dict[str, Any]) -> None:
        props["settings"]["ipConfiguration"].update(values)
    return change


def _flags(*extra: dict[str, str]) -> Change:
    def change(props: dict[str, Any]) -> None:
        props["settings"]["databaseFlags"] = [*props["settings"]["databaseFlags"], *extra]
    return change


REFUSED: list[tuple[str, str, Change, str, str]] = [
    ("PSC to a foreign project", "postgres-primary",
     _ip(pscConfigs=[{"pscEnabled": True, "allowedConsumerProjects": ["attacker-project"]}]), "PLAT-DATA-010",
     "allowedConsumerProjects"),
    ("PSC enabled without a list", "postgres-primary", _ip(pscConfigs=[{"pscEnabled": True}]), "PLAT-DATA-010",
     "pscEnabled"),
    ("PSC consumer projects on a replica", "postgres-replica",
     _ip(pscConfigs=[{"allowedConsumerProjects": ["attacker-project"]}]), "PLAT-DATA-010", "allowedConsumerProjects"),
    ("PSC auto connections", "postgres-primary",
     _ip(pscConfigs=[{"pscEnabled": True, "pscAutoConnections": [
         {"consumerNetwork": "projects/attacker/global/networks/n", "consumerServiceProjectId": "attacker"}]}]),
     "PLAT-DATA-010", "pscAutoConnections"),
    ("PSC outbound network attachment", "postgres-primary",
     _ip(pscConfigs=[{"networkAttachmentUri": "projects/attacker/regions/us-central1/networkAttachments/a"}]),
     "PLAT-DATA-010", "networkAttachmentUri"),
    ("Google services' private path", "postgres-primary", _ip(enablePrivatePathForGoogleCloudServices=True),
     "PLAT-DATA-010", "enablePrivatePathForGoogleCloudServices"),
    ("customer-managed server CA", "postgres-primary",
     _ip(serverCaMode="CUSTOMER_MANAGED_CAS_CA", serverCaPool="projects/attacker/locations/us-central1/caPools/p",
         customSubjectAlternativeNames=["db.example.com"]), "PLAT-DATA-010", "serverCaMode"),
    ("shared regional server CA", "postgres-primary", _ip(serverCaMode="GOOGLE_MANAGED_CAS_CA"), "PLAT-DATA-010",
     "serverCaMode"),
    ("requireSsl true does not excuse sslMode ALLOW", "postgres-primary",
     _ip(sslMode="ALLOW_UNENCRYPTED_AND_ENCRYPTED", requireSsl=True), "PLAT-DATA-010", "without TLS"),
    ("an unreviewed ipConfiguration key", "postgres-primary", _ip(someFutureExposure=True), "PLAT-DATA-010",
     "someFutureExposure"),
    ("typed root password", "postgres-primary", _set("rootPassword", value="Winter2026!"), "PLAT-DATA-013",
     "rootPassword"),
    ("long typed root password", "postgres-primary", _set("rootPassword", value="x" * 48), "PLAT-DATA-013",
     "rootPassword"),
    ("IAM authentication flag", "postgres-primary", _flags({"name": "cloudsql.iam_authentication", "value": "on"}),
     "PLAT-DATA-013", "cloudsql.iam_authentication"),
    ("IAM user", "postgres-user-migrator", _set("type", value="CLOUD_IAM_USER"), "PLAT-DATA-013", "CLOUD_IAM_USER"),
    ("IAM service account user", "postgres-user-migrator", _set("type", value="CLOUD_IAM_SERVICE_ACCOUNT"),
     "PLAT-DATA-013", "CLOUD_IAM_SERVICE_ACCOUNT"),
    ("IAM group", "postgres-user-migrator", _set("type", value="CLOUD_IAM_GROUP"), "PLAT-DATA-013", "CLOUD_IAM_GROUP"),
    ("transaction logs kept 1 day", "postgres-primary",
     _set("settings", "backupConfiguration", "transactionLogRetentionDays", value=1), "PLAT-DATA-011",
     "transactionLogRetentionDays"),
    ("backups counted in another unit", "postgres-primary",
     _set("settings", "backupConfiguration", "backupRetentionSettings", "retentionUnit", value="DAYS"),
     "PLAT-DATA-011", "retentionUnit"),
]

COMPLIANT: list[tuple[str, str, Change]] = [
    ("PSC block present but off", "postgres-primary",
     _ip(pscConfigs=[{"pscEnabled": False, "allowedConsumerProjects": []}])),
    ("per-instance Google CA named", "postgres-primary", _ip(serverCaMode="GOOGLE_MANAGED_INTERNAL_CA")),
    ("an allocated range in the VPC's peering", "postgres-primary",
     _ip(allocatedIpRange="google-managed-services-prod")),
    ("the provider's bookkeeping key", "postgres-primary", _ip(__defaults=[])),
    ("IAM authentication flag off", "postgres-primary",
     _flags({"name": "cloudsql.iam_authentication", "value": "off"})),
    ("a built-in user named as such", "postgres-user-migrator", _set("type", value="BUILT_IN")),
    ("transaction logs kept 7 days", "postgres-primary",
     _set("settings", "backupConfiguration", "transactionLogRetentionDays", value=7)),
    ("transaction log retention left to the default (7)", "postgres-primary",
     _set("settings", "backupConfiguration", "transactionLogRetentionDays", value=None)),
    ("no root password", "postgres-primary", _set("rootPassword", value=None)),
]


def _resources(plan: Plan, name: str, change: Change) -> list[Any]:
    resources = [r for r in _inputs(plan) if r.type in (SQL, USER)]
    # A case aimed at a resource the plan no longer declares would pass (or fail) without judging anything.
    assert name in {r.name for r in resources}, (name, sorted(r.name for r in resources))
    return _weaken(resources, name, change)


@pytest.mark.parametrize(("name", "change", "rule", "says"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_each_unreviewed_setting_is_refused(plan: Plan, pack: PolicyPackProcess, name: str, change: Change,
                                            rule: str, says: str) -> None:
    found = _mandatory(pack, _resources(plan, name, change))

    assert any(r == rule and says in message for r, message in found), found


@pytest.mark.parametrize(("name", "change"), [c[1:] for c in COMPLIANT], ids=[c[0] for c in COMPLIANT])
def test_each_reviewed_variant_passes(plan: Plan, pack: PolicyPackProcess, name: str, change: Change) -> None:
    assert _mandatory(pack, _resources(plan, name, change)) == []


def test_a_refused_root_password_is_not_printed(plan: Plan, pack: PolicyPackProcess) -> None:
    found = _mandatory(pack, _resources(plan, "postgres-primary", _set("rootPassword", value="Winter2026!")))

    assert found and not any("Winter2026!" in message for _, message in found), found
