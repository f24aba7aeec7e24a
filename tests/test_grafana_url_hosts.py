"""grafana:url is where the deploy sends GRAFANA_AUTH (pulumiverse_grafana/config/vars.py: `url` "The root URL of a
Grafana server", `auth` from GRAFANA_AUTH): a Grafana Cloud stack's must be https://<slug>.grafana.net, and its host
is compared with the other environments' as the resolver would see it (case-insensitive, one trailing dot
dropped, the port not part of the name, IDNA-mapped: Python's `idna` codec maps fullwidth s (U+FF53) to s, RFC 3490
nameprep)."""

from __future__ import annotations

import pytest

from stacks.identity import canonical_host, shared_problems
from stacks.providerconfig import grafana_cloud_url_problem, https_url_problem

STAGING = "acme-commerce-staging.grafana.net"
FULLWIDTH = "acme-commerce-\uff53taging.grafana.net"
FULLWIDTH_URL = f"https://{FULLWIDTH}"


@pytest.mark.parametrize("url", [
    "https://grafana.attacker.example", "https://evil.example.com/acme-commerce.grafana.net",
    "https://acme-commerce.grafana.net.", "https://acme-commerce.grafana.net:8443",
    "https://user@acme-commerce.grafana.net", FULLWIDTH_URL,
    "https://acme-commerce.grafana.net/api", "http://acme-commerce.grafana.net",
    "https://acme-commerce.grafana.net.attacker.example",
])
def test_a_grafana_cloud_stack_url_must_be_a_grafana_net_stack(url: str) -> None:
    assert grafana_cloud_url_problem(url) is not None


@pytest.mark.parametrize("url", ["https://acme-commerce.grafana.net", "https://acme-commerce-staging.grafana.net/"])
def test_the_committed_forms_pass(url: str) -> None:
    assert grafana_cloud_url_problem(url) is None


@pytest.mark.parametrize("url", ["https://grafana.example.com.", "https://grafänä.example.com"])
def test_any_https_url_with_a_trailing_dot_or_non_ascii_host_is_refused(url: str) -> None:
    problem = https_url_problem(url)
    assert problem is not None and ("trailing dot" in problem or "non-ASCII" in problem)


@pytest.mark.parametrize("host", ["ACME-Commerce-Staging.grafana.net", "acme-commerce-staging.grafana.net.",
                                  FULLWIDTH])
def test_the_canonical_host_is_the_one_the_resolver_sees(host: str) -> None:
    assert canonical_host(host) == STAGING


@pytest.mark.parametrize("url", ["https://ACME-Commerce-Staging.grafana.net", f"https://{STAGING}.",
                                 f"https://{STAGING}:443", FULLWIDTH_URL])
def test_prod_naming_stagings_grafana_stack_in_any_spelling_is_shared(url: str) -> None:
    problems = shared_problems("prod", {"grafana:url": url}, "[undecrypted]")
    assert any("Pulumi.staging.yaml: grafana:url" in p for p in problems), problems
