"""The PocketBase VM's systemd unit, parsed by section (systemd.unit(5): options belong to their section; one in
the wrong section is ignored with a warning). Its secrets script runs as ExecStartPre=, under the unit's start
timeout: systemd's default TimeoutStartSec is DefaultTimeoutStartSec=, 90 s (systemd-system.conf(5)), while the
script's own retry schedule sleeps 5+10+20+40+60x5 = 375 s before it gives up (SECRETS_SCRIPT: 10 attempts, the
wait doubling from 5 s, capped at 60 s), plus each curl's 20 s. With the default, systemd kills the script mid-
schedule every time. The checks below fail the old design too (a oneshot secrets unit the service Requires=)."""

from __future__ import annotations

import re
from typing import cast

import yaml

from infra.plan import Plan
from tests.test_gcp_vm_boot import prod_with_versions

__all__ = ["prod_with_versions"]
SIG_KEY = "4dabf18193072939515e22adb298388d"
"""The key that marks a special value (a secret) in wire inputs (pulumi sdk/python/lib/pulumi/runtime/rpc.py)."""


def _unwrap(value: object) -> object:
    while isinstance(value, dict) and SIG_KEY in value:
        value = cast(dict[str, object], value)["value"]
    return cast(object, value)


def _files(plan: Plan) -> dict[str, str]:
    """The files prod's PocketBase VM's user-data writes, by path."""
    [vm] = [r for r in plan.resources if r.type == "gcp:compute/instance:Instance"
            and r.inputs["name"] == "pocketbase-prod"]
    user_data = _unwrap(cast(dict[str, object], _unwrap(vm.wire_inputs["metadata"]))["user-data"])
    assert isinstance(user_data, str) and user_data.startswith("#cloud-config"), user_data
    return {f["path"]: f["content"] for f in yaml.safe_load(user_data)["write_files"]}

SCRIPT_SLEEPS_S = 5 + 10 + 20 + 40 + 60 * 5
"""The retry schedule's sleeps, written out by hand from SECRETS_SCRIPT (attempts 10, first wait 5, doubling,
capped at 60): nine waits between ten attempts."""
UNIT = "/etc/systemd/system/pocketbase.service"
SCRIPT = "/etc/pocketbase-secrets.sh"


def sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections, each its (key, value) lines in order (keys such as ExecStartPre= repeat)."""
    parsed: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = parsed.setdefault(header[1], [])
            continue
        assert current is not None and "=" in line, f"not a unit line: {line!r}"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return parsed


def _seconds(value: str) -> float:
    """A systemd time span (systemd.time(5)) in seconds: "infinity", "900", "15min", "1h 30s"."""
    if value == "infinity":
        return float("inf")
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)\s*([a-z]*)", value))


def unit_problems(units: dict[str, str]) -> list[str]:
    """What keeps the service from reading its secrets through their whole retry schedule and starting again
    after a failed read; empty when the unit is right."""
    unit = sections(units[UNIT])
    problems: list[str] = []
    service, head = dict(unit.get("Service", [])), dict(unit.get("Unit", []))
    pre = [v for k, v in unit.get("Service", []) if k == "ExecStartPre"]
    if not any(SCRIPT in v for v in pre):
        problems.append("the secrets script is not an ExecStartPre= of the service itself")
    others = [text for path, text in units.items() if path != UNIT and path.endswith(".service")]
    if service.get("Type", "simple") == "oneshot" or any(SCRIPT in text for text in others):
        problems.append("the secrets are read by a separate oneshot unit")
    if "Requires" in head:
        problems.append(f"the service Requires= {head['Requires']}: a failed requirement fails it for good")
    if head.get("StartLimitIntervalSec") != "0":
        problems.append("StartLimitIntervalSec=0 is not under [Unit]: Restart=always would hit the start limit")
    if "TimeoutStartSec" not in service:
        problems.append("no TimeoutStartSec under [Service]: systemd's 90 s default kills the script's retries")
    elif _seconds(service["TimeoutStartSec"]) < SCRIPT_SLEEPS_S:
        problems.append(f"TimeoutStartSec={service['TimeoutStartSec']} is shorter than the retry schedule")
    if "TimeoutStartSec" in head or "StartLimitIntervalSec" in service:
        problems.append("an option in the wrong section (systemd ignores it there)")
    return problems


def test_the_vm_service_reads_its_secrets_under_a_start_timeout_that_outlasts_their_retries(
        prod_with_versions: Plan) -> None:
    assert unit_problems(_files(prod_with_versions)) == []


OLD_DESIGN = {
    UNIT: """[Unit]
Description=pocketbase
Requires=pocketbase-secrets.service
After=pocketbase-secrets.service network-online.target
[Service]
ExecStart=/usr/bin/docker run --rm --name pocketbase --env-file /run/service.env img
Restart=always
""",
    "/etc/systemd/system/pocketbase-secrets.service": f"""[Unit]
Description=read the secrets
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/bash {SCRIPT}
""",
}


def test_the_old_oneshot_and_requires_design_fails_the_same_checks() -> None:
    problems = unit_problems(OLD_DESIGN)
    assert any("ExecStartPre" in p for p in problems)
    assert any("oneshot" in p for p in problems)
    assert any("Requires" in p for p in problems)
    assert any("StartLimitIntervalSec" in p for p in problems)
    assert any("TimeoutStartSec" in p for p in problems)


def test_an_option_under_the_wrong_section_is_found_not_matched_as_a_substring() -> None:
    text = "[Unit]\nDescription=x\n[Service]\nStartLimitIntervalSec=0\nExecStartPre=/bin/bash " + SCRIPT + \
        "\nTimeoutStartSec=infinity\nExecStart=/bin/true\n"
    assert any("StartLimitIntervalSec=0 is not under [Unit]" in p for p in unit_problems({UNIT: text}))


def test_the_config_watch_runs_before_pocketbase_s_start_can_block(prod_with_versions: Plan) -> None:
    """`systemctl start` waits for the start job (systemctl(1): "start ... wait until the start job completed"
    unless --no-block), and PocketBase's start job holds its ExecStartPre= secrets schedule, which now may run
    long (TimeoutStartSec=infinity). The config watch takes the user-data's ETag as its baseline when it starts;
    started after a long blocking start, it would miss a `pulumi up` made meanwhile (the very fix of a secret
    that could not be read), and the VM would never reboot into it. So it starts first, and PocketBase's start
    does not block cloud-init."""
    [vm] = [r for r in prod_with_versions.resources if r.type == "gcp:compute/instance:Instance"
            and r.inputs["name"] == "pocketbase-prod"]
    user_data = _unwrap(cast(dict[str, object], _unwrap(vm.wire_inputs["metadata"]))["user-data"])
    runcmd = [str(c) for c in yaml.safe_load(str(user_data))["runcmd"]]
    starts = [c for c in runcmd if c.startswith("systemctl start")]
    watch = next(i for i, c in enumerate(starts) if "pocketbase-config-watch.service" in c)
    service = next(i for i, c in enumerate(starts) if c.split()[-1] == "pocketbase.service")
    assert watch < service, starts
    assert "--no-block" in starts[service].split(), starts[service]
