"""Every address the program hands to a client leads to something that exists when it is used: the
storefront's API URL to a record the stack declares, and the Grafana alerting resources to the
Grafana that holds the rules' data (#16.8)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from infra.plan import Plan, PlannedResource
from tests.cloudflare_rules import Request, matches
from tests.conftest import STACKS, stack_document
from tests.environment import service_environment


def _records(plan: Plan) -> dict[str, PlannedResource]:
    return {r.inputs["name"]: r for r in plan.resources if r.type == "cloudflare:index/dnsRecord:DnsRecord"}


def _reaches(plan: Plan, host: str, service_url: str) -> bool:
    """Whether a proxied record for `host` leads, through a tunnel's ingress, to `service_url`."""
    record = _records(plan).get(host)
    if record is None or record.inputs.get("proxied") is not True:
        return False
    tunnels = [r for r in plan.resources if r.type == "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"]
    configs = [r for r in plan.resources
               if r.type == "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"]
    for tunnel in tunnels:
        if tunnel.urn not in record.dependencies:
            continue
        for config in configs:
            if tunnel.urn in config.dependencies and {"hostname": host, "service": service_url} in \
                    config.inputs["config"]["ingresses"]:
                return True
    return False


@pytest.mark.parametrize("stack", STACKS)
def test_the_storefront_calls_an_api_host_the_stack_declares(stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    [api_url] = [r.wire_inputs["value"]["value"] for r in plan.resources
                 if r.type == "vercel:index/projectEnvironmentVariable:ProjectEnvironmentVariable"
                 and r.inputs["key"] == "NEXT_PUBLIC_API_URL"]
    host = urlsplit(api_url).hostname
    assert host is not None

    record = _records(plan).get(host)
    assert record is not None, f"{stack}: the storefront calls {host}, which no record of the stack declares"
    assert record.inputs["proxied"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_resources_go_to_the_grafana_that_holds_the_rules_data(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    plan = committed_plans[stack]
    grafana_resources = [r for r in plan.resources if r.custom and r.type.startswith("grafana:")]
    containers = {r.inputs["name"]: r for r in plan.resources if r.type == "docker:index/container:Container"}
    assert grafana_resources

    if "grafana" not in containers:
        # A hosted Grafana, named by the stack file, which exists before the stack.
        assert all(r.provider is None for r in grafana_resources)
        assert stack_document(stack)["config"]["grafana:url"].startswith("https://")
        return
    providers = {r.urn: r for r in plan.resources if r.type == "pulumi:providers:grafana"}
    used = {r.provider.rsplit("::", 1)[0] for r in grafana_resources if r.provider}
    assert len(used) == 1 and all(r.provider for r in grafana_resources), \
        f"{stack} runs its own Grafana, but its alerting resources go to the stack file's grafana:url"
    provider = providers[used.pop()]
    assert containers["grafana"].urn in provider.dependencies, "the provider waits for its Grafana"
    url = provider.inputs["url"]
    assert _reaches(plan, str(urlsplit(url).hostname), "http://grafana:3000"), url


@pytest.mark.parametrize("stack", STACKS)
def test_the_api_hosts_ssl_mode_is_one_its_origin_can_satisfy(stack: str, committed_plans: dict[str, Plan]) -> None:
    """Railway serves a proxied custom domain with its `*.up.railway.app` certificate: "Do not use
    Full (Strict) mode with Railway" (https://docs.railway.com/networking/troubleshooting/ssl, error 526).
    Cloud Run's load balancer holds a certificate for the host itself; a tunnel takes no SSL mode."""
    plan = committed_plans[stack]
    host = f"api.{stack_document(stack)['config']['platform:zone']['name']}"
    [zone_ssl] = [r.inputs["value"] for r in plan.resources
                  if r.type == "cloudflare:index/zoneSetting:ZoneSetting" and r.inputs["settingId"] == "ssl"]
    mode = zone_ssl
    for ruleset in (r for r in plan.resources if r.type == "cloudflare:index/ruleset:Ruleset"
                    and r.inputs["phase"] == "http_config_settings"):
        for rule in ruleset.inputs["rules"]:
            if matches(rule["expression"], Request(host, "/v1/orders")) and "ssl" in rule["actionParameters"]:
                mode = rule["actionParameters"]["ssl"]
    engine = next(r for r in plan.resources if r.inputs.get("name") == "commission-engine" and r.custom)

    assert zone_ssl == "strict", "every other host keeps Full (strict)"
    if engine.type == "pulumi-python:dynamic/railway:Service":
        assert mode == "full"
    else:
        assert mode == "strict"


@pytest.mark.parametrize("stack", STACKS)
def test_the_edge_proves_itself_to_the_engine_with_the_secret_the_engine_checks(
        stack: str, committed_plans: dict[str, Plan]) -> None:
    """engine.api.EdgeGuard refuses a request for PUBLIC_HOSTNAME without X-Origin-Auth equal to
    ORIGIN_AUTH_SECRET; the edge's late transform rule must add exactly that, on that host."""
    plan = committed_plans[stack]
    host = f"api.{stack_document(stack)['config']['platform:zone']['name']}"
    env = service_environment(plan, "commission-engine")
    [ruleset] = [r for r in plan.resources if r.type == "cloudflare:index/ruleset:Ruleset"
                 and r.inputs["phase"] == "http_request_late_transform"]
    rules = ruleset.wire_inputs["rules"]
    rules = rules["value"] if isinstance(rules, dict) else rules

    assert env["PUBLIC_HOSTNAME"][0] == host
    secret, is_secret = env["ORIGIN_AUTH_SECRET"]
    assert is_secret and len(secret) >= 32
    applied = [r for r in rules if matches(r["expression"], Request(host, "/v1/orders"))]
    assert [r["actionParameters"]["headers"]["X-Origin-Auth"] for r in applied] == [
        {"operation": "set", "value": secret}]
    assert "[secret" in str(ruleset.inputs["rules"]), "the ruleset holds the secret as a secret"
