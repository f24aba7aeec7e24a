"""What each committed stack's plan hands its services, where the profile, the README or the document sets
the number: the backups PocketBase keeps and Redis's memory limit. The expected values are the profile's
and the document's, read here by hand, never the functions that compute the services' settings (issue #21;
both survived `tools/dev.py mutate` before these tests)."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
import yaml

from infra.plan import Plan, PlannedResource
from policies.rule import Resource, service_env
from policies.rules.compute_vm import vm_env
from stacks import registry
from tests import document_numbers as doc
from tests.conftest import PROJECT_DIR, STACKS

DOCKER, RAILWAY = "docker:index/container:Container", "pulumi-python:dynamic/railway:Service"
VM = "gcp:compute/instance:Instance"
MAXMEMORY = re.compile(r"--maxmemory (\d+)mb")


def _named(plan: Plan, names: tuple[str, ...], types: tuple[str, ...]) -> list[PlannedResource]:
    """The service itself (prod's standby, stopped, is judged by tests/test_failover.py)."""
    return [r for r in plan.resources if r.type in types and r.inputs.get("name") in names]


SECRET = "4dabf18193072939515e22adb298388d"
"""Pulumi's signature key of a secret value on the wire (sdk/go/common/resource/sig: "4dabf18193072939515e22adb298388d")."""


def _reveal(value: Any) -> Any:
    """The plan-time stand-ins inside secrets (a plan holds no real secret)."""
    if isinstance(value, dict):
        items: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        if SECRET in items and "value" in items:
            return _reveal(items["value"])
        return {k: _reveal(v) for k, v in items.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def _env(resource: PlannedResource) -> dict[str, Any] | None:
    """The service's plain environment as the pack reads it; None for a VM whose user-data (its `docker run`)
    is computed at apply, as prod's is (the update's policy run judges it, PLAT-VM-002)."""
    as_policy = Resource(resource.type, resource.name, resource.urn, _reveal(resource.wire_inputs or resource.inputs))
    env = vm_env(as_policy) if resource.type == VM else service_env(as_policy)
    if resource.type == VM and not isinstance(env, dict):
        return None
    assert isinstance(env, dict), (resource.type, resource.name)
    return env


@pytest.mark.parametrize("stack", STACKS)
def test_pocketbase_keeps_a_daily_backup_for_every_day_the_profile_retains(stack: str,
                                                                          committed_plans: dict[str, Plan]) -> None:
    """C7: daily snapshots; the profile's `backup_retention_days` is how many days of them are kept, so
    PocketBase must keep at least that many backups (one a day), not the newest one alone."""
    found = _named(committed_plans[stack], ("pocketbase", f"pocketbase-{stack}"), (DOCKER, RAILWAY, VM))
    assert found, stack
    retention_days = registry.PROFILES[stack].disaster_recovery.backup_retention_days
    for resource in found:
        env = _env(resource)
        if env is None:
            continue
        cron = str(env["PB_BACKUP_CRON"]).split()
        assert len(cron) == 5 and cron[2:] == ["*", "*", "*"], (stack, env["PB_BACKUP_CRON"], doc.C7_QUOTE)
        assert int(env["PB_BACKUP_MAX_KEEP"]) >= retention_days, (stack, env["PB_BACKUP_MAX_KEEP"], retention_days)
        if "PB_RESTORE_TEST_INTERVAL_SECONDS" in env:  # the stacks that replicate (A5: periodic restore tests)
            hours = registry.PROFILES[stack].disaster_recovery.restore_test_interval_hours
            assert int(env["PB_RESTORE_TEST_INTERVAL_SECONDS"]) == hours * 3600, (stack, env, hours)


def _redis_memory_mib(resource: PlannedResource) -> float:
    if resource.type == DOCKER:
        return float(resource.inputs["memory"])
    return float(resource.inputs["memory_gb"]) * 1024


def _redis_command(resource: PlannedResource) -> str:
    if resource.type == DOCKER:
        return " ".join(str(word) for word in resource.wire_inputs["command"])
    return str(resource.wire_inputs["start_command"])


@pytest.mark.parametrize("stack", STACKS)
def test_redis_evicts_at_three_quarters_of_its_memory(stack: str, committed_plans: dict[str, Plan]) -> None:
    """README: Redis with "`maxmemory` at 75 % of its memory and `allkeys-lru`" (the rest is the process's own
    and fragmentation's); C3: 1 GB of RAM. Memorystore sizes itself and is judged by its own tests."""
    found = _named(committed_plans[stack], ("redis",), (DOCKER, RAILWAY))
    assert found or stack == "prod", stack  # prod's Redis is Memorystore
    for resource in found:
        command = _redis_command(resource)
        match = MAXMEMORY.search(command)
        assert match is not None, (stack, command)
        memory_mib = _redis_memory_mib(resource)
        assert memory_mib == doc.REDIS_STEADY.memory_gib * 1024, (stack, memory_mib, doc.C3_QUOTE)
        assert int(match.group(1)) * 4 == memory_mib * 3, (stack, command)
        assert "--maxmemory-policy allkeys-lru" in command, (stack, command)


D7_QUOTE = "Canary deploy in production, watching key metrics."


def test_prods_deploy_is_a_canary_that_starts_on_part_of_the_traffic() -> None:
    """D7: a canary first takes a part of the traffic, each step more, and only the last step all of it; a
    single step of 100 % is a plain deploy however the rollout names it."""
    canary = registry.PROFILES["prod"].canary
    steps = canary.traffic_steps_percent

    assert canary.enabled, D7_QUOTE
    assert len(steps) >= 2 and 0 < steps[0] < 100 and steps[-1] == 100, (steps, D7_QUOTE)
    assert list(steps) == sorted(set(steps)), (steps, D7_QUOTE)


def test_the_restore_test_runs_more_often_than_its_absence_alert_looks_back() -> None:
    """A5 ("periodic restore tests"): each run reports; RestoreTestNotReporting pages when no report arrived
    over its look-back window (the SLO spec), so every stack must test a restore more often than that, or
    the page is routine. Read from the spec, not from the profile's default."""
    spec = yaml.safe_load((PROJECT_DIR / "components" / "observability" / "slos.yaml").read_text())
    alert = next(a for a in spec["alerts"] if a["name"] == "RestoreTestNotReporting")
    match = re.search(r"backup_restore_last_run_timestamp_seconds\[(\d+)h\]", alert["expr"])
    assert match is not None, alert["expr"]
    window_hours = int(match.group(1))
    for name, profile in registry.PROFILES.items():
        hours = profile.disaster_recovery.restore_test_interval_hours
        assert 0 < hours < window_hours, (name, hours, window_hours)


LOOPBACK = "127.0.0.1"
"""README: the docker backend publishes nothing "but on loopback" (the edge reaches the host through a tunnel)."""


def test_the_docker_host_publishes_on_loopback_only(committed_plans: dict[str, Plan]) -> None:
    published: list[tuple[Any, dict[str, Any]]] = [
        (r.inputs.get("name"), port) for r in committed_plans["integration"].resources if r.type == DOCKER
        for port in cast(list[dict[str, Any]], r.inputs.get("ports") or [])]
    assert published, "the engine is published for the tunnel"
    assert all(port.get("ip") == LOOPBACK for _, port in published), published
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    ports = [str(p) for service in compose["services"].values() for p in service.get("ports", [])]
    assert ports and all(p.startswith(LOOPBACK + ":") for p in ports), ports


# pulumiverse_vercel ProjectVercelAuthenticationArgs.deployment_type: "Must be one of `standard_protection_new`
# (Standard Protection), `standard_protection` (Legacy Standard Protection), `all_deployments`,
# `only_preview_deployments`, or `none`"; every value but `none` keeps preview deployments behind Vercel's login.
PROTECTS_PREVIEWS = {"standard_protection_new", "standard_protection", "all_deployments", "only_preview_deployments"}


@pytest.mark.parametrize("stack", STACKS)
def test_preview_deployments_are_never_public(stack: str, committed_plans: dict[str, Plan]) -> None:
    """A preview builds any branch's code with the stack's preview variables: it must not be open to anyone."""
    projects = [r for r in committed_plans[stack].resources if r.type == "vercel:index/project:Project"]
    assert projects, stack
    for project in projects:
        if project.inputs.get("previewDeploymentsDisabled") is True:
            continue
        protection = cast(dict[str, Any], project.inputs.get("vercelAuthentication") or {})
        assert protection.get("deploymentType") in PROTECTS_PREVIEWS, (stack, protection)


def _matches(matcher: dict[str, str], labels: dict[str, str]) -> bool:
    value = labels.get(matcher["label"], "")
    pattern = matcher["value"]
    return {"=": value == pattern, "!=": value != pattern, "=~": re.fullmatch(pattern, value) is not None,
            "!~": re.fullmatch(pattern, value) is None}[matcher["match"]]


def _routed(policy: dict[str, Any], labels: dict[str, str]) -> set[str]:
    """Grafana's notification policy tree (grafana.com/docs/grafana/latest/alerting/fundamentals/
    notifications/notification-policies/): child policies are tried in order, the first that matches takes the
    alert unless it says `continue`, then the next matching sibling too; when no child matches, the parent's
    contact point receives it."""
    reached: set[str] = set()
    for child in cast(list[dict[str, Any]], policy.get("policies") or []):
        if all(_matches(m, labels) for m in child.get("matchers", [])):
            reached |= _routed(child, labels)
            if not child.get("continue"):
                break
    return reached or {str(policy["contactPoint"])}


def test_pages_reach_slack_and_e_mail_and_tickets_e_mail(committed_plans: dict[str, Plan]) -> None:
    """Every page reaches the on-call's chat and the alert e-mails (platform:alerts.emails); a ticket the e-mails."""
    for stack in ("staging", "prod"):
        policies = [r for r in committed_plans[stack].resources
                    if r.type == "grafana:alerting/notificationPolicy:NotificationPolicy"]
        assert len(policies) == 1, stack
        tree = policies[0].inputs
        page = _routed(tree, {"severity": "page", "environment": stack, "alertname": "Api5xxRateHigh"})
        ticket = _routed(tree, {"severity": "ticket", "environment": stack, "alertname": "ContainerCpuHigh"})
        assert page == {f"platform-{stack}-slack", f"platform-{stack}-email"}, (stack, page)
        assert ticket == {f"platform-{stack}-email"}, (stack, ticket)


def test_the_stale_restore_alert_fires_after_the_days_its_runbook_states() -> None:
    """A5: BackupRestoreTestStale pages once no restore has been verified for the days its runbook tells the
    on-call ("for over 8 days"): the number the page is read by, so a threshold changed alone fails here."""
    spec = yaml.safe_load((PROJECT_DIR / "components" / "observability" / "slos.yaml").read_text())
    alert = next(a for a in spec["alerts"] if a["name"] == "BackupRestoreTestStale")
    stated = re.search(r"for over (\d+) days", alert["runbook"])
    assert stated is not None, alert["runbook"]
    assert float(alert["above"]) == int(stated.group(1)) * 86400, (alert["above"], alert["runbook"])
