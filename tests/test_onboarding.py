"""Onboarding a tenant is one entry in `platform:tenants`: the plan diff adds only that tenant's
resources and touches only the shared resources that list tenants (the engine's tenant registry, and
the zone rulesets when the tenant has its own limits); removing the entry reverses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.plan import PlanDiff, diff_plans
from tests.cloudflare_rules import Request, matches
from tests.conftest import plan_of, stack_document, write_stack

NEW_TENANT: dict[str, Any] = {
    "slug": "novaloja",
    "name": "Nova Loja",
    "currency": "BRL",
    "domains": ["www.novaloja.com.br", "novaloja.com.br"],
}


def _onboard(tmp_path: Path, stack: str, tenant: dict[str, Any]) -> tuple[PlanDiff, PlanDiff]:
    document = stack_document(stack)
    before = plan_of(write_stack(tmp_path, document, "Pulumi.before.yaml"), stack).to_json()
    document["config"]["platform:tenants"].append(tenant)
    after = plan_of(write_stack(tmp_path, document, "Pulumi.after.yaml"), stack).to_json()
    return diff_plans(before, after), diff_plans(after, before)


def test_a_tenant_with_two_custom_domains_adds_exactly_its_records_hostnames_and_vercel_domains(
    tmp_path: Path,
) -> None:
    onboard, offboard = _onboard(tmp_path, "staging", NEW_TENANT)

    added = sorted((r["type"], r["name"]) for r in onboard.added)
    assert added == [
        ("cloudflare:index/customHostname:CustomHostname", "tenant-novaloja-custom-novaloja-com-br"),
        ("cloudflare:index/customHostname:CustomHostname", "tenant-novaloja-custom-www-novaloja-com-br"),
        ("cloudflare:index/dnsRecord:DnsRecord", "tenant-novaloja-subdomain"),
        ("platform:tenant:TenantSite", "tenant-novaloja"),
        ("random:index/randomPassword:RandomPassword", "engine-key-novaloja-admin"),
        ("random:index/randomPassword:RandomPassword", "engine-key-novaloja-api"),
        ("vercel:index/projectDomain:ProjectDomain", "tenant-novaloja-vercel-novaloja-acme-commerce-staging-dev"),
        ("vercel:index/projectDomain:ProjectDomain", "tenant-novaloja-vercel-novaloja-com-br"),
        ("vercel:index/projectDomain:ProjectDomain", "tenant-novaloja-vercel-www-novaloja-com-br"),
    ]
    # The shared resources that list tenants: the engine service, through its tenant registry, and the edge's
    # request-header rule that proves to Vercel a storefront request came through the edge (#22 item 5).
    assert sorted((r["name"], keys) for r, keys in onboard.changed) == [("edge-origin-auth", ["rules"]),
                                                                        ("engine", ["variables"])]
    assert onboard.removed == []
    # Removing the entry removes exactly what adding it added.
    assert sorted(r["urn"] for r in offboard.removed) == sorted(r["urn"] for r in onboard.added)
    assert offboard.added == []
    assert sorted((r["name"], keys) for r, keys in offboard.changed) == [("edge-origin-auth", ["rules"]),
                                                                         ("engine", ["variables"])]


def test_a_tenant_with_its_own_limits_changes_only_the_shared_rulesets_that_list_tenants(tmp_path: Path) -> None:
    tenant = {**NEW_TENANT, "rateLimitPerMinute": 3000, "wafMode": "log"}

    onboard, offboard = _onboard(tmp_path, "prod", tenant)

    assert all("novaloja" in r["name"] for r in onboard.added)
    assert onboard.removed == []
    assert sorted((r["name"], keys) for r, keys in onboard.changed) == [
        ("edge-origin-auth", ["rules"]),  # the storefront hosts the edge's header goes to (#22 item 5)
        ("edge-rate-limits", ["rules"]),
        ("edge-waf", ["rules"]),
        # The failover region's engine knows the same tenants, from its own secret (#13 item 7).
        ("engine-standby-tenants-json-v", ["secretData"]),
        ("engine-tenants-json-v", ["secretData"]),  # prod: the registry is a Secret Manager version
    ]
    rate_limits = next(r for r, _ in onboard.changed if r["name"] == "edge-rate-limits")
    override = [rule for rule in rate_limits["inputs"]["rules"]
                if matches(rule["expression"], Request("novaloja.acme-commerce.com", "/"))]
    assert [rule["ratelimit"]["requestsPerPeriod"] for rule in override] == [3000]
    assert sorted(r["urn"] for r in offboard.removed) == sorted(r["urn"] for r in onboard.added)
    assert sorted(r["name"] for r, _ in offboard.changed) == ["edge-origin-auth", "edge-rate-limits", "edge-waf",
                                                               "engine-standby-tenants-json-v", "engine-tenants-json-v"]


def test_the_first_custom_domain_of_a_stack_also_declares_the_zone_fallback_origin(tmp_path: Path) -> None:
    onboard, _ = _onboard(tmp_path, "integration", NEW_TENANT)

    shared = sorted(r["name"] for r in onboard.added if "novaloja" not in r["name"])


    assert shared == ["edge-saas-fallback", "edge-saas-fallback-origin"]
