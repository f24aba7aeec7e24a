"""#25.6: `python -m infra restore --stack prod [--to TIME] --apply` restores prod end to end: the replica into a
fresh directory, verified as the drill verifies it, then onto the PocketBase VM (no external address: over IAP)
with its unit stopped, the file checked on the VM, the unit started and PocketBase healthy. Missing
credentials stop it before anything runs, naming the variable (Litestream would otherwise fall through the
AWS credential chain to the instance metadata service and print that error instead)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from infra.ops import restore
from infra.plan import Plan
from tests.conftest import PROJECT_DIR, CliResult, stack_document


@pytest.mark.parametrize("missing", ["PB_ENCRYPTION_KEY", "GOOGLE_APPLICATION_CREDENTIALS"])
def test_a_missing_credential_is_named_before_anything_runs(
        missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., CliResult]) -> None:
    # prod's replica is read through Cloud Storage as the pocketbase-restore account (no key of its own, #22 item 6):
    # what a restore needs is Google's application default credentials and the settings key.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no gcloud ADC file
    monkeypatch.delenv("CLOUDSDK_CONFIG", raising=False)
    monkeypatch.setenv("PB_ENCRYPTION_KEY", "set")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "adc.json"))
    monkeypatch.delenv(missing)

    result = run_cli("restore", "--stack", "prod", "--output", str(tmp_path / "new"))

    assert result.code == 2, result.err
    if missing == "PB_ENCRYPTION_KEY":
        assert "PB_ENCRYPTION_KEY" in result.err and "gcloud secrets versions access latest" in result.err
        assert "pocketbase-prod-pb-encryption-key" in result.err and "--project=acme-commerce-prod" in result.err
    else:
        assert "application-default login" in result.err
        assert "pocketbase-restore@acme-commerce-prod.iam.gserviceaccount.com" in result.err
    assert "stack output" not in result.err, "no stack output holds a credential any more"
    assert "IMDS" not in result.err and "169.254" not in result.err and "ec2" not in result.err.lower()
    assert not (tmp_path / "new").exists()


def test_a_key_bucket_names_its_key_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              run_cli: Callable[..., CliResult]) -> None:
    for name in ("LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "PB_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = run_cli("restore", "--stack", "staging", "--output", str(tmp_path / "new"))
    assert result.code == 2, result.err
    for name in ("LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "PB_ENCRYPTION_KEY"):
        assert f"{name} is not set" in result.err
    # The key is the staging deploy environment's BACKUP_SECRET_ACCESS_KEY now, in no stack file (#22 item 1).
    assert "BACKUP_SECRET_ACCESS_KEY" in result.err and "stack output" not in result.err
    assert "platform:backupSecretAccessKey" not in result.err


def test_a_key_bucket_reads_the_deploy_environments_backup_key_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., CliResult],
) -> None:
    """The operator exports the key under the name the deploy job gives it (BACKUP_SECRET_ACCESS_KEY, #22 item 1):
    the restore takes it as Litestream's secret."""
    for name in ("LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "PB_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BACKUP_SECRET_ACCESS_KEY", "fake-backup-secret")
    result = run_cli("restore", "--stack", "staging", "--output", str(tmp_path / "new"))
    assert result.code == 2, result.err
    assert "LITESTREAM_ACCESS_KEY_ID is not set" in result.err
    assert "LITESTREAM_SECRET_ACCESS_KEY is not set" not in result.err
    assert "fake-backup-secret" not in result.err + result.out


def test_to_is_the_point_in_time_and_is_checked_like_at(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("restore", "--stack", "prod", "--to", "2026-03-01 12:00", "--output", str(tmp_path))

    assert result.code == 2 and "RFC 3339" in result.err


class Recorder:
    """Stands in for gcloud: records each command, answers the VM's checksum and health as asked."""

    def __init__(self, vm_sha256: str, healthy: bool = True) -> None:
        self.commands: list[list[str]] = []
        self.vm_sha256 = vm_sha256
        self.healthy = healthy

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        self.commands.append(list(argv))
        remote = argv[argv.index("--command") + 1] if "--command" in argv else ""
        if "sha256sum" in remote:
            return 0, f"{self.vm_sha256}  /mnt/disks/data/data.db\n"
        if "api/health" in remote and not self.healthy:
            return 22, "curl: (22) The requested URL returned error: 503"
        return 0, ""


def _prod_vm() -> restore.Vm:
    vm = restore.vm_of("prod")
    assert vm is not None
    return vm


def _restored(tmp_path: Path) -> Path:
    target = tmp_path / "restored"
    target.mkdir()
    (target / "data.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    return target


def test_apply_puts_the_verified_copy_on_prods_vm_over_iap_and_checks_it(tmp_path: Path) -> None:
    gcp = stack_document("prod")["config"]["platform:gcp"]
    target = _restored(tmp_path)
    gcloud = Recorder(restore.sha256(target / "data.db"))

    code = restore.apply_to_vm(_prod_vm(), target, gcloud, stamp="20261207T000000Z")

    assert code == 0
    for argv in gcloud.commands:
        assert argv[:3] in (["gcloud", "compute", "ssh"], ["gcloud", "compute", "scp"])
        assert "--tunnel-through-iap" in argv  # the VM has no external address
        assert argv[argv.index("--project") + 1] == gcp["project"]
        assert argv[argv.index("--zone") + 1].startswith(gcp["region"] + "-")
    scp, *ssh = gcloud.commands
    assert scp[3] == str(target / "data.db") and scp[4].startswith("pocketbase-prod:")
    remote = [a[a.index("--command") + 1] for a in ssh]
    script = "\n".join(remote)
    assert script.index("systemctl stop pocketbase.service") < script.index("/mnt/disks/data/data.db") \
        < script.index("systemctl start pocketbase.service") < script.index("api/health")
    assert any("sha256sum" in r for r in remote)
    assert "before-restore-20261207T000000Z" in script, "the replaced database is kept aside, not deleted"
    assert all(shlex.split(r) for r in remote)


def test_apply_stops_when_the_copy_on_the_vm_is_not_the_verified_one(tmp_path: Path) -> None:
    target = _restored(tmp_path)
    gcloud = Recorder("0" * 64)

    code = restore.apply_to_vm(_prod_vm(), target, gcloud, stamp="x")

    assert code == 1
    assert not any("systemctl stop" in " ".join(c) for c in gcloud.commands), "nothing stopped for a bad copy"


def test_apply_fails_when_pocketbase_is_not_healthy_after_the_restart(tmp_path: Path) -> None:
    target = _restored(tmp_path)
    gcloud = Recorder(restore.sha256(target / "data.db"), healthy=False)

    assert restore.apply_to_vm(_prod_vm(), target, gcloud, stamp="x") == 1


def test_only_a_stack_whose_pocketbase_runs_on_a_vm_can_apply() -> None:
    assert restore.vm_of("staging") is None


def test_the_runbooks_firewall_commands_name_prods_project_network_and_vm_tag(committed_plans: dict[str, Plan]) -> None:
    text = (PROJECT_DIR / "docs/runbooks/restore.md").read_text()
    prod = committed_plans["prod"]
    networks = {r.inputs["name"] for r in prod.resources if r.type == "gcp:compute/network:Network"}
    [vm] = [r for r in prod.resources if r.type == "gcp:compute/instance:Instance" and r.name == "database"]
    commands = [shlex.split(line) for line in text.splitlines() if line.startswith("gcloud compute firewall-rules")]

    assert len(commands) == 2
    for argv in commands:
        assert argv[argv.index("--project") + 1] == stack_document("prod")["config"]["platform:gcp"]["project"]
    create = commands[0]
    assert create[create.index("--network") + 1] in networks
    assert create[create.index("--target-tags") + 1] in vm.inputs["tags"]
    assert create[create.index("--source-ranges") + 1] == "35.235.240.0/20"  # IAP's TCP forwarding range
    assert "python -m infra restore --stack prod --to 2026-03-01T12:00:00Z --apply" in text
