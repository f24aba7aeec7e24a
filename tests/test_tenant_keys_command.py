"""`python -m infra tenant-keys`: one tenant's key, read where it is kept, and nothing else printed (#22 item 6).

The runner stands in for `gcloud` and `pulumi`: what it answers is built the way they answer. `gcloud secrets
versions access` prints the payload as is (cloud.google.com/sdk/gcloud/reference/secrets/versions/access);
`pulumi stack export --show-secrets` wraps each secret as `{sig.Key: sig.Secret, "plaintext": "<JSON>"}`
(pulumi/pulumi sdk/go/common/resource/sig), and the URNs are the ones the program declares (the plan's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from infra.ops import tenant_keys
from infra.plan import Plan

SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}


def _key(tenant: str, kind: str) -> str:
    return f"{kind}-key-of-{tenant}-0123456789abcdef"


def _export(plan: Plan, show_secrets: bool = True) -> str:
    """The deployment `pulumi stack export` prints for this plan's stack: every generated password, each tenant's
    keys among them, as secrets."""
    resources: list[dict[str, Any]] = []
    for r in plan.resources:
        if r.type != tenant_keys.PASSWORD_TYPE:
            continue
        value = r.urn.rpartition("::")[2]
        if value.startswith("engine-key-"):
            slug, _, kind = value.removeprefix("engine-key-").rpartition("-")
            value = _key(slug, kind)
        secret = {**SIG, "plaintext": json.dumps(value)} if show_secrets else {**SIG, "ciphertext": "AAAA"}
        resources.append({"urn": r.urn, "type": r.type, "outputs": {"result": secret, "length": 40}})
    return json.dumps({"version": 3, "deployment": {"resources": resources}})


class Recorder:
    def __init__(self, answer: str, code: int = 0) -> None:
        self.answer, self.code, self.calls = answer, code, list[list[str]]()

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        self.calls.append(list(argv))
        return self.code, self.answer


@pytest.mark.parametrize("stack", ["staging", "integration"])
def test_without_gcp_the_one_key_comes_from_the_state_and_nothing_else_is_printed(
        stack: str, committed_plans: dict[str, Plan], capsys: pytest.CaptureFixture[str]) -> None:
    plan = committed_plans[stack]
    slugs = sorted({r.urn.rpartition("::")[2].removeprefix("engine-key-").rpartition("-")[0]
                    for r in plan.resources if r.urn.rpartition("::")[2].startswith("engine-key-")})
    assert slugs
    runner = Recorder(_export(plan))

    code = tenant_keys.main(stack, slugs[0], "admin", f"acme/platform/{stack}", runner)

    out, err = capsys.readouterr()
    assert code == 0, err
    assert runner.calls == [["pulumi", "stack", "export", "--show-secrets", "--stack", f"acme/platform/{stack}"]]
    assert out == _key(slugs[0], "admin") + "\n", "the admin key alone: not its API key, no other tenant's"


def test_prod_reads_the_tenants_own_secret_as_the_caller(committed_plans: dict[str, Plan],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    slug = next(r.name.removeprefix("tenant-").removesuffix("-keys") for r in committed_plans["prod"].resources
                if r.type == "gcp:secretmanager/secret:Secret" and r.name.startswith("tenant-"))
    runner = Recorder(json.dumps({"apiKey": "the-api-key", "adminKey": "the-admin-key"}))

    code = tenant_keys.main("prod", slug, "api", None, runner)

    assert code == 0
    assert runner.calls == [["gcloud", "secrets", "versions", "access", "latest", f"--secret=tenant-{slug}-keys",
                             "--project=acme-commerce-prod"]]
    assert capsys.readouterr().out == "the-api-key\n"


def test_an_unknown_tenant_is_refused_before_anything_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    runner = Recorder("")

    code = tenant_keys.main("staging", "no-such-shop", "admin", None, runner)

    assert code == 2 and runner.calls == []
    assert "'no-such-shop' is not a tenant of stack 'staging'" in capsys.readouterr().err


def test_an_export_without_show_secrets_is_an_error_not_ciphertext_printed(
        committed_plans: dict[str, Plan], capsys: pytest.CaptureFixture[str]) -> None:
    plan = committed_plans["staging"]
    slug = next(r.urn.rpartition("::")[2].removeprefix("engine-key-").rpartition("-")[0]
                for r in plan.resources if r.urn.rpartition("::")[2].startswith("engine-key-"))

    code = tenant_keys.main("staging", slug, "admin", None, Recorder(_export(plan, show_secrets=False)))

    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "encrypted" in err and "AAAA" not in err


def test_a_denied_read_says_where_and_prints_no_key(capsys: pytest.CaptureFixture[str],
                                                    committed_plans: dict[str, Plan]) -> None:
    slug = next(r.name.removeprefix("tenant-").removesuffix("-keys") for r in committed_plans["prod"].resources
                if r.type == "gcp:secretmanager/secret:Secret" and r.name.startswith("tenant-"))

    code = tenant_keys.main("prod", slug, "admin", None, Recorder("", code=1))

    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert f"Secret Manager secret tenant-{slug}-keys in acme-commerce-prod" in err
