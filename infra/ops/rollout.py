"""`python -m infra rollout --stack STACK`: the engine's new release, watched, and undone on a breach (D7, D8).

**prod (Cloud Run, `CanaryProfile.enabled`).** `pulumi up` creates the new revision beside the one that
serves: the program pins all traffic to the revision the last rollout promoted and tags the newest one
`canary` at 0 % (components/backends/cloudrun.py `traffic`). This command then moves traffic to the
canary in the profile's steps (10 % -> 50 % -> 100 %), each baked for `bake_seconds` while the canary's
own 5xx ratio and P95, read from the stack's Prometheus by its `revision` label, are checked every
`check_interval_seconds`. Before the first step and before each check it reads the engine's /readyz through the
edge: while it names PocketBase (or Redis) as not serving on every probe, nothing is judged (`Bake`). A deploy that
changes PocketBase's user-data reboots its VM when the VM notices (components/backends/gce.py CONFIG_WATCH, after
`pulumi up` returned), so the workflow cannot order the reboot before the rollout without waiting for PocketBase
anyway; waiting here also covers a reboot for any other reason. A breach sends all traffic back to the previous
revision (the very block the program declares, so nothing is left for a later `pulumi up` to undo) and exits 1
with the reason.
After the last step the deploy runs `pulumi up` once more with `PLATFORM_PROMOTE_ENGINE_REVISION` set
to the promoted revision: the program declares the same block the rollout left and exports it as
`engineServingRevision`, which every later `pulumi up` reads back from the stack's own outputs.

**staging (Railway).** Railway has no traffic split, and a deployment whose health check fails never
takes traffic (the provider fails `pulumi up`). After the deploy this command watches the live
deployment for `bake_seconds`: Railway's status (CRASHED), `/readyz` through the edge and the stack's
5xx ratio and P95. On a breach it calls `deploymentRollback` on the previous deployment (Railway
restores its image and variables) and exits 1 with the reason.

Every decision is printed as a line a person can read, timed from the start. Exit codes: 0 promoted or
kept (or nothing to roll out), 1 rolled back or not promoted, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi

from components.backends.cloudrun import CANARY_TAG, REVISION, STABLE_TAG, traffic
from components.backends.railway import API_URL, RailwayClient
from infra.ops import annotate

ENGINE_SERVICE = "commission-engine"
"""The engine's service name on every backend (components/api.py `engine_spec`)."""
SERVING_OUTPUT = "engineServingRevision"
PROMOTE_ENV = "PLATFORM_PROMOTE_ENGINE_REVISION"
# Cloud Run names a revision `<service>-<generation>-<suffix>`: a DNS label (RFC 1035), 63 characters at most.
REVISION_NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
RUN_API = "https://run.googleapis.com"
REVISION_LABEL = "revision"
"""The label the engine's series carry the Cloud Run revision in (the metrics agent's `K_REVISION`)."""
PROBES = "/healthz|/readyz|/metrics"
"""Routes left out of the judgement: the platform's probes and scrapes, not users' requests."""
EXIT_OK, EXIT_ROLLED_BACK, EXIT_INVALID = 0, 1, 2


def serving_revision() -> pulumi.Output[str | None]:
    """The revision the engine's traffic is pinned to, for the program.

    While `PLATFORM_PROMOTE_ENGINE_REVISION` is set (the deploy's promotion `up`, after a rollout), that
    revision; otherwise what this stack exported last time, read through a StackReference to itself
    (the stack's own outputs are its state: pulumi/pulumi#3722 shows a stack reading its output back on
    the next update). An environment variable, not stack config: `pulumi up --config` would save the
    value in Pulumi.<stack>.yaml, where a stale copy would later pin an old revision.
    """
    promoted = os.environ.get(PROMOTE_ENV, "").strip()
    if promoted:
        if not REVISION_NAME.fullmatch(promoted):
            raise ValueError(f"{PROMOTE_ENV}={promoted!r} is not a Cloud Run revision name")
        return pulumi.Output.from_input(promoted)
    # A DIY backend's stacks belong to the organization named `organization` (pulumi.com/docs/iac/concepts/
    # state-and-backends/#diy-backend); the SDK's mocks set none.
    organization = pulumi.get_organization() or "organization"
    own = pulumi.StackReference("engine-serving-revision",
                                f"{organization}/{pulumi.get_project()}/{pulumi.get_stack()}")

    def pick(outputs: Any) -> str | None:
        value = cast(Mapping[str, Any], outputs or {}).get(SERVING_OUTPUT)
        return value if isinstance(value, str) and value else None

    return own.outputs.apply(pick)


# ---------------------------------------------------------------------------------------------
# What a rollout is judged by


@dataclass(frozen=True)
class Policy:
    steps_percent: tuple[int, ...]
    max_error_ratio: float
    """5xx over all requests, as a fraction."""
    max_p95_s: float
    bake_s: float
    check_every_s: float
    min_requests: int
    """Fewer requests than this in a step's window say nothing yet; a whole step with fewer rolls back."""

    @classmethod
    def from_profile(cls, canary: Any) -> Policy:
        """From `stacks.profile.CanaryProfile`."""
        return cls(tuple(canary.traffic_steps_percent), canary.rollback_error_rate_percent / 100,
                   canary.rollback_p95_latency_ms / 1000, float(canary.bake_seconds),
                   float(canary.check_interval_seconds), int(canary.min_requests))

    def describe(self) -> str:
        return (f"roll back above {self.max_error_ratio:.2%} 5xx or P95 {self.max_p95_s * 1000:.0f} ms, "
                f"judged once {self.min_requests} requests are in")


class MetricsError(Exception):
    pass


class Prometheus:
    """Prometheus's HTTP API (prometheus.io/docs/prometheus/latest/querying/api/): instant queries only.
    Grafana serves it for a data source at `/api/datasources/proxy/uid/<uid>` with a service account token
    (grafana.com/docs/grafana/latest/developers/http_api/data_source/#data-source-proxy-calls)."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, timeout_s: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s

    def query(self, expr: str, at: float) -> float | None:
        """The single value of `expr` at `at` (Unix seconds); None when it has no value (no series, NaN)."""
        query = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        request = urllib.request.Request(f"{self.url}/api/v1/query?{query}", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload: Any = json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise MetricsError(f"Prometheus answered HTTP {err.code} to {expr!r}") from None
        except (urllib.error.URLError, TimeoutError, ValueError) as err:
            raise MetricsError(f"cannot query Prometheus at {self.url}: {err}") from None
        if payload.get("status") != "success":
            raise MetricsError(f"Prometheus refused {expr!r}: {payload.get('error')}")
        result = cast(list[dict[str, Any]], payload["data"]["result"])
        if not result:
            return None
        if len(result) > 1:
            raise MetricsError(f"{expr!r} has {len(result)} series; expected one")
        value = float(result[0]["value"][1])
        return None if value != value else value  # NaN: no requests to divide by


@dataclass(frozen=True)
class Reading:
    requests: float
    errors: float
    p95_s: float | None
    window_s: int

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p95 = "no latency yet" if self.p95_s is None else f"P95 {self.p95_s * 1000:.0f} ms"
        return (f"5xx {self.error_ratio:.2%} ({self.errors:.1f} of {self.requests:.0f} requests), {p95}, "
                f"last {self.window_s} s")


def read(prometheus: Prometheus, selector: str, window_s: int, at: float) -> Reading:
    """Requests, 5xx and P95 of the engine's own series matching `selector` over the last `window_s`."""
    window = f"[{window_s}s]"
    inner = selector.strip("{}")
    requests = prometheus.query(f"sum(increase(http_requests_total{{{inner}}}{window}))", at) or 0.0
    errors = prometheus.query(f'sum(increase(http_requests_total{{{inner},status=~"5.."}}{window}))', at) or 0.0
    p95 = prometheus.query("histogram_quantile(0.95, sum by (le) "
                           f"(increase(http_request_duration_seconds_bucket{{{inner}}}{window})))", at)
    return Reading(requests, errors, p95, window_s)


def canary_selector(environment: str, revision: str | None = None) -> str:
    """The series of users' requests a stack served, or one revision of it: by the labels the engine's metrics
    agent adds (components/observability/cloud.py `sidecar_labels`), the platform's probes and scrapes left out."""
    by_revision = f'{REVISION_LABEL}="{revision}",' if revision is not None else ""
    return f'{{environment="{environment}",{by_revision}route!~"{PROBES}"}}'


def breach(reading: Reading, policy: Policy) -> str | None:
    """Why `reading` fails the policy; None when it passes or says nothing yet."""
    if reading.requests < policy.min_requests:
        return None
    if reading.error_ratio > policy.max_error_ratio:
        return f"5xx ratio {reading.error_ratio:.2%} is above {policy.max_error_ratio:.2%}"
    if reading.p95_s is not None and reading.p95_s > policy.max_p95_s:
        return f"P95 {reading.p95_s * 1000:.0f} ms is above {policy.max_p95_s * 1000:.0f} ms"
    return None


class DecisionLog:
    """Lines a person reads, each timed from the start of the rollout (`+MM:SS`)."""

    def __init__(self, clock: Callable[[], float], write: Callable[[str], None] | None = None) -> None:
        self.clock = clock
        self.start = clock()
        self.lines: list[str] = []
        self.write: Callable[[str], None] = write or _print

    def __call__(self, message: str) -> None:
        elapsed = int(self.clock() - self.start)
        line = f"+{elapsed // 60:02d}:{elapsed % 60:02d}  {message}"
        self.lines.append(line)
        self.write(line)


@dataclass
class Outcome:
    promoted: bool
    revision: str | None
    """What serves all traffic at the end (None: nothing could be said)."""
    reason: str
    log: list[str] = field(default_factory=list[str])


Dependency = Callable[[], str | None]
"""Why the engine's dependencies are not serving right now (None: they are)."""
DEPENDENCY_WAIT_S = 600.0
"""How long a rollout pauses, in all, for PocketBase to serve again before it gives up on judging the canary. A deploy
that changes PocketBase's user-data reboots its VM (components/backends/gce.py CONFIG_WATCH); the engine waits 150 s
for it at start (infra/program.py POCKETBASE_START_WAIT_SECONDS), so ten minutes is a reboot gone wrong."""


@dataclass
class Bake:
    """One step's bake: checks every `check_every_s` until `bake_s`, a breach ending it at once.

    With a `dependency`, each check first asks whether PocketBase serves. While it does not, nothing is judged:
    both revisions fail alike (#20 item 13: a deploy reboots PocketBase's VM during the canary), which says
    nothing about the canary. The rollout pauses, and once PocketBase serves again the step is judged afresh
    from that moment, so the outage's 5xx are outside the window; past `dependency_wait_s` of pauses in all it
    gives up with that reason (the canary was never judged, so it is not promoted)."""

    prometheus: Prometheus
    selector: str
    policy: Policy
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    log: DecisionLog
    dependency: Dependency | None = None
    dependency_wait_s: float = DEPENDENCY_WAIT_S
    baseline: str | None = None
    """The stable revision's selector, compared with the canary's on a 5xx breach (`_shared`)."""
    paused_s: float = 0.0

    def wait_for_dependency(self, what: str) -> str | None:
        """None once the dependency serves (at once if it does); else why the rollout cannot go on."""
        check = self.dependency
        down = check() if check is not None else None
        if check is None or down is None:
            return None
        self.log(f"PAUSED {what}: {down}; a dependency outage is not the canary's fault, so nothing is judged "
                 f"until it serves again (at most {self.dependency_wait_s - self.paused_s:.0f} s more)")
        while down is not None:
            if self.paused_s >= self.dependency_wait_s:
                self.log(f"GIVING UP {what}: {down} after {self.paused_s:.0f} s of pauses")
                return (f"the canary could not be judged: {down} for {self.paused_s:.0f} s (at most "
                        f"{self.dependency_wait_s:.0f} s of pauses), not the canary's fault")
            pause = min(self.policy.check_every_s, self.dependency_wait_s - self.paused_s)
            self.sleep(pause)
            self.paused_s += pause
            down = check()
        self.log(f"RESUMED {what}: the engine's dependencies serve again; the step is judged afresh from now")
        return None

    def _shared(self, canary: Reading, window: int) -> bool:
        """Whether the stable revision (`baseline`) breached the 5xx ratio over the same window too: then the
        canary's 5xx are a shared cause (a dependency's outage), not the canary's. Only while the stable revision
        serves enough requests to say so (not at 100 %)."""
        if self.baseline is None or canary.error_ratio <= self.policy.max_error_ratio:
            return False
        try:
            stable = read(self.prometheus, self.baseline, window, self.clock())
        except MetricsError:
            return False
        shared = stable.requests >= self.policy.min_requests and stable.error_ratio > self.policy.max_error_ratio
        if shared:
            self.log(f"NOT JUDGED: the stable revision failed alike ({stable.describe()}): a shared cause, not the "
                     "canary's; the step is judged afresh from now")
        return shared

    def run(self, what: str, extra: Callable[[], str | None] | None = None) -> str | None:
        """None when the step passed, else the reason to roll back."""
        started = self.clock()
        last: Reading | None = None
        while True:
            elapsed = self.clock() - started
            if elapsed >= self.policy.bake_s:
                break
            self.sleep(min(self.policy.check_every_s, self.policy.bake_s - elapsed))
            if self.dependency is not None and self.dependency() is not None:
                if (reason := self.wait_for_dependency(what)) is not None:
                    return reason
                started, last = self.clock(), None  # the outage's requests are not the canary's to answer for
                continue
            window = max(int(self.clock() - started), 1)
            if extra is not None and (reason := extra()) is not None:
                return reason
            try:
                last = read(self.prometheus, self.selector, window, self.clock())
            except MetricsError as err:
                # Nothing known is nothing safe: a canary nobody can see is not promoted.
                self.log(f"check: metrics unavailable ({err})")
                return f"the metrics could not be read: {err}"
            reason = breach(last, self.policy)
            verdict = ("not enough requests to judge yet" if last.requests < self.policy.min_requests
                       else "within thresholds" if reason is None else f"BREACH: {reason}")
            self.log(f"check {what}: {last.describe()}: {verdict}")
            if reason is not None and self._shared(last, window):
                # An outage shorter than a check interval escapes the /readyz probe; the stable revision's own
                # 5xx over the same window tell it apart from the canary's fault.
                self.paused_s += window
                if self.paused_s > self.dependency_wait_s:
                    return (f"the canary could not be judged: the stable revision failed alike for "
                            f"{self.paused_s:.0f} s of this rollout (at most {self.dependency_wait_s:.0f} s), "
                            "not the canary's fault")
                started, last = self.clock(), None
                continue
            if reason is not None:
                return reason
        if last is None or last.requests < self.policy.min_requests:
            seen = 0 if last is None else last.requests
            return (f"only {seen:.0f} requests reached {what} in {self.policy.bake_s:.0f} s "
                    f"(at least {self.policy.min_requests} are needed to judge it)")
        return None


# ---------------------------------------------------------------------------------------------
# Cloud Run


class CloudRunError(Exception):
    pass


class CloudRun:
    """The Cloud Run Admin API v2, as much as a rollout needs: `services.get`, `services.patch` (a
    long-running operation, polled with `operations.get`) and `revisions.get`
    (cloud.google.com/run/docs/reference/rest/v2/projects.locations.services)."""

    def __init__(self, project: str, region: str, token: str, url: str = RUN_API, timeout_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = 2.0, wait_s: float = 600.0) -> None:
        self.parent = f"projects/{project}/locations/{region}"
        self.token = token
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.poll_s = poll_s
        self.wait_s = wait_s

    def service_name(self, service: str) -> str:
        return f"{self.parent}/services/{service}"

    def _call(self, method: str, name: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/v2/{name}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return cast(dict[str, Any], json.loads(response.read()))
        except urllib.error.HTTPError as err:
            # An error is a google.rpc.Status, {"error": {"code", "message", "status"}}
            # (cloud.google.com/apis/design/errors).
            try:
                status: Any = json.loads(err.read()).get("error", {})
            except ValueError:
                status = {}
            raise CloudRunError(f"Cloud Run {method} {name}: HTTP {err.code} {status.get('status', '')}: "
                                f"{status.get('message', err.reason)}".replace(self.token, "[token]")) from None
        except (urllib.error.URLError, TimeoutError) as err:
            raise CloudRunError(f"cannot reach the Cloud Run Admin API at {self.url}: {err}") from None

    def service(self, service: str) -> dict[str, Any]:
        return self._call("GET", self.service_name(service))

    def revision(self, service: str, revision: str) -> dict[str, Any]:
        return self._call("GET", f"{self.service_name(service)}/revisions/{revision}")

    def settled(self, service: str) -> dict[str, Any]:
        """The service once Cloud Run is done reconciling it (`reconciling` false, REST v2 Service)."""
        deadline = time.monotonic() + self.wait_s
        while True:
            found = self.service(service)
            if not found.get("reconciling"):
                return found
            if time.monotonic() >= deadline:
                raise CloudRunError(f"{service} is still reconciling after {self.wait_s:.0f} s")
            self.sleep(self.poll_s)

    def set_traffic(self, service: dict[str, Any], targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Read, modify, write: the service as read with only its traffic changed, under its etag, so a
        concurrent change fails (ABORTED) instead of being overwritten, and the unchanged template makes
        no new revision. Returns the service once the change serves."""
        body = {**service, "traffic": [dict(t) for t in targets]}
        operation = self._call("PATCH", service["name"], body)
        deadline = time.monotonic() + self.wait_s
        while not operation.get("done"):
            if time.monotonic() >= deadline:
                raise CloudRunError(f"the traffic change {operation.get('name')} is not done after {self.wait_s:.0f} s")
            self.sleep(self.poll_s)
            operation = self._call("GET", str(operation["name"]))
        if "error" in operation:
            error = operation["error"]
            raise CloudRunError(f"the traffic change failed: {error.get('message', error)}")
        settled = self.settled(short(service["name"]) or "")
        condition = _dict(settled.get("terminalCondition"))
        if condition.get("state") not in (None, "CONDITION_SUCCEEDED"):
            raise CloudRunError(f"the service is not serving after the traffic change: {condition.get('message')}")
        return settled


def _print(line: str) -> None:
    print(line, flush=True)


def _dict(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [_dict(v) for v in cast(list[Any], value)] if isinstance(value, list) else []


def short(name: str | None) -> str | None:
    """A revision's own name from a resource name (`projects/.../revisions/<name>`) or itself."""
    return name.rsplit("/", 1)[-1] if name else None


def split(stable: str, canary: str, percent: int) -> list[dict[str, Any]]:
    """A step: `percent` to the canary by name, the rest to the stable revision, both tagged."""
    if percent >= 100:
        return [dict(t) for t in pinned(canary)]
    return [{"type": REVISION, "revision": stable, "percent": 100 - percent, "tag": STABLE_TAG},
            {"type": REVISION, "revision": canary, "percent": percent, "tag": CANARY_TAG}]


def pinned(revision: str) -> list[dict[str, Any]]:
    """All traffic to `revision`: the program's own block for it (so `pulumi up` changes nothing after)."""
    return [dict(t) for t in traffic(revision)]


def serving(service: Mapping[str, Any]) -> dict[str, int]:
    """Revision -> percent of what serves now (`trafficStatuses`; a percent of 0 is left out of the JSON)."""
    out: dict[str, int] = {}
    latest = short(service.get("latestReadyRevision"))
    for status in _dicts(service.get("trafficStatuses")):
        percent = int(status.get("percent") or 0)
        name = short(status.get("revision")) or (latest if str(status.get("type", "")).endswith("_LATEST") else None)
        if percent and name:
            out[name] = out.get(name, 0) + percent
    return out


def describe_traffic(shares: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {percent} %" for name, percent in sorted(shares.items(), key=lambda kv: -kv[1]))


def cloud_run_rollout(run: CloudRun, prometheus: Prometheus, policy: Policy, environment: str,
                      clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                      write: Callable[[str], None] | None = None, service: str = ENGINE_SERVICE,
                      dependency: Dependency | None = None, dependency_wait_s: float = DEPENDENCY_WAIT_S) -> Outcome:
    log = DecisionLog(clock, write)
    found = run.settled(service)
    now = serving(found)
    log(f"rollout of {service} ({environment}): serving {describe_traffic(now) or 'nothing'}")
    created, ready = short(found.get("latestCreatedRevision")), short(found.get("latestReadyRevision"))
    stable = max(now, key=lambda name: now[name]) if now else None
    if created and created != ready:
        revision = run.revision(service, created)
        why = "; ".join(f"{c.get('type')}: {c.get('message') or c.get('state')}" for c in revision.get("conditions", [])
                        if c.get("state") != "CONDITION_SUCCEEDED")
        log(f"canary {created} is not ready ({why or 'no condition says why'}): it never took traffic; "
            f"{stable} keeps serving")
        return Outcome(False, stable, f"the new revision {created} did not become ready: {why}", log.lines)
    canary = ready
    if canary is None:
        return Outcome(False, stable, "the service has no ready revision", log.lines)
    if len(now) > 1:
        # A rollout that stopped half way (a cancelled job): the stable side is the one tagged so.
        tagged = [short(s.get("revision")) for s in _dicts(found.get("trafficStatuses")) if s.get("tag") == STABLE_TAG]
        stable = tagged[0] if tagged and tagged[0] else stable
        log(f"traffic is split: an earlier rollout did not finish; {stable} is the stable revision")
    if stable == canary and len(now) == 1:
        log(f"nothing to roll out: {canary} is the newest ready revision and serves 100 %")
        return Outcome(True, canary, "nothing to roll out", log.lines)
    if stable is None:
        return Outcome(False, None, "nothing serves traffic: cannot tell a stable revision", log.lines)
    log(f"canary {canary} is ready; stable {stable}; steps {' -> '.join(f'{p} %' for p in policy.steps_percent)}, "
        f"{policy.bake_s:.0f} s each; {policy.describe()}")
    selector = canary_selector(environment, canary)
    bake = Bake(prometheus, selector, policy, clock, sleep, log, dependency, dependency_wait_s,
                baseline=canary_selector(environment, stable))
    # The canary takes no traffic while PocketBase is still rebooting from this very deploy.
    if (reason := bake.wait_for_dependency("before step 1")) is not None:
        log(f"NOT STARTED: {reason}; {stable} keeps serving")
        return Outcome(False, stable, reason, log.lines)
    for number, percent in enumerate(policy.steps_percent, start=1):
        found = run.set_traffic(found, split(stable, canary, percent))
        log(f"step {number}/{len(policy.steps_percent)}: {percent} % to {canary} "
            f"(serving {describe_traffic(serving(found))})")
        reason = bake.run(f"{canary} at {percent} %")
        if reason is not None:
            found = run.set_traffic(run.settled(service), pinned(stable))
            log(f"ROLLED BACK: {reason}; all traffic to {stable} (serving {describe_traffic(serving(found))})")
            return Outcome(False, stable, reason, log.lines)
        log(f"step {number}/{len(policy.steps_percent)} passed")
    if policy.steps_percent[-1] < 100:
        found = run.set_traffic(found, pinned(canary))
    log(f"PROMOTED: {canary} serves 100 % (serving {describe_traffic(serving(found))}); the deploy records it "
        f"with `{PROMOTE_ENV}={canary} pulumi up`")
    return Outcome(True, canary, "promoted", log.lines)


# ---------------------------------------------------------------------------------------------
# Railway


LIVE = ("SUCCESS", "SLEEPING")
DEAD = ("CRASHED", "FAILED", "REMOVED")


@dataclass
class Railway:
    """The Railway calls of a staging rollout, over the provider's client (components/backends/railway.py,
    whose DOCUMENTS hold these too, validated against Railway's schema)."""

    client: RailwayClient
    project_id: str
    environment_id: str
    service: str = ENGINE_SERVICE

    def deployments(self) -> list[dict[str, Any]]:
        data = self.client.execute("deployments", {
            "input": {"projectId": self.project_id, "environmentId": self.environment_id}, "first": 50})
        nodes = [edge["node"] for edge in data["deployments"]["edges"]]
        mine = [n for n in nodes if _dict(n.get("service")).get("name") == self.service]
        return sorted(mine, key=lambda n: str(n["createdAt"]), reverse=True)

    def status(self, deployment_id: str) -> str:
        return str(self.client.execute("deployment", {"id": deployment_id})["deployment"]["status"])

    def rollback(self, deployment_id: str) -> None:
        self.client.execute("deploymentRollback", {"id": deployment_id})


def probe(url: str, timeout_s: float = 5.0) -> int | None:
    """The HTTP status of GET `url`; None when nothing answered."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "platform-rollout"}),
                                    timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, TimeoutError, OSError):
        return None


def readyz(url: str, timeout_s: float = 5.0) -> tuple[int | None, dict[str, Any]]:
    """The status and JSON body of GET `url` (the engine's /readyz: `{"ready", "checks": {"pocketbase", "redis"}}`,
    components/engine api.py); (None, {}) when nothing answered."""
    request = urllib.request.Request(url, headers={"User-Agent": "platform-rollout", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), _json_object(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _json_object(err.read())
    except (urllib.error.URLError, TimeoutError, OSError):
        return None, {}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        return _dict(json.loads(body))
    except ValueError:
        return {}


def dependencies_down(url: str, samples: int = 5,
                      get: Callable[[str], tuple[int | None, dict[str, Any]]] = readyz) -> Dependency:
    """A `Dependency` reading the engine's /readyz through the edge: down only when EVERY one of `samples` answers
    names a failing dependency (`checks.<name>` false). The load balancer splits requests between the revisions
    at random, so a canary whose own settings break its database access answers some probes and the stable
    revision the others: that canary is still judged, by its metrics, and rolled back; an outage of PocketBase
    itself fails every answer. No answer at all (the edge, the network) is not a dependency's outage either."""
    def down() -> str | None:
        failing: set[str] = set()
        for _ in range(samples):
            status, body = get(url)
            names = _failing(_dict(body.get("checks")))
            if status is None or status == 200 or not names:
                return None
            failing |= names
        return f"{' and '.join(sorted(failing))} not serving ({url} answered 503 naming it {samples} times in a row)"
    return down


def _failing(checks: Mapping[str, Any]) -> set[str]:
    """The dependencies a /readyz body names as failing: any value but `true`, `"ok"` or an object saying
    `"ok": true` / `"status": "ok"` (the engine answers booleans today; a reason in their place still counts)."""
    def ok(value: Any) -> bool:
        if isinstance(value, dict):
            found = _dict(value)
            return found.get("ok") is True or found.get("status") == "ok"
        return value is True or value == "ok"
    return {name for name, value in checks.items() if not ok(value)}


def railway_rollout(railway: Railway, prometheus: Prometheus, policy: Policy, environment: str, health_url: str,
                    clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                    write: Callable[[str], None] | None = None, probe_url: Callable[[str], int | None] = probe,
                    failures_to_breach: int = 3, wait_s: float = 900.0) -> Outcome:
    log = DecisionLog(clock, write)
    found = railway.deployments()
    if not found:
        return Outcome(False, None, f"Railway has no deployment of {railway.service}", log.lines)
    current = found[0]
    previous = next((d for d in found[1:] if d.get("canRollback")), None)
    log(f"watch of {railway.service} ({environment}): deployment {current['id']} is {current['status']}; "
        f"previous {previous['id'] if previous else 'none'}")
    if current["status"] not in LIVE:
        why = (f"deployment {current['id']} is {current['status']}: Railway switches traffic only once the health "
               "check passes (docs.railway.com/deployments/healthchecks), so the previous deployment serves")
        log(f"NOT LIVE: {why}")
        return Outcome(False, previous["id"] if previous else None, why, log.lines)
    failures = [0]

    def health() -> str | None:
        status = railway.status(current["id"])
        if status in DEAD:
            return f"deployment {current['id']} is {status}"
        code = probe_url(health_url)
        failures[0] = 0 if code == 200 else failures[0] + 1
        if failures[0]:
            log(f"check: {health_url} answered {code or 'nothing'} ({failures[0]} in a row)")
        if failures[0] >= failures_to_breach:
            return f"{health_url} failed {failures[0]} checks in a row (last: {code or 'no answer'})"
        return None

    log(f"baking {policy.bake_s:.0f} s, checks every {policy.check_every_s:.0f} s: Railway's status, {health_url}, "
        f"{policy.describe()}")
    reason = Bake(prometheus, canary_selector(environment), policy, clock, sleep,
                  log).run(f"deployment {current['id']}", extra=health)
    if reason is None:
        log(f"KEPT: deployment {current['id']} passed its bake")
        return Outcome(True, current["id"], "kept", log.lines)
    if previous is None:
        log(f"BREACH: {reason}; no earlier deployment can be rolled back to")
        return Outcome(False, current["id"], f"{reason}; nothing to roll back to", log.lines)
    before = {d["id"] for d in found}
    railway.rollback(previous["id"])
    log(f"BREACH: {reason}; deploymentRollback to {previous['id']} (its image and variables)")
    deadline = clock() + wait_s
    while True:
        made = [d for d in railway.deployments() if d["id"] not in before]
        status = made[0]["status"] if made else None
        if status in LIVE:
            log(f"ROLLED BACK: deployment {made[0]['id']} (from {previous['id']}) is {status}")
            return Outcome(False, made[0]["id"], reason, log.lines)
        if status in DEAD or clock() >= deadline:
            log(f"ROLLBACK FAILED: the rollback deployment is {status or 'not there'}")
            return Outcome(False, None, f"{reason}; and the rollback did not deploy ({status})", log.lines)
        sleep(policy.check_every_s / 6)


# ---------------------------------------------------------------------------------------------
# The command


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    rollout = commands.add_parser("rollout", help="move traffic to the engine's new release in steps, or roll it back")
    rollout.add_argument("--stack", required=True)
    rollout.add_argument("--config-file", help="a stack file to use instead of Pulumi.<stack>.yaml")
    rollout.add_argument("--prometheus-url", help="the Prometheus HTTP API to judge by (default: the stack's Grafana "
                                                  "data source, with $GRAFANA_TOKEN)")
    rollout.add_argument("--run-api-url", default=RUN_API, help="the Cloud Run Admin API (token: "
                                                                "$GOOGLE_OAUTH_ACCESS_TOKEN)")
    rollout.add_argument("--railway-api-url", help="Railway's GraphQL API (token: $RAILWAY_TOKEN, a project token)")
    rollout.add_argument("--health-url", help="the engine's /readyz through the edge: what staging's watch probes, and "
                                              "what prod's canary reads PocketBase's state from (default: "
                                              "https://api.<zone>/readyz)")


def main(args: argparse.Namespace) -> int:
    from components.edge import api_hostname
    from infra.ops import load_stack

    loaded = load_stack(args.stack, Path(args.config_file) if args.config_file else None)
    if loaded is None:
        return EXIT_INVALID
    raw, model = loaded
    policy = Policy.from_profile(model.profile.canary)
    prometheus_url = args.prometheus_url or (
        f"{str(raw.values.get('grafana:url', '')).rstrip('/')}/api/datasources/proxy/uid/"
        f"{model.alerts.prometheus_datasource_uid}")
    headers = {"Authorization": f"Bearer {os.environ['GRAFANA_TOKEN']}"} if os.environ.get("GRAFANA_TOKEN") else {}
    prometheus = Prometheus(prometheus_url, headers)
    # Each step, the promotion and a rollback are drawn on the dashboards (infra/ops/annotate.py).
    write = annotate.rollout_writer(annotate.Annotator.from_env(
        os.environ, model.environment, str(raw.values.get("grafana:url", ""))), _print)
    backend = model.services["engine"].backend
    if backend == "cloudrun" and model.profile.canary.enabled and model.gcp is not None:
        token = os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN", "")
        if not token:
            print("error: set GOOGLE_OAUTH_ACCESS_TOKEN (google-github-actions/auth with token_format: access_token, "
                  "or `gcloud auth print-access-token`)", file=sys.stderr)
            return EXIT_INVALID
        health_url = args.health_url or f"https://{api_hostname(model.zone.name)}/readyz"
        try:
            outcome = cloud_run_rollout(CloudRun(model.gcp.project, model.gcp.region, token, args.run_api_url),
                                        prometheus, policy, model.environment, write=write,
                                        dependency=dependencies_down(health_url))
        except CloudRunError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_ROLLED_BACK
    elif backend == "railway" and model.railway is not None:
        token = os.environ.get("RAILWAY_TOKEN", "")
        if not token:
            print("error: set RAILWAY_TOKEN (the stack's project token, platform:railwayToken)", file=sys.stderr)
            return EXIT_INVALID
        client = RailwayClient(token, args.railway_api_url or API_URL)
        health_url = args.health_url or f"https://{api_hostname(model.zone.name)}/readyz"
        outcome = railway_rollout(Railway(client, model.railway.project_id, model.railway.environment_id),
                                  prometheus, policy, model.environment, health_url, write=write)
    else:
        print(f"rollout: {args.stack}'s engine runs on {backend} without canary rollouts: nothing to do")
        return EXIT_OK
    if outcome.promoted and outcome.revision and os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
            out.write(f"revision={outcome.revision}\n")
    print(f"rollout: {'ok' if outcome.promoted else 'FAILED'}: {outcome.reason}")
    return EXIT_OK if outcome.promoted else EXIT_ROLLED_BACK
