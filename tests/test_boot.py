"""Boot emulation (#20 item 19): every container service of each stack's plan, started here from its planned
spec, with its dependencies in the state the plan leaves them; its startup probe must pass within the probe's
own budget, measured against the real process, and its readiness must tell the truth.

The harness is tests/boot_harness.py. What runs here: the engine from components/engine's source (the image's
ENTRYPOINT and CMD, or the command the platform replaces them with), PocketBase (the real binary through the
image's entrypoint.sh, its replica on moto's S3), Redis (redis-server; prod's Memorystore as redis-server with
TLS and AUTH), Prometheus in agent mode and the self-hosted Prometheus (Debian's prometheus 2.42, where the image
is 2.55) and the Redis exporter (Debian's prometheus-redis-exporter 1.45, where the image is 1.67).

What cannot run here, and is only checked to be read from the plan (`boot_harness.CANNOT_RUN_HERE`):
cloudflared (needs Cloudflare's edge and a tunnel token), cAdvisor (needs a Docker daemon), the OpenTelemetry
Collector, Grafana and Tempo (no binaries here), Locomotive and json_exporter (no binaries; they read
Railway's API), and the stackdriver exporter (no binary; needs Google credentials).

The stopped standby PocketBase (its VM TERMINATED) is a blackhole here, as its internal address is in the VPC.
Each startup probe is allowed min(its budget, 30 s) here (`DEFAULT_CAP_S`), so the suite stays fast; prod's
Cloud Run budget is 180 s, and the failure message names both.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from pathlib import Path

import pytest

from infra.plan import Plan, PlannedResource
from tests.boot_harness import (
    EMULATIONS,
    StackBoot,
    applied_plan,
    booted,
    emulation_for,
    planned_containers,
    uncovered_container_types,
)

STACKS = ("integration", "staging", "prod")
READY_WITHIN_S = 20.0
"""How long a service may take to report ready once its dependency serves (the engine re-checks per request)."""


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {stack: applied_plan(stack) for stack in STACKS}


def test_every_container_service_of_every_plan_has_an_emulation_entry(plans: dict[str, Plan]) -> None:
    missing = [c.key for stack in STACKS for c in planned_containers(plans[stack])
               if emulation_for(plans[stack], c) is None]
    uncovered = {stack: uncovered_container_types(plans[stack]) for stack in STACKS}

    assert not missing, f"container services with no emulation entry (tests/boot_harness.py EMULATIONS): {missing}"
    assert uncovered == {stack: [] for stack in STACKS}, "resources that run an image the harness does not read"


def test_a_new_service_without_an_emulation_entry_is_caught(plans: dict[str, Plan]) -> None:
    plan = plans["integration"]
    urn = "urn:pulumi:integration::platform::docker:index/container:Container::search"
    new = PlannedResource(urn, "docker:index/container:Container", "search", None, True,
                          {"name": "search", "image": "example/search:1.0"},
                          {"name": "search", "image": "example/search:1.0"})
    runs_elsewhere = PlannedResource("urn:pulumi:integration::platform::kubernetes:apps/v1:Deployment::search",
                                     "kubernetes:apps/v1:Deployment", "search", None, True, {},
                                     {"spec": {"template": {"spec": {"containers": [{"image": "example/search"}]}}}})
    grown = dataclasses.replace(plan, resources=(*plan.resources, new, runs_elsewhere))

    unemulated = [c.key for c in planned_containers(grown) if emulation_for(grown, c) is None]

    assert unemulated == ["integration search/search"]
    assert uncovered_container_types(grown) == ["kubernetes:apps/v1:Deployment search"]


def test_the_budgets_follow_each_platforms_documented_rule(plans: dict[str, Plan]) -> None:
    containers = {c.key: c for stack in STACKS for c in planned_containers(plans[stack])}
    # Cloud Run: initialDelaySeconds + periodSeconds x failureThreshold (cloud.google.com/run/docs/configuring/
    # healthchecks); prod's engine declares period 3 s, threshold 60, no delay.
    startup = containers["prod engine-standby/commission-engine"].probe("startup")
    assert startup is not None and (startup.path, startup.budget) == ("/healthz", 0 + 3 * 60)
    # Docker: start period + interval x retries, and `pulumi up` waits at most wait_timeout (20 + 10 x 5 < 120).
    healthcheck = containers["integration database/pocketbase"].probe("healthcheck")
    assert healthcheck is not None and healthcheck.budget == 20 + 10 * 5
    # Railway: 300 s by default (docs.railway.com/reference/healthchecks); the engine's is its readiness.
    deploy = containers["staging engine/commission-engine"].probe("deploy")
    assert deploy is not None and (deploy.path, deploy.budget) == ("/readyz", 300)
    # The VM's container: `docker run` applies the image's HEALTHCHECK (interval 10 s, start 20 s, 5 retries).
    vm = containers["prod database/pocketbase"]
    assert vm.probe("healthcheck") is not None and vm.running
    standby = containers["prod database-standby/pocketbase"]
    assert not standby.running and "TERMINATED" in standby.why_stopped


def test_secrets_reach_each_container_as_test_values_the_same_wherever_the_plan_shares_them(
    plans: dict[str, Plan], tmp_path: Path,
) -> None:
    boot = StackBoot(plans["prod"], tmp_path)
    try:
        by_key = {c.key: c for c in boot.containers}
        engine, database = by_key["prod engine/commission-engine"], by_key["prod database/pocketbase"]
        engine_env, database_env = boot.environment(engine), boot.environment(database)
    finally:
        boot.close()

    # The engine's account: one generated password, read by the engine and set up by PocketBase's hooks.
    assert engine_env["POCKETBASE_PASSWORD"] == database_env["PB_ENGINE_PASSWORD"]
    assert engine_env["POCKETBASE_PASSWORD"] != engine.env["POCKETBASE_PASSWORD"], "the plan's stand-in, not a test value"
    # Memorystore's AUTH string and address inside the URL, its CA a real certificate the emulated instance serves.
    assert engine_env["REDIS_URL"].startswith("rediss://:") and "@127.0.0.1:" in engine_env["REDIS_URL"]
    assert engine_env["REDIS_CA_CERT"].startswith("-----BEGIN CERTIFICATE-----\nMII")
    # The primary PocketBase's address (its VM's internal IP) is where the emulated one listens here, over TLS
    # (#22 item 7), with a real certificate for that address in place of the one the stack generates.
    assert engine_env["POCKETBASE_URL"] == f"https://127.0.0.1:{boot.ports[database.key]}"
    assert engine_env["POCKETBASE_CA_CERT"].startswith("-----BEGIN CERTIFICATE-----\nMII")
    assert base64.b64decode(database_env["PB_TLS_CERT_B64"]).decode() == engine_env["POCKETBASE_CA_CERT"]


def test_what_cannot_run_here_says_why() -> None:
    reasons = {source: e.cannot_run for source, e in EMULATIONS.items() if e.cannot_run}

    assert all(len(reason) > 20 for reason in reasons.values())
    assert {"grafana/grafana", "prometheuscommunity/stackdriver-exporter"} <= reasons.keys()


def _readiness_failures(boot: StackBoot, seen: list[str]) -> list[str]:
    """Each readiness endpoint against the truth: 200 when every dependency serves, else 503 naming those that
    do not. Then each dependency the plan leaves stopped is started (as a failover would) and the service must
    turn ready."""
    failures: list[str] = []
    for container in boot.containers:
        emulation = boot.emulations[container.key]
        running = boot.running.get(container.key)
        if emulation is None or not emulation.ready_path or running is None or container.key not in boot.started:
            continue
        dependencies = boot.dependencies(container)
        down = [d for d in dependencies if not boot.serving(d)]
        status, body = boot.readiness(container)
        seen.append(f"  {container.key}: {emulation.ready_path} {status} with {', '.join(down) or 'nothing'} down: "
                    f"{body[:200]}")
        if not down and status != 200:
            failures.append(f"{container.key}: {emulation.ready_path} answered {status} while "
                            f"{', '.join(dependencies)} serve: {body[:300]}")
        if down and (status != 503 or not all(boot.role(d) in body.lower() for d in down)):
            failures.append(f"{container.key}: {emulation.ready_path} answered {status} while {', '.join(down)} "
                            f"do not serve; expected 503 naming {', '.join(boot.role(d) for d in down)}: {body[:300]}")
        for dependency in down:
            stopped = next(c for c in boot.containers if c.key == dependency)
            try:
                boot.wait_started(boot.start(stopped))
            except AssertionError as failure:
                failures.append(f"{dependency} (started as a failover would): {failure}")
                continue
        if down:
            began = time.monotonic()
            while (status := boot.readiness(container)[0]) != 200 and time.monotonic() < began + READY_WITHIN_S:
                time.sleep(0.5)
            seen.append(f"  {container.key}: {emulation.ready_path} {status} {time.monotonic() - began:.1f} s after "
                        f"{', '.join(down)} served")
            if status != 200:
                failures.append(f"{container.key}: not ready {READY_WITHIN_S:g} s after {', '.join(down)} served "
                                f"(last answer {status}): {boot.readiness(container)[1][:300]}")
    return failures


def _liveness_failures(boot: StackBoot) -> list[str]:
    failures: list[str] = []
    for key, running in boot.running.items():
        probe = running.container.probe("liveness")
        if probe is not None and key in boot.started and not boot.check(running, probe):
            failures.append(f"{key}: its {probe.describe()} failed once it had started")
    return failures


@pytest.mark.parametrize("stack", STACKS)
def test_every_runnable_service_starts_within_its_probe_budget_and_its_readiness_tells_the_truth(
    plans: dict[str, Plan], stack: str,
) -> None:
    with booted(plans[stack]) as (boot, results, failures):
        started = {r.container.key for r in results}
        failures += _liveness_failures(boot)
        seen: list[str] = []
        failures += _readiness_failures(boot, seen)
        report = "\n".join(f"  {r.container.key}: {r.probe.kind} probe passed {r.elapsed:.1f} s after its start "
                           f"(budget {r.probe.budget:g} s, allowed here {r.allowed:g} s)" for r in results)
        print(f"{stack}:\n{report}\nreadiness:\n" + "\n".join(seen))

    assert not failures, "\n\n".join(failures)
    assert started, f"{stack}: nothing started"
