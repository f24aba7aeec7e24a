"""The pull-request comment of a plan (issue #24, items 3 to 5): what changes first, property by property, with
secrets only as changed; always under GitHub's 65,536-character comment limit (a larger body is refused 422:
"Body is too long (maximum is 65536 characters)"), whatever the plan's size; the findings when `plan` exits 1
and the config errors when it exits 2; the change in monthly cost.

Plans are made the way bench/plan_scaling.py makes them: prod's stack file with generated tenants (every third
with its own domain), planned under the mock engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.plan_scaling import tenants
from infra.plan import run_plan
from infra.review import comment, cost
from infra.stackfile import read_stack_file
from tests.conftest import CliResult, stack_document, write_stack

GITHUB_COMMENT_LIMIT = 65_536
NEW_TENANT = {"slug": "novaloja", "name": "Nova Loja", "currency": "BRL", "domains": ["loja.novaloja.com.br"]}


def _plan(tmp: Path, count: int, *, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    document = stack_document("prod")
    document["config"]["platform:tenants"] = tenants(count) + (extra or [])
    document["config"].pop("platform:waivers", None)
    path = write_stack(tmp, document, name="Pulumi.prod.yaml")
    return run_plan(read_stack_file(path), "prod").to_json()


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


_PLANS: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}


def _plans(count: int, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prod with `count` generated tenants, and with one more: each planned once per session (1,000 takes ~40 s)."""
    if count not in _PLANS:
        tmp = tmp_path_factory.mktemp(f"tenants{count}")
        _PLANS[count] = _plan(tmp, count), _plan(tmp, count, extra=[NEW_TENANT])
    return _PLANS[count]


@pytest.fixture(params=[1, 75, 1000])
def one_tenant_more(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
    count: int = request.param
    return count, *_plans(count, tmp_path_factory)


def test_a_one_tenant_change_shows_the_tenants_resources_and_its_dns_records_within_the_limit(
        one_tenant_more: tuple[int, dict[str, Any], dict[str, Any]]) -> None:
    count, before, after = one_tenant_more

    body = comment.render(comment.review("prod", after, before, 0, ""), artifact_url="https://example.test/a/1")

    assert body.startswith("<!-- plan:prod -->\n")
    assert _size(body) < GITHUB_COMMENT_LIMIT, f"{count} tenants: {_size(body)} bytes"
    assert "+ cloudflare:index/dnsRecord:DnsRecord  tenant-novaloja-subdomain" in body
    assert '+     name: "novaloja.acme-commerce.com"' in body
    # What the tenant's owner must publish, from the stack outputs.
    assert "+ tenants.novaloja.dnsRecordsForTenant[loja.novaloja.com.br].type: \"CNAME\"" in body
    assert "tenants.novaloja.dnsRecordsForTenant[_cf-custom-hostname.loja.novaloja.com.br].type: \"TXT\"" in body
    # Only what changes: none of the other tenants' resources.
    assert "tenant-t0000" not in body
    assert "[secret:" not in body and "secret changed" in body  # the tenant registry's secret version
    # The change in monthly cost: one more Cloudflare for SaaS custom hostname.
    hostnames_before = 1 + (count - 1) // 3 + 0  # every third generated tenant has a domain
    billed = max(0, hostnames_before + 1 - 100) - max(0, hostnames_before - 100)
    assert f"cost {cost.signed(0.10 * billed)}/month" in body.splitlines()[1]


def test_the_comment_of_a_first_deploy_of_a_thousand_tenants_fits_and_says_how_many_more(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    _before, after = _plans(1000, tmp_path_factory)
    body = comment.render(comment.review("prod", after, {"resources": []}, 0, ""),
                          artifact_url="https://example.test/a/1")
    full = comment.render(comment.review("prod", after, {"resources": []}, 0, ""), full=True)

    assert _size(body) < GITHUB_COMMENT_LIMIT
    assert "more changes**" in body and "https://example.test/a/1" in body
    assert "| `cloudflare:index/dnsRecord:DnsRecord` | 1" in body  # the summary counts every type
    assert _size(full) < 1024 * 1024  # the job summary's limit


def _with_engine_variables(document: dict[str, Any], change: Callable[[list[dict[str, Any]]], None]
                           ) -> dict[str, Any]:
    changed = json.loads(json.dumps(document))
    [engine] = [r for r in changed["resources"] if r["type"] == "gcp:cloudrunv2/service:Service"
                and r["name"] == "engine"]
    change(engine["inputs"]["template"]["containers"][0]["envs"])
    return changed


@pytest.fixture(scope="module")
def prod_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = write_stack(tmp_path_factory.mktemp("prod"), stack_document("prod"), name="Pulumi.prod.yaml")
    return run_plan(read_stack_file(path), "prod").to_json()


def test_the_engines_variables_are_diffed_by_name_and_a_secret_only_as_changed(prod_plan: dict[str, Any]) -> None:
    def change(envs: list[dict[str, Any]]) -> None:
        envs.insert(0, {"name": "FEATURE_FLAGS", "value": "checkout-v2"})
        for env in envs:
            if env["name"] == "WEB_CONCURRENCY":
                env["value"] = "8"
        envs.remove(next(e for e in envs if e["name"] == "CATALOG_PURGE_TOKEN"))

    after = _with_engine_variables(prod_plan, change)

    body = comment.render(comment.review("prod", after, prod_plan, 0, ""))

    prefix = "~     template.containers[commission-engine].envs"
    lines = [ln for ln in body.splitlines() if ln.startswith(prefix)]
    assert f'{prefix}[FEATURE_FLAGS].value: (added) "checkout-v2"' in lines, lines
    assert any(ln.startswith(f'{prefix}[WEB_CONCURRENCY].value: "') and ln.endswith(' → "8"') for ln in lines), lines
    assert any(ln.startswith(f"{prefix}[CATALOG_PURGE_TOKEN].valueSource") and "(removed)" in ln for ln in lines)
    # One added, one changed, one removed (its secret reference has two leaves): nothing shifted by the insertion.
    assert len(lines) == 4, lines


def test_a_secret_value_is_never_shown_not_even_its_digest(prod_plan: dict[str, Any]) -> None:
    after = json.loads(json.dumps(prod_plan))
    secrets = [r for r in after["resources"] if "secretData" in r["inputs"]]
    secrets[0]["inputs"]["secretData"] = "[secret:0123abcd]"

    body = comment.render(comment.review("prod", after, prod_plan, 0, ""))

    assert "secretData: (secret changed)" in body
    assert "0123abcd" not in body and "[secret:" not in body


def test_a_policy_failure_shows_its_findings(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    # tests/broken_stacks/waiver-for-another-subject.yaml: the waiver covers another tenant than the one it must.
    document["config"]["platform:waivers"][0]["subject"] = "lojabrasil"
    path = write_stack(tmp_path, document, name="Pulumi.prod.yaml")
    result = run_cli("plan", "--stack", "prod", "--config-file", str(path), "--json")
    assert result.code == 1

    body = comment.render(comment.review("prod", json.loads(result.out), None, 1, result.err))

    assert _size(body) < GITHUB_COMMENT_LIMIT
    assert "blocked by the policy pack" in body.splitlines()[1]
    assert "❌ **PLAT-WAF-002** [mandatory]" in body
    # The findings above come from the pull request's own copy of the pack (the `plan` job runs its code); the
    # verdict is the `policy` job's, which judges this plan with the base branch's pack
    # (.github/workflows/pull-request.yml). The comment must not present the one as the other.
    assert "judged by the base branch's policy pack" not in body
    assert "the pull request's own policy pack" in body and "the `policy` check" in body


def test_a_config_error_shows_every_error_and_no_plan(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    document = stack_document("prod")
    document["config"]["platform:tenants"][0]["slug"] = "Loja Brasil"
    document["config"]["platform:zone"]["plan"] = "platinum"
    path = write_stack(tmp_path, document, name="Pulumi.prod.yaml")
    result = run_cli("plan", "--stack", "prod", "--config-file", str(path), "--json")
    assert result.code == 2 and not result.out

    body = comment.render(comment.review("prod", None, None, 2, result.err))

    assert "invalid config: nothing was planned" in body.splitlines()[1]
    assert "platform:tenants[0].slug" in body and "platform:zone.plan: \"platinum\" is not allowed" in body


def test_a_quota_refusal_shows_the_error_and_not_the_diff_plan_wrote_beside_it() -> None:
    stderr = ("Changes against the earlier plan:\n  + vercel:index/projectDomain:ProjectDomain  t1\nDiff: 1 to add, "
              "0 to change, 0 to remove\nerror: the change is too large for one deploy:\nPulumi.prod.yaml: "
              "platform:tenants: this change makes 101 create calls\n")
    plan: dict[str, Any] = {"resources": [], "outputs": {}}

    body = comment.render(comment.review("prod", plan, plan, 2, stderr))

    assert "this change makes 101 create calls" in body
    assert "ProjectDomain  t1" not in body


def test_an_error_output_of_any_size_fits() -> None:
    stderr = "".join(f"Pulumi.prod.yaml: platform:tenants[{i}].slug: {'x' * 300!r} is not a slug\n"
                     for i in range(5_000))

    body = comment.render(comment.review("prod", None, None, 2, stderr))

    assert _size(body) < GITHUB_COMMENT_LIMIT
    assert "more lines" in body
