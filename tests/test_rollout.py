"""The rollout (infra/ops/rollout.py) offline: against a fake of the Cloud Run Admin API's service,
revision and traffic calls (tests/fake_cloudrun.py) and the schema-backed fake of Railway's API
(tests/railway_server.py), judged by a REAL Prometheus (Debian's `prometheus`) loaded, with `promtool
tsdb create-blocks-from openmetrics`, with the engine's own series: a healthy canary, one breaching
the 5xx ratio, one breaching P95, and staging before and after a bad deploy. Time is the rollout's own
clock, so a 15-minute rollout takes a second; Prometheus answers at that time (`time=`).

Run with `-s` to read each rollout's decision log.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

from components.backends.cloudrun import traffic
from components.backends.railway import TOKEN_ENV, RailwayClient, RailwayServiceProvider
from infra.ops import rollout
from infra.ops.rollout import CloudRun, Outcome, Policy, Prometheus, Railway
from stacks.prod import PROFILE as PROD
from stacks.staging import PROFILE as STAGING
from tests.fake_cloudrun import FakeCloudRun
from tests.railway_server import FakeRailway

TOKEN = "ya29.fake-access-token-for-the-test"
RAILWAY_TOKEN = "fake-railway-token-for-the-rollout"
SERVICE = "commission-engine"
STABLE = "commission-engine-00001-kez"
HEALTHY, ERRORS, SLOW = "commission-engine-00002-hwm", "commission-engine-00003-qfr", "commission-engine-00004-lpt"
REBOOTED = "commission-engine-00005-pbr"
"""A healthy canary whose step 2 sees PocketBase's VM reboot (a deploy changed its user-data, #20 item 13)."""
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.5, 5.0)  # engine/metrics.py
STEP_S = 15
# The data covers [START, END]; every rollout's clock runs inside it.
END = int(time.time()) // 60 * 60 - 300
START = END - 5400
ROLLOUT_AT = START + 1800
STAGING_BAD_FROM = START + 3600
"""staging serves healthily until then, then a bad deployment answers 4 % 5xx."""


@dataclass(frozen=True)
class Traffic:
    """One revision's traffic in the data: users' requests per second, their 5xx fraction and latency
    (fraction of requests at or under each bucket), and the platform's probes, fast and always 200."""

    users_per_s: float
    error_fraction: float
    latency: dict[float, float]
    probes_per_s: float = 20.0


FAST = {0.05: 0.5, 0.1: 0.8, 0.2: 0.97, 0.3: 0.99, 0.5: 1.0}
# 85 % at or under 0.7 s, so P95 lands in (0.7, 1.0]: about 0.95 s, above prod's 700 ms.
SLOW_LATENCY = {0.1: 0.4, 0.3: 0.7, 0.7: 0.85, 1.0: 0.97, 2.5: 1.0}
USERS_PER_S = 24.0
SCHEDULE = ((0, 10), (300, 50), (600, 100))
"""The canary's share of users' requests from ROLLOUT_AT on, as a rollout with prod's profile moves it."""
REBOOT = (ROLLOUT_AT + 345, ROLLOUT_AT + 435)
"""PocketBase is down during step 2 (300-600 s into the rollout): both revisions answer 503 to users' requests
(the engine's `PocketBaseError` handler) and /readyz names it (`checks.pocketbase` false) until the VM is back."""


def _share(t: int) -> float:
    shares = [percent for offset, percent in SCHEDULE if t >= ROLLOUT_AT + offset]
    return shares[-1] / 100 if shares else 0.0


def _canary(error_fraction: float, latency: dict[float, float]) -> Callable[[int], Traffic]:
    return lambda t: Traffic(USERS_PER_S * _share(t), error_fraction, latency)


def _rebooting(t: float) -> bool:
    return REBOOT[0] <= t < REBOOT[1]


def _through_reboot(share: Callable[[int], float]) -> Callable[[int], Traffic]:
    """A healthy revision's traffic, all of its users' requests failing while PocketBase reboots."""
    return lambda t: Traffic(USERS_PER_S * share(t), 1.0 if _rebooting(t) else 0.001, FAST)


PROD_SERIES: dict[str, Callable[[int], Traffic]] = {
    STABLE: _through_reboot(lambda t: 1 - _share(t)),
    REBOOTED: _through_reboot(_share),
    HEALTHY: _canary(0.002, FAST),
    # 2 % of users' requests fail; with the probes counted it would read 0.24 %, under the threshold.
    ERRORS: _canary(0.02, FAST),
    # With the probes counted P95 would read under 700 ms.
    SLOW: _canary(0.001, SLOW_LATENCY),
}


def _cumulative(latency: dict[float, float], le: float) -> float:
    below = [fraction for bound, fraction in latency.items() if bound <= le]
    return max(below, default=0.0)


def _series(labels: dict[str, str], traffic_at: Callable[[int], Traffic]) -> list[tuple[str, str, list[float]]]:
    """(family, labels, cumulative values at each timestamp) of one revision's or environment's counters and
    histogram buckets, as the engine exposes them: users' requests (201 or 503) and the probes (200)."""
    def cumulative(per_step: Callable[[Traffic], float]) -> list[float]:
        values, total = [], 0.0
        for t in range(START, END + 1, STEP_S):
            values.append(total)
            total += per_step(traffic_at(t)) * STEP_S
        return values

    def join(extra: dict[str, str]) -> str:
        return ",".join(f'{k}="{v}"' for k, v in {**labels, **extra}.items())

    users = {"route": "/v1/orders", "method": "POST", "tenant": "lojabrasil"}
    probes = {"route": "/readyz", "method": "GET", "tenant": "-"}
    out: list[tuple[str, str, list[float]]] = [
        ("http_requests_total", join({**users, "status": "201"}),
         cumulative(lambda r: r.users_per_s * (1 - r.error_fraction))),
        ("http_requests_total", join({**users, "status": "503"}), cumulative(lambda r: r.users_per_s * r.error_fraction)),
        ("http_requests_total", join({**probes, "status": "200"}), cumulative(lambda r: r.probes_per_s)),
    ]
    for le in (*BUCKETS, float("inf")):
        bound = "+Inf" if le == float("inf") else repr(le)
        out.append(("http_request_duration_seconds", join({**users, "status": "201", "le": bound}),
                    cumulative(lambda r, le=le: r.users_per_s * _cumulative(r.latency, le))))
        # Probes answer within 5 ms: in every bucket.
        out.append(("http_request_duration_seconds", join({**probes, "status": "200", "le": bound}),
                    cumulative(lambda r: r.probes_per_s)))
    return out


def _openmetrics() -> str:
    """Every series every 15 s over [START, END]."""
    families: dict[str, list[tuple[str, list[float]]]] = {}
    for revision, rates in PROD_SERIES.items():
        for family, labels, values in _series({"environment": "prod", "revision": revision}, rates):
            families.setdefault(family, []).append((labels, values))
    staging_ok, staging_bad = Traffic(6.0, 0.001, FAST), Traffic(6.0, 0.04, FAST)
    for family, labels, values in _series({"environment": "staging"},
                                           lambda t: staging_bad if t >= STAGING_BAD_FROM else staging_ok):
        families.setdefault(family, []).append((labels, values))
    lines: list[str] = []
    stamps = range(START, END + 1, STEP_S)
    for family, series in families.items():
        kind = "counter" if family.endswith("_total") else "histogram"
        lines.append(f"# TYPE {family.removesuffix('_total')} {kind}")
        sample = family if kind == "counter" else f"{family}_bucket"
        for labels, values in series:
            lines.extend(f"{sample}{{{labels}}} {value:.1f} {t}" for t, value in zip(stamps, values, strict=True))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's Prometheus on loopback, its TSDB backfilled with the series above."""
    for tool in ("prometheus", "promtool"):
        assert shutil.which(tool), f"{tool} is missing: python3 tools/dev.py test installs Debian's prometheus"
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "series.om").write_text(_openmetrics())
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(directory / "series.om"),
                    str(directory / "data")], check=True, capture_output=True, timeout=120)
    (directory / "prometheus.yml").write_text("global: {scrape_interval: 15s}\nscrape_configs: []\n")
    port = _free_port()
    process = subprocess.Popen(
        ["prometheus", f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
         "--storage.tsdb.retention.time=30d", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("Prometheus did not become ready") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class Clock:
    """The rollout's time: `sleep` moves it on, nothing waits."""

    def __init__(self, start: float) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def cloud_run() -> Iterator[FakeCloudRun]:
    with FakeCloudRun(TOKEN) as fake:
        yield fake


def _deployed(fake: FakeCloudRun, canary: str | None, ready: bool = True) -> None:
    """prod as the deploys leave it: the first `up` (nothing pinned yet), the first rollout's promotion `up`
    pinning it, then the new release's `up`, which pins the stable revision and tags the canary at 0 %."""
    fake.deploy(SERVICE, "registry/commission-engine:aaaaaaaaaaaa", traffic(None), revision=STABLE)
    fake.deploy(SERVICE, "registry/commission-engine:aaaaaaaaaaaa", traffic(STABLE))
    if canary is not None:
        fake.deploy(SERVICE, f"registry/commission-engine:{canary[-3:]}bbbbbbbbb", traffic(STABLE), ready=ready,
                    revision=canary)


READYZ = "https://api.acme-commerce.com/readyz"


def _engine_readyz(clock: Clock, pocketbase_down: Callable[[float], bool] = _rebooting) -> Callable[
        [str], tuple[int | None, dict[str, Any]]]:
    """The engine's /readyz through the edge at the rollout's time, as components/engine answers it: 503 naming
    PocketBase while it is down (both revisions alike), 200 otherwise."""
    def get(url: str) -> tuple[int | None, dict[str, Any]]:
        assert url == READYZ
        down = pocketbase_down(clock.now)
        return (503 if down else 200), {"ready": not down, "checks": {"pocketbase": not down, "redis": True}}
    return get


def _rollout(fake: FakeCloudRun, prometheus_url: str, policy: Policy | None = None,
             pocketbase_down: Callable[[float], bool] = _rebooting) -> Outcome:
    clock = Clock(ROLLOUT_AT)
    run = CloudRun("acme-commerce-prod", "southamerica-east1", TOKEN, fake.url, sleep=lambda _s: None)
    dependency = rollout.dependencies_down(READYZ, get=_engine_readyz(clock, pocketbase_down))
    outcome = rollout.cloud_run_rollout(run, Prometheus(prometheus_url), policy or Policy.from_profile(PROD.canary),
                                        "prod", clock=clock, sleep=clock.sleep, write=lambda _line: None,
                                        dependency=dependency)
    print("\n" + "\n".join(outcome.log))
    return outcome


def _after_pulumi_up(fake: FakeCloudRun, outcome: Outcome) -> dict[str, int]:
    """What a later `pulumi up` leaves: the program declares the block for what the stack exports."""
    fake.deploy(SERVICE, fake.services[f"{fake.parent}/services/{SERVICE}"].template["containers"][0]["image"],
                traffic(outcome.revision))
    return fake.traffic_of(SERVICE)


def test_a_healthy_canary_is_promoted_in_steps_and_a_later_up_keeps_it(cloud_run: FakeCloudRun, prometheus: str) -> None:
    _deployed(cloud_run, HEALTHY)
    assert cloud_run.traffic_of(SERVICE) == {STABLE: 100}, "the release's `up` gives the canary no traffic"

    outcome = _rollout(cloud_run, prometheus)

    assert (outcome.promoted, outcome.revision) == (True, HEALTHY)
    service = cloud_run.services[f"{cloud_run.parent}/services/{SERVICE}"]
    shares = [{cloud_run_target_name(t, service): t.get("percent", 0) for t in change if t.get("percent")}
              for change in service.traffic_changes]
    assert shares[-3:] == [{STABLE: 90, HEALTHY: 10}, {STABLE: 50, HEALTHY: 50}, {HEALTHY: 100}]
    assert len(service.revisions) == 2, "moving traffic makes no revision"
    assert sum("within thresholds" in line for line in outcome.log) >= 3
    assert _after_pulumi_up(cloud_run, outcome) == {HEALTHY: 100}


def cloud_run_target_name(target: dict[str, Any], service: Any) -> str:
    return str(service.resolve(target))


@pytest.mark.parametrize(("canary", "breach"), [(ERRORS, r"5xx ratio (1\.9|2\.0)\d% is above 0\.50%"),
                                                 (SLOW, r"P95 9\d\d ms is above 700 ms")])
def test_a_breaching_canary_is_rolled_back_at_its_first_step_and_a_later_up_keeps_the_stable(
        cloud_run: FakeCloudRun, prometheus: str, canary: str, breach: str) -> None:
    _deployed(cloud_run, canary)

    outcome = _rollout(cloud_run, prometheus)

    assert (outcome.promoted, outcome.revision) == (False, STABLE)
    assert re.search(breach, outcome.reason), outcome.reason
    assert cloud_run.traffic_of(SERVICE) == {STABLE: 100}
    assert any(line.endswith(f"step 1/3: 10 % to {canary} (serving {STABLE} 90 %, {canary} 10 %)")
               for line in outcome.log)
    assert not any("step 2/3" in line for line in outcome.log), "a breach ends the rollout at once"
    assert _after_pulumi_up(cloud_run, outcome) == {STABLE: 100}


def test_a_pocketbase_reboot_during_step_2_does_not_roll_back_a_healthy_canary(cloud_run: FakeCloudRun,
                                                                              prometheus: str) -> None:
    _deployed(cloud_run, REBOOTED)

    outcome = _rollout(cloud_run, prometheus)

    assert (outcome.promoted, outcome.revision) == (True, REBOOTED), outcome.reason
    assert cloud_run.traffic_of(SERVICE) == {REBOOTED: 100}
    paused = next(i for i, line in enumerate(outcome.log) if "PAUSED" in line)
    assert "at 50 %: pocketbase not serving" in outcome.log[paused], "the pause names the step and the dependency"
    resumed = next(i for i, line in enumerate(outcome.log) if "RESUMED" in line)
    judged_after = [line for line in outcome.log[resumed:] if f"check {REBOOTED} at 50 %" in line]
    assert judged_after and all("within thresholds" in line or "not enough requests" in line for line in judged_after)
    assert not any(f"check {REBOOTED}" in line for line in outcome.log[paused + 1:resumed]), "nothing judged meanwhile"


def test_a_reboot_the_readyz_probe_misses_is_told_apart_by_the_stable_revision_failing_alike(
        cloud_run: FakeCloudRun, prometheus: str) -> None:
    """A reboot between two probes: /readyz always answers ready, but both revisions' users' requests failed."""
    _deployed(cloud_run, REBOOTED)

    outcome = _rollout(cloud_run, prometheus, pocketbase_down=lambda _t: False)

    assert (outcome.promoted, outcome.revision) == (True, REBOOTED), outcome.reason
    assert any("NOT JUDGED: the stable revision failed alike" in line for line in outcome.log)


def test_a_bad_canary_is_still_rolled_back_when_pocketbase_reboots_during_its_rollout(
        cloud_run: FakeCloudRun, prometheus: str) -> None:
    _deployed(cloud_run, ERRORS)

    outcome = _rollout(cloud_run, prometheus)

    assert (outcome.promoted, outcome.revision) == (False, STABLE)
    assert "5xx ratio" in outcome.reason and cloud_run.traffic_of(SERVICE) == {STABLE: 100}


def test_a_pocketbase_that_does_not_come_back_stops_the_rollout_clearly(cloud_run: FakeCloudRun,
                                                                         prometheus: str) -> None:
    _deployed(cloud_run, REBOOTED)

    outcome = _rollout(cloud_run, prometheus, pocketbase_down=lambda t: t >= REBOOT[0])

    assert (outcome.promoted, outcome.revision) == (False, STABLE)
    assert "could not be judged: pocketbase not serving" in outcome.reason and "not the canary's fault" in outcome.reason
    assert cloud_run.traffic_of(SERVICE) == {STABLE: 100}


def test_no_traffic_moves_while_pocketbase_is_still_down_from_the_deploy(cloud_run: FakeCloudRun,
                                                                        prometheus: str) -> None:
    _deployed(cloud_run, HEALTHY)
    service = cloud_run.services[f"{cloud_run.parent}/services/{SERVICE}"]
    changes = len(service.traffic_changes)

    outcome = _rollout(cloud_run, prometheus, pocketbase_down=lambda _t: True)

    assert (outcome.promoted, outcome.revision) == (False, STABLE)
    assert len(service.traffic_changes) == changes, "the canary never took traffic"
    assert any("NOT STARTED" in line for line in outcome.log)


def test_a_canary_whose_own_readyz_fails_is_not_mistaken_for_a_pocketbase_outage() -> None:
    """At 50 % the load balancer sends about half the probes to each revision; only the canary's fail."""
    answers = iter([(503, {"ready": False, "checks": {"pocketbase": False, "redis": True}}),
                    (200, {"ready": True, "checks": {"pocketbase": True, "redis": True}})] * 5)
    outage = iter([(503, {"ready": False, "checks": {"pocketbase": False, "redis": True}})] * 5)

    assert rollout.dependencies_down(READYZ, get=lambda _u: next(answers))() is None
    assert rollout.dependencies_down(READYZ, get=lambda _u: next(outage))() is not None
    assert rollout.dependencies_down(READYZ, get=lambda _u: (None, {}))() is None, "no answer is the edge, not PocketBase"
    with_reason = iter([(503, {"ready": False, "checks": {"pocketbase": {"ok": False, "reason": "connection refused"},
                                                          "redis": {"ok": True}}})] * 5)
    down = rollout.dependencies_down(READYZ, get=lambda _u: next(with_reason))()
    assert down is not None and down.startswith("pocketbase not serving"), "a check carrying its reason still counts"


def test_a_revision_that_never_became_ready_never_takes_traffic(cloud_run: FakeCloudRun, prometheus: str) -> None:
    _deployed(cloud_run, HEALTHY, ready=False)

    outcome = _rollout(cloud_run, prometheus)

    assert (outcome.promoted, outcome.revision) == (False, STABLE)
    assert "did not become ready" in outcome.reason and "startup probe" in outcome.reason
    assert cloud_run.traffic_of(SERVICE) == {STABLE: 100}


def test_metrics_that_cannot_be_read_roll_back(cloud_run: FakeCloudRun) -> None:
    _deployed(cloud_run, HEALTHY)

    outcome = _rollout(cloud_run, "http://127.0.0.1:9")  # nothing listens

    assert (outcome.promoted, outcome.revision) == (False, STABLE)
    assert "metrics could not be read" in outcome.reason
    assert cloud_run.traffic_of(SERVICE) == {STABLE: 100}


def test_a_canary_too_quiet_to_judge_is_not_promoted(cloud_run: FakeCloudRun, prometheus: str) -> None:
    _deployed(cloud_run, HEALTHY)
    quiet = Policy.from_profile(PROD.canary)
    quiet = Policy(quiet.steps_percent, quiet.max_error_ratio, quiet.max_p95_s, quiet.bake_s, quiet.check_every_s,
                   min_requests=10**9)

    outcome = _rollout(cloud_run, prometheus, quiet)

    assert (outcome.promoted, outcome.revision) == (False, STABLE)
    assert "needed to judge it" in outcome.reason


def test_the_first_release_has_nothing_to_roll_out(cloud_run: FakeCloudRun, prometheus: str) -> None:
    cloud_run.deploy(SERVICE, "registry/commission-engine:aaaaaaaaaaaa", traffic(None), revision=STABLE)

    outcome = _rollout(cloud_run, prometheus)

    assert (outcome.promoted, outcome.revision) == (True, STABLE)
    assert _after_pulumi_up(cloud_run, outcome) == {STABLE: 100}


# ---------------------------------------------------------------------------------------------
# staging on Railway


STAGING_ENGINE: dict[str, Any] = {
    "project_id": "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "environment_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "name": SERVICE, "image": "ghcr.io/acme-commerce/commission-engine:111111111111", "region": "us-east4-eqdc4a",
    "num_replicas": 2, "vcpus": 2.0, "memory_gb": 2.0, "healthcheck_path": "/readyz",
    "variables": {"RELEASE": "one"}, "volume_mount_path": None, "public_port": None,
}


@pytest.fixture
def railway() -> Iterator[FakeRailway]:
    with FakeRailway(RAILWAY_TOKEN) as fake:
        yield fake


def _provider(fake: FakeRailway) -> RailwayServiceProvider:
    provider = RailwayServiceProvider(url=fake.url, backoff_s=0.0, poll_s=0.0, environ={TOKEN_ENV: RAILWAY_TOKEN})
    provider.configure(ConfigureRequest(Config({}, "platform")))
    return provider


def _two_releases(fake: FakeRailway) -> tuple[str, dict[str, Any]]:
    """Two `pulumi up`s of staging's engine: the service id and the second release's inputs."""
    provider = _provider(fake)
    created = provider.create(dict(STAGING_ENGINE))
    assert created.outs is not None
    news = {**STAGING_ENGINE, "image": "ghcr.io/acme-commerce/commission-engine:222222222222",
            "variables": {"RELEASE": "two"}}
    provider.update(created.id, created.outs, news)
    return str(created.id), news


def _watch(fake: FakeRailway, prometheus_url: str, at: float, health: Callable[[str], int | None] = lambda _u: 200,
           during: Callable[[Clock], None] | None = None) -> Outcome:
    clock = Clock(at)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if during is not None:
            during(clock)

    railway = Railway(RailwayClient(RAILWAY_TOKEN, fake.url, backoff_s=0.0), STAGING_ENGINE["project_id"],
                      STAGING_ENGINE["environment_id"])
    outcome = rollout.railway_rollout(railway, Prometheus(prometheus_url), Policy.from_profile(STAGING.canary),
                                      "staging", "https://api.acme-commerce-staging.dev/readyz", clock=clock,
                                      sleep=sleep, write=lambda _line: None, probe_url=health)
    print("\n" + "\n".join(outcome.log))
    return outcome


def test_a_deployment_whose_health_check_fails_never_serves(railway: FakeRailway, prometheus: str) -> None:
    provider = _provider(railway)
    created = provider.create(dict(STAGING_ENGINE))
    assert created.outs is not None
    bad = {**STAGING_ENGINE, "image": "ghcr.io/acme-commerce/commission-engine:badbadbadbad"}
    railway.config.unhealthy_images.add(bad["image"])

    with pytest.raises(Exception, match="FAILED"):
        provider.update(created.id, created.outs, bad)  # `pulumi up` fails: the gate
    outcome = _watch(railway, prometheus, ROLLOUT_AT)

    assert not outcome.promoted and "health check passes" in outcome.reason
    first, second = railway.state.deployments_of(created.id)
    assert (first.image, first.status) == (STAGING_ENGINE["image"], "SUCCESS"), "the previous deployment serves"
    assert second.status == "FAILED"


def test_a_healthy_staging_deployment_is_kept(railway: FakeRailway, prometheus: str) -> None:
    service_id, news = _two_releases(railway)

    outcome = _watch(railway, prometheus, ROLLOUT_AT)

    assert outcome.promoted, outcome.reason
    assert [d.image for d in railway.state.deployments_of(service_id)] == [STAGING_ENGINE["image"], news["image"]]
    assert "deploymentRollback" not in railway.state.operations


def test_a_staging_deployment_above_the_error_rate_is_rolled_back_to_the_previous_one(
        railway: FakeRailway, prometheus: str) -> None:
    service_id, _news = _two_releases(railway)

    outcome = _watch(railway, prometheus, STAGING_BAD_FROM + 60)

    assert not outcome.promoted and "5xx ratio 4.00% is above 0.50%" in outcome.reason
    latest = railway.state.deployments_of(service_id)[-1]
    assert (latest.image, latest.variables, latest.status) == (STAGING_ENGINE["image"], {"RELEASE": "one"}, "SUCCESS")
    assert railway.state.operations.count("deploymentRollback") == 1


def test_a_staging_deployment_that_crashes_or_stops_answering_is_rolled_back(railway: FakeRailway,
                                                                             prometheus: str) -> None:
    service_id, news = _two_releases(railway)
    crashed = railway.state.deployments_of(service_id)[-1]

    def crash(clock: Clock) -> None:
        if clock.now >= ROLLOUT_AT + 90:
            crashed.status = "CRASHED"

    outcome = _watch(railway, prometheus, ROLLOUT_AT, during=crash)

    assert not outcome.promoted and f"deployment {crashed.id} is CRASHED" in outcome.reason
    latest = railway.state.deployments_of(service_id)[-1]
    assert (latest.image, latest.status) == (STAGING_ENGINE["image"], "SUCCESS") and news["image"] != latest.image


def test_a_staging_deployment_whose_readyz_fails_through_the_edge_is_rolled_back(railway: FakeRailway,
                                                                                 prometheus: str) -> None:
    service_id, _news = _two_releases(railway)

    outcome = _watch(railway, prometheus, ROLLOUT_AT, health=lambda _url: 503)

    assert not outcome.promoted and "failed 3 checks in a row (last: 503)" in outcome.reason
    assert railway.state.deployments_of(service_id)[-1].image == STAGING_ENGINE["image"]


def test_the_rollout_command_needs_its_tokens_and_skips_stacks_without_canaries(
        run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_OAUTH_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("RAILWAY_TOKEN", raising=False)

    prod = run_cli("rollout", "--stack", "prod")
    staging = run_cli("rollout", "--stack", "staging")
    integration = run_cli("rollout", "--stack", "integration")

    assert prod.code == 2 and "GOOGLE_OAUTH_ACCESS_TOKEN" in prod.err
    assert staging.code == 2 and "RAILWAY_TOKEN" in staging.err
    assert integration.code == 0 and "nothing to do" in integration.out


def test_the_openmetrics_backfill_reads_back_as_written(prometheus: str) -> None:
    """The data itself: the stable revision's users' requests over five minutes, as generated."""
    reading = rollout.read(Prometheus(prometheus), f'{{environment="prod",revision="{STABLE}",route!~"{rollout.PROBES}"}}',
                           300, ROLLOUT_AT)
    assert reading.requests == pytest.approx(USERS_PER_S * 300, rel=0.06)
    assert reading.error_ratio == pytest.approx(0.001, rel=0.2)
    assert json.dumps(reading.p95_s) != "null"
