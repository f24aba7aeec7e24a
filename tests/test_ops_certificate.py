"""`python -m infra wait-certificate --stack prod` (#20 item 8): prod's first deploy waits for the engine's
Certificate Manager certificate to be ACTIVE before it smokes through the edge.

Google: "Provisioning a Google-managed certificate can take up to 60 minutes after your DNS and load balancer
configuration changes propagate across the internet. If the certificate remains in the `PROVISIONING` state,
check the `managed.provisioningIssue` or `managed.authorizationAttemptInfo` fields"; FAILED: "Multiple
certificate provisioning attempts failed and Certificate Manager gave up"
(docs.cloud.google.com/certificate-manager/docs/troubleshooting; the ManagedCertificate.State reference).
Meanwhile the load balancer has no certificate to present, and Cloudflare (Full strict) answers 525/526, so a
smoke test run straight after the first `pulumi up` fails although nothing is wrong.

The command is run here against a fake `gcloud` on PATH, a script answering as
`gcloud certificate-manager certificates describe NAME --location=global --project=P --format=json` does.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.ops.certificate import Certificate, GcloudError, tolerant
from tests.conftest import CliResult

DEPLOY = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "deploy.yml"
# What the program names prod's API certificate, written out by hand from the stack file: the API host is
# api.acme-commerce.com and the environment prod (components/backends/cloudrun.py names it `<label>-<env>-cert`).
PROD_CERTIFICATE, PROD_PROJECT = "api-prod-cert", "acme-commerce-prod"

FAKE_GCLOUD = r"""#!/usr/bin/env python3
# A fake `gcloud`: records its argv, then answers the next of the scripted describe answers (the last repeats).
import json, os, pathlib, sys
state = pathlib.Path(os.environ["FAKE_GCLOUD_DIR"])
with open(state / "calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\n")
answers = json.loads((state / "answers.json").read_text())
count = sum(1 for _ in open(state / "calls.jsonl"))
answer = answers[min(count, len(answers)) - 1]
if "exit" in answer:
    sys.stderr.write(answer["stderr"])
    sys.exit(answer["exit"])
print(json.dumps(answer))
"""


def _certificate(state: str, **managed: Any) -> dict[str, Any]:
    """A Certificate as the API returns it (certificatemanager v1 `projects.locations.certificates`)."""
    return {"name": f"projects/{PROD_PROJECT}/locations/global/certificates/{PROD_CERTIFICATE}", "scope": "DEFAULT",
            "sanDnsnames": ["api.acme-commerce.com"] if state == "ACTIVE" else [],
            "managed": {"domains": ["api.acme-commerce.com"], "state": state, **managed}}


AUTHORIZING = _certificate("PROVISIONING", authorizationAttemptInfo=[
    {"domain": "api.acme-commerce.com", "state": "AUTHORIZING"}])
ACTIVE = _certificate("ACTIVE", authorizationAttemptInfo=[{"domain": "api.acme-commerce.com", "state": "AUTHORIZED"}])
FAILED = _certificate(
    "FAILED",
    provisioningIssue={"reason": "AUTHORIZATION_ISSUE", "details": "Authorization attempt failed for some domains"},
    authorizationAttemptInfo=[{"domain": "api.acme-commerce.com", "state": "FAILED", "failureReason": "CONFIG",
                               "details": "_acme-challenge.api.acme-commerce.com CNAME is missing"}])


@pytest.fixture
def gcloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[dict[str, Any]]], Path]]:
    """Puts the fake gcloud first on PATH; the test gives it its answers and reads its calls back."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "gcloud"
    script.write_text(FAKE_GCLOUD)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GCLOUD_DIR", str(tmp_path))

    def answer(answers: list[dict[str, Any]]) -> Path:
        (tmp_path / "answers.json").write_text(json.dumps(answers))
        return tmp_path / "calls.jsonl"

    yield answer


def _calls(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait(run_cli: Callable[..., CliResult], *extra: str) -> CliResult:
    return run_cli("wait-certificate", "--stack", "prod", "--interval-seconds", "0", *extra)


def test_the_wait_polls_until_the_certificate_is_active(run_cli: Callable[..., CliResult],
                                                        gcloud: Callable[[list[dict[str, Any]]], Path]) -> None:
    calls = gcloud([AUTHORIZING, AUTHORIZING, ACTIVE])

    result = _wait(run_cli)

    assert result.code == 0, result.err
    made = _calls(calls)
    assert len(made) == 3, "PROVISIONING twice, then ACTIVE ends the wait"
    assert made[0] == ["certificate-manager", "certificates", "describe", PROD_CERTIFICATE, "--location=global",
                       f"--project={PROD_PROJECT}", "--format=json"]
    assert f"{PROD_CERTIFICATE} is PROVISIONING" in result.out and "api.acme-commerce.com AUTHORIZING" in result.out
    assert f"{PROD_CERTIFICATE} is ACTIVE" in result.out


def test_a_failed_certificate_ends_the_wait_with_its_reason(run_cli: Callable[..., CliResult],
                                                           gcloud: Callable[[list[dict[str, Any]]], Path]) -> None:
    calls = gcloud([AUTHORIZING, FAILED])

    result = _wait(run_cli)

    assert result.code == 1
    assert len(_calls(calls)) == 2, "FAILED is final: Certificate Manager gave up, waiting longer changes nothing"
    assert "FAILED" in result.err and "AUTHORIZATION_ISSUE" in result.err
    assert "api.acme-commerce.com: CONFIG: _acme-challenge.api.acme-commerce.com CNAME is missing" in result.err


def test_a_certificate_still_provisioning_at_the_bound_fails_clearly(
        run_cli: Callable[..., CliResult], gcloud: Callable[[list[dict[str, Any]]], Path]) -> None:
    gcloud([_certificate("PROVISIONING", provisioningIssue={"reason": "RATE_LIMITED", "details": "try later"})])

    result = _wait(run_cli, "--timeout-minutes", "0")

    assert result.code == 1
    assert "still PROVISIONING after 0 minutes" in result.err and "RATE_LIMITED: try later" in result.err


def test_gcloud_refusing_is_an_error_naming_it(run_cli: Callable[..., CliResult],
                                               gcloud: Callable[[list[dict[str, Any]]], Path]) -> None:
    gcloud([{"exit": 1, "stderr": "ERROR: (gcloud.certificate-manager.certificates.describe) PERMISSION_DENIED\n"}])

    result = _wait(run_cli)

    assert result.code == 1 and "PERMISSION_DENIED" in result.err and "Traceback" not in result.err


def test_a_passing_gcloud_failure_does_not_end_the_wait(run_cli: Callable[..., CliResult],
                                                        gcloud: Callable[[list[dict[str, Any]]], Path]) -> None:
    gcloud([AUTHORIZING, {"exit": 1, "stderr": "ERROR: gcloud crashed (ConnectionError): Connection reset by peer\n"},
            ACTIVE])

    result = _wait(run_cli)

    assert result.code == 0, result.err
    assert "trying again" in result.out


def test_stacks_without_a_certificate_manager_certificate_have_nothing_to_wait_for(
        run_cli: Callable[..., CliResult], gcloud: Callable[[list[dict[str, Any]]], Path]) -> None:
    calls = gcloud([ACTIVE])

    for stack in ("integration", "staging"):
        result = run_cli("wait-certificate", "--stack", stack)
        assert result.code == 0 and "nothing to wait for" in result.out

    assert _calls(calls) == []


def _steps(job: str) -> list[dict[str, Any]]:
    document: Any = yaml.safe_load(DEPLOY.read_text())
    return list(document["jobs"][job]["steps"])


def test_the_prod_job_has_time_for_the_documented_provisioning_bound() -> None:
    document: Any = yaml.safe_load(DEPLOY.read_text())
    # Up to 60 minutes of provisioning (Google), the canary's 15 (stacks/prod.py), two `up`s and a smoke.
    assert int(document["jobs"]["prod"]["timeout-minutes"]) >= 60 + 15 + 30


def test_a_gcloud_failure_is_retried_after_a_pause_not_back_to_back() -> None:
    """A blip (a reset connection, a 503) lasts seconds: three attempts in the same instant all meet it, so each
    retry waits first. Asserted on the injected sleep, not on time."""
    certificate = Certificate("api-prod-cert", "acme-commerce-prod")
    answers: list[Any] = [GcloudError("Connection reset by peer"), GcloudError("503"), {"managed": {"state": "ACTIVE"}}]
    slept: list[float] = []

    def read(_certificate: Certificate) -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    found = tolerant(read, say=lambda _line: None, sleep=slept.append)(certificate)

    assert found == {"managed": {"state": "ACTIVE"}}
    assert len(slept) == 2 and all(pause >= 1 for pause in slept), slept


def test_a_lasting_gcloud_failure_still_ends_after_its_attempts_with_a_pause_between_each() -> None:
    slept: list[float] = []

    def read(_certificate: Certificate) -> dict[str, Any]:
        raise GcloudError("PERMISSION_DENIED")

    with pytest.raises(GcloudError, match="PERMISSION_DENIED"):
        tolerant(read, attempts=3, say=lambda _line: None, sleep=slept.append)(Certificate("c", "p"))

    assert len(slept) == 2, "a pause between attempts, none after the last"
