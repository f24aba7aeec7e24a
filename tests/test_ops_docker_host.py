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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    up = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions"))
    before = yaml.safe_dump(steps[:up])

    assert "DOCKER_HOST" not in yaml.safe_dump(steps), "the stack file's docker:host decides, not a secret's value"
    assert "secrets.INTEGRATION_DOCKER_SSH_KEY" in before, "the deploy key comes from the environment's secret"
    assert "vars.INTEGRATION_DOCKER_KNOWN_HOSTS" in before, "the host key is a pinned value, never ssh-keyscan"
    assert "known_hosts_integration" in before
    assert "ssh-keyscan" not in yaml.safe_dump(steps), "scanning at deploy time trusts whoever answers"


@pytest.mark.parametrize(("docker", "problem"), [
    ({"host": "tcp://docker.int.acme-commerce-int.dev:2375"}, "plain TCP"),
    ({"host": "tcp://docker.int.acme-commerce-int.dev:2376", "certMaterial": CERT}, "plain TCP"),
    ({"host": "http://docker.int.acme-commerce-int.dev:2375"}, "not a Docker host this stack may use"),
    ({"host": "ssh://deploy@docker.int.acme-commerce-int.dev",
      "sshOpts": ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]}, "pinned host key"),
    ({"host": "ssh://deploy@docker.int.acme-commerce-int.dev"}, "pinned host key"),
    ({}, "is required"),
])
def test_a_docker_host_reached_without_authentication_is_refused_before_anything_is_declared(
        tmp_path: Path, run_cli: Callable[..., CliResult], docker: dict[str, Any], problem: str) -> None:
    result = _plan(run_cli, _integration(tmp_path, **docker))

    assert result.code == 2, result.out[-400:]
    assert "nothing was declared" in result.err and "Traceback" not in result.err
    line = next(line for line in result.err.splitlines() if "docker:host" in line)
    assert line.startswith("Pulumi.test.yaml: docker:host: ") and problem in line, line
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
    assert isinstance(options, list) and all(isinstance(o, str) for o in options)


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
    line = next(line for line in result.err.splitlines() if "docker:host" in line)
    assert "pinned host key" in line and "expected" in line, line
