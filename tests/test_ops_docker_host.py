"""How integration's deploy reaches its Docker host (#20 item 10): over SSH with a pinned host key (or TLS
client certificates), never a plain TCP daemon.

The docker provider (pulumi-docker 5.2.0 bridges kreuzwerker/terraform-provider-docker) builds its client
from `docker:host` and, in this order: `certMaterial`/`keyMaterial`/`caMaterial` (TLS client certificates),
`certPath`, `ssh://` with `sshOpts` (argv given to `ssh`), and otherwise "just return the direct client"
(internal/provider/config.go): a `tcp://` host without TLS material is the daemon's unauthenticated API,
root on the host for anyone on the path. Docker: "By default, Docker runs through a non-networked UNIX
socket ... If you need Docker to be reachable through HTTP rather than SSH in a safe manner, you can
enable TLS" (docs.docker.com/engine/security/protect-access/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from tests.conftest import CliResult, stack_document, write_stack

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"
PINNED = ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=~/.ssh/known_hosts_integration"]
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _integration(tmp_path: Path, **docker: Any) -> Path:
    document = stack_document("integration")
    config = {k: v for k, v in document["config"].items() if not k.startswith("docker:")}
    config.update({f"docker:{k}": v for k, v in docker.items() if v is not None})
    document["config"] = config
    return write_stack(tmp_path, document)


def _plan(run_cli: Callable[..., CliResult], path: Path) -> CliResult:
    return run_cli("plan", "--stack", "integration", "--config-file", str(path))


def test_the_integration_stack_reaches_its_docker_host_over_ssh_with_a_pinned_host_key() -> None:
    config = stack_document("integration")["config"]

    host = str(config.get("docker:host", ""))
    assert host.startswith("ssh://"), f"docker:host is {host!r}: the deploy job's DOCKER_HOST decides, tcp:// included"
    options: list[str] = config.get("docker:sshOpts", [])
    assert "StrictHostKeyChecking=yes" in options, "an unknown host key must fail the connection, not be accepted"
    assert any(o.startswith("UserKnownHostsFile=") and "/dev/null" not in o for o in options)


def _integration_job() -> dict[str, Any]:
    document: Any = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    return document["jobs"]["integration"]


def test_the_integration_deploy_sets_up_the_key_and_pinned_known_hosts_before_pulumi_up() -> None:
    steps = _integration_job()["steps"]
    # The `up`, not the step that only installs the pinned CLI (pulumi/actions without `command`).
    up = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions")
              and (s.get("with") or {}).get("command") == "up")
    before = json.dumps(steps[:up])

    assert "DOCKER_HOST" not in json.dumps(steps), "the stack file's docker:host decides, not a secret's value"
    assert "secrets.INTEGRATION_DOCKER_SSH_KEY" in before, "the deploy key comes from the environment's secret"
    assert "vars.INTEGRATION_DOCKER_KNOWN_HOSTS" in before, "the host key is a pinned value, never ssh-keyscan"
    assert "known_hosts_integration" in before
    assert "ssh-keyscan" not in json.dumps(steps), "scanning at deploy time trusts whoever answers"


@pytest.mark.parametrize(("docker", "problem"), [
    ({"host": "tcp://docker.int.acme-commerce-int.dev:2375"}, "plain TCP"),
    ({"host": "tcp://docker.int.acme-commerce-int.dev:2376", "certMaterial": CERT}, "plain TCP"),
    ({"host": "http://docker.int.acme-commerce-int.dev:2375"}, "not a Docker host this stack may use"),
    ({"host": "ssh://deploy@docker.int.acme-commerce-int.dev",
      "sshOpts": ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]},
     "docker:sshOpts[1]: 'StrictHostKeyChecking=no'"),
    ({"host": "ssh://deploy@docker.int.acme-commerce-int.dev"}, "pinned host key"),
    ({}, "is required"),
])
def test_a_docker_host_reached_without_authentication_is_refused_before_anything_is_declared(
        tmp_path: Path, run_cli: Callable[..., CliResult], docker: dict[str, Any], problem: str) -> None:
    result = _plan(run_cli, _integration(tmp_path, **docker))

    assert result.code == 2, result.out[-400:]
    assert "nothing was declared" in result.err and "Traceback" not in result.err
    line = next(line for line in result.err.splitlines() if "docker:host" in line or "docker:sshOpts" in line)
    assert line.startswith("Pulumi.test.yaml: docker:") and problem in line, line
    assert "expected" in line


def test_ssh_with_a_pinned_key_or_tcp_with_tls_client_certificates_is_accepted(
        tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    ssh = _plan(run_cli, _integration(tmp_path, host="ssh://deploy@docker.int.acme-commerce-int.dev",
                                      sshOpts=PINNED))
    # keyMaterial is the client's private key: it must be a secret (a `secure:` value in the stack file).
    tls = _plan(run_cli, _integration(tmp_path, host="tcp://docker.int.acme-commerce-int.dev:2376",
                                      certMaterial=CERT, caMaterial=CERT, keyMaterial={"secure": "v1:a2V5"}))

    assert (ssh.code, tls.code) == (0, 0), ssh.err + tls.err


def test_a_tls_client_key_in_plain_text_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = _plan(run_cli, _integration(tmp_path, host="tcp://docker.int.acme-commerce-int.dev:2376",
                                         certMaterial=CERT, caMaterial=CERT, keyMaterial="-----BEGIN KEY-----"))

    assert result.code == 2
    assert "docker:keyMaterial: is in plain text but must be a secret" in result.err
    assert "BEGIN KEY" not in result.err


def test_the_ssh_options_are_handed_to_the_provider_as_a_list() -> None:
    """`docker:sshOpts` is a list of argv items (the provider passes each to `ssh`); a string would be one."""
    options: Any = json.loads(json.dumps(stack_document("integration")["config"].get("docker:sshOpts")))
    assert isinstance(options, list) and all(isinstance(o, str) for o in cast(list[object], options))


# ssh_config(5): "For each parameter, the first obtained value will be used", and command-line options come
# first ("1. command-line options 2. user's configuration file ..."). An earlier value in docker:sshOpts wins
# over the pinned one after it; keywords are case-insensitive and `-oKey=value` / `Key value` are the same option.
@pytest.mark.parametrize("options", [
    ["-o", "StrictHostKeyChecking=no", *PINNED],
    ["-o", "StrictHostKeyChecking=accept-new", *PINNED],
    ["-oStrictHostKeyChecking=no", *PINNED],
    ["-o", "stricthostkeychecking no", *PINNED],
    ["-o", "UserKnownHostsFile=/dev/null", *PINNED],
    ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=none", *PINNED],
], ids=["no-first", "accept-new-first", "compact-no-first", "lowercase-space-no-first", "dev-null-first",
        "none-first"])
def test_an_earlier_option_that_unpins_the_host_key_is_refused(
        tmp_path: Path, run_cli: Callable[..., CliResult], options: list[str]) -> None:
    result = _plan(run_cli, _integration(tmp_path, host="ssh://deploy@docker.int.acme-commerce-int.dev",
                                         sshOpts=options))

    assert result.code == 2, f"{options} was accepted: ssh takes the first value, so the host key is not pinned"
    line = next(line for line in result.err.splitlines() if "docker:sshOpts[" in line)
    assert line.startswith(f"Pulumi.test.yaml: docker:sshOpts[{len(options) - len(PINNED) - 1}]: "), line
    assert "expected" in line, line


# ---------------------------------------------------------------------------------------------
# docker:sshOpts is an allowlist, not a parser of ssh's argv (#20 item 10, security review).
#
# Each list below was handed to OpenSSH 9.2p1 as `ssh -G -F /dev/null <list> deploy@h` (-G prints the
# configuration ssh would use and exits): every one leaves the host key unpinned while a "first -o value"
# reading of the list sees StrictHostKeyChecking=yes and a pinned UserKnownHostsFile:
#   bundled   ["-4oStrictHostKeyChecking=no", ...]   -> stricthostkeychecking false (getopt: -4 then -o ARG)
#   tab       ["-o", "StrictHostKeyChecking\tno", ...] -> stricthostkeychecking false (any whitespace separates)
#   quoted    ["-o", '"StrictHostKeyChecking" no', ...] -> stricthostkeychecking false (keywords may be quoted)
#   command   ["-o", "KnownHostsCommand=/bin/echo ...", ...] -> knownhostscommand /bin/echo ... (extra trusted keys)
#   global    ["-o", "GlobalKnownHostsFile=/tmp/evil", ...] -> globalknownhostsfile /tmp/evil (extra trusted keys)
#   dns       ["-o", "VerifyHostKeyDNS=yes", ...]      -> verifyhostkeydns true (SSHFP records vouch for keys)
#   eaten     ["-E", "-oStrictHostKeyChecking=yes", "-o", "StrictHostKeyChecking=no", ...]
#                                                       -> stricthostkeychecking false (-E takes the next word
#                                                          as its log file)
# test_ssh_agrees_these_lists_unpin_the_host_key re-runs that check wherever ssh is installed.
HOST = "ssh://deploy@docker.int.acme-commerce-int.dev"
KNOWN_HOSTS = ["-o", "UserKnownHostsFile=~/.ssh/known_hosts_integration"]
HOSTILE = {
    "bundled": ["-4oStrictHostKeyChecking=no", *PINNED],
    "tab": ["-o", "StrictHostKeyChecking\tno", *PINNED],
    "quoted-keyword": ["-o", '"StrictHostKeyChecking" no', *PINNED],
    "known-hosts-command": ["-o", "KnownHostsCommand=/bin/echo docker.int ssh-ed25519 AAAA", *PINNED],
    "global-known-hosts": ["-o", "GlobalKnownHostsFile=/tmp/evil", *PINNED],
    "verify-host-key-dns": ["-o", "VerifyHostKeyDNS=yes", *PINNED],
    "log-file-eats-next": ["-E", "-oStrictHostKeyChecking=yes", "-o", "StrictHostKeyChecking=no", *KNOWN_HOSTS],
    "config-file": ["-F", "/tmp/evil_config", *PINNED],
    "compact-pinned": ["-oStrictHostKeyChecking=yes", *KNOWN_HOSTS],
    "dangling-o": [*PINNED, "-o"],
}
"""The index of the first item the allowlist must name, by hand: the item that is not `-o`/`-i`, or the
`-o` argument that is not an allowed `Key=value`."""
FIRST_BAD = {"bundled": 0, "tab": 1, "quoted-keyword": 1, "known-hosts-command": 1, "global-known-hosts": 1,
             "verify-host-key-dns": 1, "log-file-eats-next": 0, "config-file": 0, "compact-pinned": 0,
             "dangling-o": 4}


def _ssh_host_problems(options: list[str]) -> list[str]:
    from components.backends.docker import host_problems
    return host_problems({"docker:host": HOST, "docker:sshOpts": json.dumps(options)}, set())


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_ssh_options_outside_the_allowlist_are_refused_naming_the_item(case: str) -> None:
    options = HOSTILE[case]
    problems = _ssh_host_problems(options)

    index = FIRST_BAD[case]
    named = [p for p in problems if p.startswith(f"docker:sshOpts[{index}]: {options[index]!r}")]
    assert named, f"{options} was not refused at item {index}: {problems}"
    assert "expected" in named[0], named[0]


def test_a_refused_ssh_option_is_a_config_error_naming_the_file(
        tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = _plan(run_cli, _integration(tmp_path, host=HOST, sshOpts=HOSTILE["global-known-hosts"]))

    assert result.code == 2, result.out[-400:]
    assert "nothing was declared" in result.err and "Traceback" not in result.err
    line = next(line for line in result.err.splitlines() if "docker:sshOpts[1]" in line)
    assert line.startswith("Pulumi.test.yaml: docker:sshOpts[1]: 'GlobalKnownHostsFile=/tmp/evil'"), line


@pytest.mark.parametrize("options", [
    ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=~/.ssh/known_hosts_integration"],
    ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/dev/null"],
    ["-o", "StrictHostKeyChecking=yes", "-o", "userknownhostsfile=NONE"],
    ["-o", "StrictHostKeyChecking=yes"],
    ["-o", "UserKnownHostsFile=~/.ssh/known_hosts_integration"],
    [*PINNED, "-o", "StrictHostKeyChecking=accept-new"],
], ids=["no", "dev-null", "none", "no-known-hosts", "no-checking", "later-accept-new"])
def test_ssh_options_must_pin_the_host_key_wherever_they_say_so(options: list[str]) -> None:
    assert any("pinned host key" in p or "StrictHostKeyChecking=yes" in p for p in _ssh_host_problems(options)), \
        options


def test_the_integration_stacks_ssh_options_and_keyword_case_are_accepted() -> None:
    options: list[str] = stack_document("integration")["config"]["docker:sshOpts"]

    assert _ssh_host_problems(options) == []
    assert _ssh_host_problems(["-o", "stricthostkeychecking=YES", "-o", "USERKNOWNHOSTSFILE=~/.ssh/kh",
                               "-o", "ConnectTimeout=10", "-o", "Port=2222", "-i", "~/.ssh/id_x"]) == []


def _ssh_effective(options: list[str], cwd: Path) -> dict[str, str]:
    """What OpenSSH would use (`ssh -G` prints it and exits), without the machine's own ssh_config."""
    done = subprocess.run(["ssh", "-G", "-F", "/dev/null", *options, "deploy@docker.invalid"], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=20)
    return {k: v for k, _, v in (line.partition(" ") for line in done.stdout.splitlines())}


@pytest.mark.parametrize("case", [c for c in sorted(HOSTILE) if c not in ("config-file", "compact-pinned",
                                                                           "dangling-o")])
def test_ssh_agrees_these_lists_unpin_the_host_key(case: str, tmp_path: Path) -> None:
    """The hostile lists are refused by the allowlist alone; where ssh is installed, it also shows each one
    really leaves the host key unpinned (so the test list is not a straw man)."""
    assert _ssh_host_problems(HOSTILE[case])
    if shutil.which("ssh") is None:
        return
    used = _ssh_effective(HOSTILE[case], tmp_path)
    assert not _pinned_only_by(used, "~/.ssh/known_hosts_integration"), used


def test_ssh_agrees_the_accepted_list_pins_the_host_key(tmp_path: Path) -> None:
    """The control for the test above: the list the allowlist accepts is pinned by ssh's own reading."""
    assert _ssh_host_problems(PINNED) == []
    if shutil.which("ssh") is None:
        return
    assert _pinned_only_by(_ssh_effective(PINNED, tmp_path), "~/.ssh/known_hosts_integration")


def _pinned_only_by(used: dict[str, str], known_hosts: str) -> bool:
    """ssh refuses unknown keys and trusts only `known_hosts` (plus the system-wide default files, which
    `ssh -G` reports unchanged; ssh_config(5) GlobalKnownHostsFile default)."""
    return (used.get("stricthostkeychecking") == "true" and "knownhostscommand" not in used
            and used.get("verifyhostkeydns") == "false"
            and used.get("globalknownhostsfile") == "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"
            and used.get("userknownhostsfile", "").endswith(known_hosts.removeprefix("~")))
