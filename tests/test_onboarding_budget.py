"""Onboarding many tenants at once: a change larger than a provider's API allows in one deploy is
refused at plan time (exit 2, the pull-request job), naming the limit; one within it passes.
Vercel: "Domain addition: 100 requests per hour per team" (https://vercel.com/docs/multi-tenant/limits);
Cloudflare: "1200 requests per five minute period per user"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult, stack_document, write_stack


def _with_new_tenants(tmp_path: Path, count: int, *, domains: bool = False) -> Path:
    document = stack_document("prod")
    document["config"]["platform:tenants"] += [
        {"slug": f"nova{i:04d}", "name": f"Nova {i}", "currency": "BRL",
         **({"domains": [f"loja.nova{i:04d}.com.br"]} if domains else {})} for i in range(count)]
    return write_stack(tmp_path, document, name="Pulumi.prod.yaml")


def _diff(tmp_path: Path, run_cli: Callable[..., CliResult], count: int, **kwargs: bool) -> CliResult:
    before = tmp_path / "before.json"
    before.write_text(run_cli("plan", "--stack", "prod", "--json").out)
    return run_cli("plan", "--stack", "prod", "--config-file", str(_with_new_tenants(tmp_path, count, **kwargs)),
                   "--diff-against", str(before))


def test_onboarding_more_tenants_than_vercel_adds_domains_in_an_hour_is_refused(
        tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = _diff(tmp_path, run_cli, 101)

    assert result.code == 2
    [line] = [ln for ln in result.err.splitlines() if "vercel:index/projectDomain" in ln]
    assert line.startswith("Pulumi.prod.yaml: platform:tenants: this change makes 101 create calls")
    assert "100 domain additions per hour per team" in line


def test_onboarding_within_every_budget_passes(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = _diff(tmp_path, run_cli, 90)

    assert result.code == 0, result.err
    assert "Diff: " in result.out


def test_a_first_deploy_of_six_hundred_tenants_is_refused_for_cloudflare_too(
        tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    before = tmp_path / "empty.json"
    before.write_text('{"resources": []}')
    path = _with_new_tenants(tmp_path, 600, domains=True)

    result = run_cli("plan", "--stack", "prod", "--config-file", str(path), "--diff-against", str(before))

    assert result.code == 2
    assert "1200 API requests per 5 minutes per user" in result.err
    assert "100 domain additions per hour per team" in result.err
