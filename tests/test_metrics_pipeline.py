"""The metrics pipeline of the cloud stacks, for real, on this machine.

The engine with PocketBase and Redis (engine.dev's LocalStack, as tests/engine does), a Redis exporter
(Debian's prometheus-redis-exporter), and the agent the cloud stacks deploy: its configuration from the
same generator (components/observability/agent.py, the Cloud Run sidecar's jobs pointed at this
machine's ports) started by the same start-up script, run as Debian's `prometheus` in agent mode. It
remote-writes to a second Prometheus started with its remote-write receiver, which evaluates the rules
the stack deploys for these jobs (`telemetry.stack_spec`). The test's copy of the rules evaluates every
second and scales each `for:` down from minutes to seconds; the expressions are untouched.

Faults are real: PocketBase behind a proxy that delays its answers, Redis stopped, PocketBase stopped,
the engine stopped. Healthy traffic fires nothing; each fault fires its alert from the received data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from engine.dev import LocalStack, free_port, wait_http, wait_tcp

from components.observability import agent, cloud, cost, telemetry
from components.observability.rules import dump, rule_groups
from components.observability.spec import load, minutes
from infra.ops import rollout
from tests.engine.conftest import make_tenant

REVISION = "commission-engine-00042-xyz"

MONTH = time.strftime("%Y-%m", time.gmtime())
MILLISECONDS_PER_MINUTE_OF_FOR = 500
"""A rule's `for: Nm` becomes N half-seconds in the test's copy."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: apt-get install {name} (python3 tools/dev.py test does it as root)"
    return found


class FaultProxy:
    """TCP between the engine and PocketBase; `delay` holds each answer back that long."""

    def __init__(self, target_port: Callable[[], int]) -> None:
        self.delay = 0.0
        self._target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._target_port()), timeout=5)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
        self._pump(upstream, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if answers and self.delay:
                    time.sleep(self.delay)
                sink.sendall(chunk)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self._server.close()


class Prometheus:
    """A Prometheus child process and its HTTP API."""

    def __init__(self, args: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=out, env=env)
        try:
            wait_tcp(port, self.process)
            wait_http(f"{self.url}/-/ready", timeout_s=30)
        except RuntimeError as err:
            self.stop()
            raise RuntimeError(f"{err}: {log.read_text()[-2000:]}") from None

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
            return json.loads(response.read())["data"]

    def firing(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_rules_copy(spec_jobs: list[agent.ScrapeJob]) -> dict[str, Any]:
    """The rules the stack deploys for these jobs; every group evaluated each second, every `for:` in seconds."""
    spec = telemetry.stack_spec(load(), (), spec_jobs, cost.Billing(), None)
    groups = rule_groups(spec)
    for group in groups["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{minutes(rule['for']) * MILLISECONDS_PER_MINUTE_OF_FOR}ms"
    return groups


test_rules_copy.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


class Traffic:
    """Requests from a few threads at a bounded rate, counting answers by status."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.base_url = base_url
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()

    def run(self, seconds: float, request: Callable[[httpx.Client, int], int], threads: int = 4,
            per_thread_rps: float = 3.0) -> dict[int, int]:
        counted: dict[int, int] = {}
        deadline = time.monotonic() + seconds

        def worker(n: int) -> None:
            with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=10) as client:
                i = 0
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    try:
                        status = request(client, n * 100_000 + i)
                    except httpx.HTTPError:
                        status = 0
                    with self._lock:
                        counted[status] = counted.get(status, 0) + 1
                    i += 1
                    time.sleep(max(0.0, 1 / per_thread_rps - (time.monotonic() - started)))

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return counted


def _order(client: httpx.Client, i: int) -> int:
    body = {"lines": [{"sku": "COFFEE", "quantity": 1}], "affiliate_id": "ana"}
    return client.post("/v1/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}).status_code


def _read(client: httpx.Client, i: int) -> int:
    affiliate = ("ana", "bia", "caio")[i % 3]
    if i % 5 == 4:
        return client.get("/v1/catalog").status_code
    return client.get(f"/v1/affiliates/{affiliate}/commissions", params={"month": MONTH}).status_code


def _healthy(client: httpx.Client, i: int) -> int:
    return _order(client, i) if i % 10 == 0 else _read(client, i)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[dict[str, Any]]:
    prometheus, redis_exporter = _binary("prometheus"), _binary("prometheus-redis-exporter")
    entry, keys = make_tenant("acme")
    stack_holder: list[LocalStack] = []
    proxy = FaultProxy(lambda: stack_holder[0].pb_port)

    class Stack(LocalStack):
        def _start(self) -> LocalStack:
            # The engine reaches PocketBase through the fault proxy (a retry picks new ports; the proxy follows).
            self.env["POCKETBASE_URL"] = f"http://127.0.0.1:{proxy.port}"
            return super()._start()

    stack = Stack(tmp_path / "stack", [entry], log=tmp_path / "engine.log")
    stack_holder.append(stack)
    processes: list[Prometheus] = []
    exporter: subprocess.Popen[bytes] | None = None
    try:
        stack.start()
        exporter_port = free_port()
        with (tmp_path / "redis-exporter.log").open("ab") as out:
            exporter = subprocess.Popen(
                [redis_exporter, f"--redis.addr=redis://127.0.0.1:{stack.redis_port}",
                 f"--web.listen-address=127.0.0.1:{exporter_port}"],
                env={**os.environ, "REDIS_PASSWORD": stack.redis_password}, stdout=out, stderr=out)
        wait_http(f"http://127.0.0.1:{exporter_port}/metrics")

        # The jobs the cloud stacks deploy, pointed at this machine: the Cloud Run sidecar's engine job
        # (a static target) and the Redis exporter's.
        jobs = [dataclasses.replace(telemetry.engine_job("cloudrun"), targets=(f"127.0.0.1:{stack.engine_port}",)),
                dataclasses.replace(telemetry.redis_job("docker") or telemetry.engine_job("docker"),
                                    targets=(f"127.0.0.1:{exporter_port}",))]
        receiver_dir = tmp_path / "receiver"
        receiver_dir.mkdir()
        (receiver_dir / "rules.yml").write_text(dump(test_rules_copy(jobs)))
        (receiver_dir / "prometheus.yml").write_text(yaml.safe_dump(
            {"global": {"evaluation_interval": "1s"}, "rule_files": ["rules.yml"]}))
        receiver_port = free_port()
        receiver = Prometheus([prometheus, f"--config.file={receiver_dir / 'prometheus.yml'}",
                               f"--storage.tsdb.path={receiver_dir / 'data'}", "--web.enable-remote-write-receiver",
                               f"--web.listen-address=127.0.0.1:{receiver_port}"], receiver_port,
                              tmp_path / "receiver.log")
        processes.append(receiver)

        agent_dir = tmp_path / "agent"
        agent_dir.mkdir()
        # The labels the engine's Cloud Run sidecar attaches, as deployed (cloud.agent_labels).
        config = agent.agent_config(
            jobs, agent.RemoteWrite(f"{receiver.url}/api/v1/write", batch_send_deadline="1s"),
            cloud.sidecar_labels("pipeline"), scrape_interval="1s")
        agent_port = free_port()
        script = agent.start_script(directory=str(agent_dir), binary=prometheus, listen=f"127.0.0.1:{agent_port}",
                                    replica="gce-metadata")
        agent_process = Prometheus(["sh", "-c", script], agent_port, tmp_path / "agent.log", env={
            **os.environ, agent.CONFIG_ENV: agent.render(config), agent.REPLICA_ENV: "instance-1",
            # What Cloud Run sets in every container of a revision, sidecars included.
            "K_REVISION": REVISION})
        processes.append(agent_process)

        admin = {"Authorization": f"Bearer {keys.admin}"}
        with httpx.Client(base_url=stack.url, headers=admin, timeout=10) as client:
            assert client.put("/v1/products/COFFEE", json={"name": "Coffee", "category": "food",
                                                           "price_cents": 1999}).status_code == 200
            for affiliate in ("ana", "bia", "caio"):
                assert client.put(f"/v1/affiliates/{affiliate}", json={"name": affiliate}).status_code == 200
            assert client.put("/v1/commission-rules", json={"default_rate_bps": 500}).status_code == 200
        yield {"stack": stack, "proxy": proxy, "receiver": receiver, "traffic": Traffic(stack.url, keys.api),
               "log": tmp_path}
    finally:
        for process in reversed(processes):
            process.stop()
        if exporter is not None:
            exporter.terminate()
            exporter.wait(timeout=10)
        stack.close()
        proxy.close()


NOT_IN_THIS_PIPELINE = {
    # cAdvisor (docker) or Cloud Monitoring (Cloud Run, Memorystore, the VM): not run on this machine.
    "Container CPU (M3, target < 70 %)", "Container memory (M4, target < 70 %)",
    "M3 objective: slo:m3:container_cpu_ratio < 0.7", "M4 objective: slo:m4:container_memory_ratio < 0.7",
    # A counter PocketBase's adapter creates at the first lock error (none on a healthy run).
    "SQLite locks per minute (B1, review above 5)",
    # A subquery at 5-minute steps: its first point needs a 5-minute boundary inside the received data.
    "Trend: daily peak requests per second, 30 days (A6)",
}
"""Dashboard panels this pipeline cannot feed, each with the reason; every other panel must read series."""


def _wait_for_dashboards(received: Callable[[str], list[dict[str, Any]]], timeout_s: float = 30) -> list[str]:
    """The panels (by title) any of whose queries returns no series, after waiting for a rule evaluation or two."""
    from components.observability import dashboards

    deadline = time.monotonic() + timeout_s
    while True:
        empty = sorted({panel["title"] for build in dashboards.DASHBOARDS.values() for panel in build()["panels"]
                        for target in panel.get("targets", [])
                        if not received(target["expr"].replace("$route", ".*").replace("$tenant", ".*"))})
        if set(empty) <= NOT_IN_THIS_PIPELINE or time.monotonic() > deadline:
            return empty
        time.sleep(2)


def _wait_for(what: str, check: Callable[[], bool], timeout_s: float, while_waiting: Callable[[], None] | None = None,
              ) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        if while_waiting is not None:
            while_waiting()
        else:
            time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def test_faults_fire_their_alerts_from_the_received_data_and_healthy_traffic_fires_nothing(
    pipeline: dict[str, Any],
) -> None:
    stack: LocalStack = pipeline["stack"]
    proxy: FaultProxy = pipeline["proxy"]
    receiver: Prometheus = pipeline["receiver"]
    traffic: Traffic = pipeline["traffic"]
    began = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - began:5.1f} s] {line}", flush=True)

    def received(query: str) -> list[dict[str, Any]]:
        return receiver.get("/api/v1/query", query=query)["result"]

    # The agent's samples arrive, labelled as the agent labels them (its environment and replica).
    waited = _wait_for("the engine's and Redis's series at the receiver", lambda: len(received(
        'up{job=~"commission-engine|redis",environment="pipeline",replica="instance-1"} == 1')) == 2, 30,
        lambda: traffic.run(1, _healthy))
    say(f"engine and Redis exporter series received through the agent after {waited:.1f} s")
    # The canary's judge finds the engine's requests by the selector the rollout itself builds.
    judge, selector = rollout.Prometheus(receiver.url), rollout.canary_selector("pipeline", REVISION)
    _wait_for(f"users' requests under {selector}",
              lambda: rollout.read(judge, selector, 60, time.time()).requests > 0, 15, lambda: traffic.run(1, _healthy))
    _wait_for("the start-up's alerts resolved", lambda: not receiver.firing(), 20, lambda: traffic.run(1, _healthy))

    # Healthy traffic: reads mostly served from Redis, an order now and then. Nothing fires.
    fired: set[str] = set()
    for _ in range(6):
        counted = traffic.run(2, _healthy)
        fired |= receiver.firing()
    say(f"healthy traffic, answers {counted} in the last 2 s: firing {sorted(fired) or 'nothing'}")
    assert fired == set()
    # No 5xx yet reads as 0, not as no data.
    assert [s["value"][1] for s in received("sli:api_5xx_ratio")] == ["0"]

    # Every dashboard panel reads series this pipeline receives (#25.8), once browsers have sent web vitals: a panel
    # whose query names a metric or label the engine does not emit shows "No data" to the on-call. The only panels
    # left empty read sources this machine does not run (cAdvisor or Cloud Monitoring: container_*), or counters
    # that exist once their first error happens (PocketBase's lock and error counters).
    for _ in range(3):
        with httpx.Client(base_url=stack.url, timeout=5) as browser:
            for name, value in (("LCP", 1.8), ("INP", 0.08), ("CLS", 0.02), ("TTFB", 0.2)):
                browser.post("/v1/vitals", json={"tenant": "acme", "route": "/",
                                                      "metrics": [{"name": name, "value": value}]})
        traffic.run(2, _healthy)
    empty = _wait_for_dashboards(received)
    say(f"dashboards: every panel reads series but {sorted(empty)}")
    assert set(empty) <= NOT_IN_THIS_PIPELINE, sorted(set(empty) - NOT_IN_THIS_PIPELINE)

    # Latency: PocketBase answers 0.9 s late; orders and order reads wait for it.
    proxy.delay = 0.9
    waited = _wait_for("ApiLatencyP95High", lambda: "ApiLatencyP95High" in receiver.firing(), 60,
                       lambda: traffic.run(2, _order, threads=8, per_thread_rps=2))
    p95 = float(received("sli:api_latency_p95_seconds")[0]["value"][1])
    say(f"PocketBase 0.9 s late: ApiLatencyP95High firing after {waited:.1f} s (P95 {p95:.2f} s)")
    assert p95 > 0.7
    proxy.delay = 0.0

    # Redis down: every lookup misses and the engine reads PocketBase; answers stay 200.
    stack.stop("redis")
    statuses: dict[int, int] = {}

    def reads() -> None:
        statuses.update({k: statuses.get(k, 0) + v for k, v in traffic.run(2, _read, threads=6, per_thread_rps=5).items()})

    waited = _wait_for("CacheMissRatioHigh", lambda: "CacheMissRatioHigh" in receiver.firing(), 90, reads)
    ratio = float(received("sli:cache_miss_ratio")[0]["value"][1])
    say(f"Redis stopped: CacheMissRatioHigh firing after {waited:.1f} s (miss ratio {ratio:.2f}), answers {statuses}")
    assert set(statuses) == {200}

    # PocketBase down: writes answer 503.
    stack.stop("pocketbase")
    waited = _wait_for("Api5xxRateHigh", lambda: "Api5xxRateHigh" in receiver.firing(), 30,
                       lambda: traffic.run(1, _order))
    say(f"PocketBase stopped: Api5xxRateHigh firing after {waited:.1f} s "
        f"(5xx ratio {float(received('sli:api_5xx_ratio')[0]['value'][1]):.2f})")

    # The engine stopped: its target is down at the agent, so its series stop; the absence alert fires.
    stack.stop("engine")
    waited = _wait_for("TelemetryAbsentCommissionEngine",
                       lambda: "TelemetryAbsentCommissionEngine" in receiver.firing(), 30)
    say(f"engine stopped: TelemetryAbsentCommissionEngine firing after {waited:.1f} s; "
        f"all firing: {sorted(receiver.firing())}")
