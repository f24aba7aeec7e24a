#!/usr/bin/env python3
"""Load on the Commission Engine with a real PocketBase and Redis, on loopback (Locust, headless).

1. The document's scenario scaled up: 400 concurrent users, each pausing 0.5-1.5 s between requests
   (about 400 requests/s offered), a realistic mix of catalog reads, order creation, payments and
   commission summaries. Target: P95 <= 100 ms over the mix, no errors.
2. Saturation: users with no pause, in steps, for the mix, for the write path alone (new orders and
   their payments), for cached catalog reads, for cached summaries, and for a bare FastAPI "hello"
   app served the same way (the ceiling). Reports the highest throughput each sustains with
   P95 <= 500 ms, and the ratio to the ceiling.

3. Side by side: one engine per storage backend (`--storage pocketbase,postgres`, both by default; each
   with its own store and Redis, the same seed) and, with `--baseline REV`, the engine of that git revision
   (`components/engine/src` as of REV) on each backend too. The mix and the write path of each, and the bare
   endpoint, are measured at a fixed number of users in short windows taken in turn (the order reversed every
   other window), so each engine's throughput is a share of the bare endpoint measured seconds apart; the CPU
   the engine, its store and Redis spend per request is counted (process CPU time / requests served).
   Target: the mix on PostgreSQL at 25 % of the bare endpoint or more (#26).

    .venv/bin/python bench/engine_load.py [--storage pocketbase,postgres] [--workers 2] [--steady 30] [--step 10]
                                          [--scenarios 1 2 3] [--baseline HEAD~1] [--compare-users 16]
                                          [--windows 8] [--window 5]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from io import BytesIO  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
from engine.dev import LocalStack, demo_tenant, free_port, local_stack, wait_http  # noqa: E402
from load_report import (  # noqa: E402
    BARE,
    STORAGES,
    median,
    parse_storages,
    postgres_target,
    side_by_side_table,
    summarize_windows,
)
from locust import FastHttpUser, between, constant, task  # noqa: E402
from locust.env import Environment  # noqa: E402

MONTH = dt.datetime.now(dt.UTC).strftime("%Y-%m")
SKUS = [f"SKU-{i:03d}" for i in range(50)]
AFFILIATES = [f"aff-{i:02d}" for i in range(20)]
KEYS: dict[str, str] = {}


def seed(url: str, admin_key: str) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for i, sku in enumerate(SKUS):
            client.put(f"/v1/products/{sku}", json={"name": f"Product {i}", "category": f"cat-{i % 5}",
                                                    "price_cents": 500 + 37 * i}).raise_for_status()
        for affiliate in AFFILIATES:
            client.put(f"/v1/affiliates/{affiliate}", json={"name": affiliate}).raise_for_status()
        client.put("/v1/commission-rules", json={"default_rate_bps": 500, "category_rates_bps": {"cat-1": 300},
                                                 "product_rates_bps": {"SKU-007": 1200}}).raise_for_status()


class Shopper(FastHttpUser):
    """The mix: half catalog reads, a fifth summaries, a fifth new orders, a tenth payments."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {KEYS['api']}"}
        self.unpaid: list[str] = []

    @task(10)
    def catalog(self) -> None:
        self.client.get("/v1/catalog", headers=self.auth, name="GET /v1/catalog")

    @task(4)
    def summary(self) -> None:
        self.client.get(f"/v1/affiliates/{random.choice(AFFILIATES)}/commissions?month={MONTH}", headers=self.auth,
                        name="GET /v1/affiliates/{id}/commissions")

    @task(4)
    def order(self) -> None:
        lines = [{"sku": random.choice(SKUS), "quantity": random.randint(1, 3)} for _ in range(random.randint(1, 3))]
        with self.client.post("/v1/orders", json={"affiliate_id": random.choice(AFFILIATES), "lines": lines},
                              headers=self.auth | {"Idempotency-Key": uuid.uuid4().hex}, name="POST /v1/orders",
                              catch_response=True) as response:
            if response.status_code == 201:
                self.unpaid.append(response.json()["id"])
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")

    @task(2)
    def pay(self) -> None:
        if self.unpaid:
            self.client.post(f"/v1/orders/{self.unpaid.pop()}/pay", headers=self.auth,
                             name="POST /v1/orders/{id}/pay")


class CatalogReader(FastHttpUser):
    wait_time = constant(0)

    @task
    def catalog(self) -> None:
        self.client.get("/v1/catalog", headers={"Authorization": f"Bearer {KEYS['api']}"}, name="GET /v1/catalog")


class SummaryReader(FastHttpUser):
    wait_time = constant(0)

    @task
    def summary(self) -> None:
        self.client.get(f"/v1/affiliates/aff-01/commissions?month={MONTH}",
                        headers={"Authorization": f"Bearer {KEYS['api']}"}, name="GET summary (cached)")


class Hello(FastHttpUser):
    wait_time = constant(0)

    @task
    def hello(self) -> None:
        self.client.get("/hello", name="GET /hello (bare FastAPI)")


class Saturating(Shopper):
    wait_time = constant(0)


class Writer(FastHttpUser):
    """The write path alone, as in the mix: new orders, and payments of the orders this user created (2 to 1)."""

    wait_time = constant(0)
    on_start = Shopper.on_start

    @task(2)
    def order(self) -> None:
        Shopper.order(self)  # type: ignore[arg-type]

    @task(1)
    def pay(self) -> None:
        Shopper.pay(self)  # type: ignore[arg-type]


def export_engine(revision: str, into: Path) -> str:
    """`components/engine/src` as of `revision` (git archive), for a baseline engine's PYTHONPATH."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "archive", revision, "components/engine/src"], cwd=repo, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=repo, check=True, capture_output=True,
                            text=True).stdout.strip()
    print(f"baseline engine: {revision} ({commit}), from {into / 'components/engine/src'}")
    return str(into / "components" / "engine" / "src")


def run(user: type[FastHttpUser], host: str, users: int, spawn_rate: float, seconds: float,
        processes: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Ramp up, reset, measure `seconds` of steady load; per endpoint and in total. With `processes`
    (name -> pid), also the CPU each process tree spent per request counted, in µs ("<name>_us")."""
    user.host = host
    env = Environment(user_classes=[user])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=spawn_rate)
    while runner.user_count < users:
        gevent.sleep(0.2)
    gevent.sleep(1.0)
    env.stats.reset_all()
    cpu_before = {name: cpu_seconds(pid) for name, pid in (processes or {}).items()}
    start = time.monotonic()
    gevent.sleep(seconds)
    elapsed = time.monotonic() - start
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in (processes or {}).items()}
    rows = {}
    for entry in [*env.stats.entries.values(), env.stats.total]:
        name = "all" if entry is env.stats.total else entry.name
        rows[name] = {"requests": entry.num_requests, "failures": entry.num_failures,
                      "rps": entry.num_requests / elapsed,
                      "p50_ms": entry.get_response_time_percentile(0.5),
                      "p95_ms": entry.get_response_time_percentile(0.95),
                      "p99_ms": entry.get_response_time_percentile(0.99)}
    rows["all"] |= {f"{name}_us": seconds_ * 1e6 / max(1, env.stats.total.num_requests)
                    for name, seconds_ in cpu.items()}
    runner.quit()
    return rows


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (uvicorn's workers), so far. This process's own only: its
    children are the engines, stores and Redis it started, measured apart; it is the load generator."""
    root = psutil.Process(pid)
    if pid == os.getpid():
        times = root.cpu_times()
        return times.user + times.system
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def table(title: str, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"  {'endpoint':<40} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>7}")
    for name, r in sorted(rows.items(), key=lambda kv: kv[0] == "all"):
        print(f"  {name:<40} {r['rps']:>8.1f} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} {r['p99_ms']:>7.0f} "
              f"{r['failures']:>7}")


def saturate(workloads: dict[str, tuple[type[FastHttpUser], str]], steps: list[int], seconds: float,
             rounds: int = 1) -> tuple[dict[str, tuple[float, int, float]], list[dict[str, tuple[float, int, float]]]]:
    """Per workload, the highest throughput with P95 <= 500 ms over the steps: (req/s, users, p95 ms).

    The workloads take turns at each step, so the ones compared are measured minutes apart at most,
    not one after the other's whole ramp (the machine's speed drifts). With several rounds (the turns
    reversed every other round) each workload's figure is its median round; the rounds come back too.
    """
    results: list[dict[str, tuple[float, int, float]]] = []
    for round_ in range(rounds):
        best = dict.fromkeys(workloads, (0.0, 0, 0.0))
        turns = list(workloads.items())
        for users in steps:
            for name, (user, host) in turns if round_ % 2 == 0 else reversed(turns):
                total = run(user, host, users, spawn_rate=users, seconds=seconds)["all"]
                print(f"    {name:<20} {users:>4} users: {total['rps']:>7.1f} req/s, p95 {total['p95_ms']:>5.0f} ms, "
                      f"errors {total['failures']}")
                if total["p95_ms"] <= 500 and total["failures"] == 0 and total["rps"] > best[name][0]:
                    best[name] = (total["rps"], users, total["p95_ms"])
        results.append(best)
    median = {name: sorted((r[name] for r in results), key=lambda b: b[0])[len(results) // 2] for name in workloads}
    return median, results


def cpu_processes(stack: LocalStack) -> dict[str, int]:
    """The processes whose CPU a request costs: the engine (its workers), the store (PocketBase, or PostgreSQL with
    its backends) and Redis."""
    if stack.postgres is not None and stack.postgres.process is not None:  # the postmaster; its backends are children
        store = stack.postgres.process.pid
    else:
        store = stack.processes["pocketbase"].pid
    return {"engine": stack.processes["engine"].pid, "store": store, "redis": stack.processes["redis"].pid}


def compare(kinds: dict[str, type[FastHttpUser]], engines: dict[str, LocalStack], bare: tuple[str, int], users: int,
            windows: int, seconds: float) -> dict[str, list[dict[str, float]]]:
    """Scenario 3: every workload at `users`, in `windows` rounds of short windows taken in turn; with the
    CPU the engine (its workers), its store and Redis spent per request, which a busy machine disturbs less."""
    me = {"load": os.getpid()}  # the load generator, on the same cores
    turns = [(f"{who}: {kind}", user, stack.url, cpu_processes(stack) | me)
             for kind, user in kinds.items() for who, stack in engines.items()]
    turns.append((BARE, Hello, bare[0], {"engine": bare[1]} | me))
    measured: dict[str, list[dict[str, float]]] = {name: [] for name, _, _, _ in turns}
    for window in range(windows):
        for name, user, url, processes in turns if window % 2 == 0 else reversed(turns):
            total = run(user, url, users, spawn_rate=users, seconds=seconds, processes=processes)["all"]
            measured[name].append(total)
            print(f"    window {window + 1:>2} {name:<28} {total['rps']:>7.1f} req/s, p95 {total['p95_ms']:>5.0f} ms, "
                  f"errors {total['failures']}, CPU/request: engine {total['engine_us']:.0f} µs, "
                  f"store {total.get('store_us', 0):.0f} µs, Redis {total.get('redis_us', 0):.0f} µs, "
                  f"load generator {total['load_us']:.0f} µs")
    return measured


def start_engines(stacks: ExitStack, tmp: Path, tenant: dict[str, object], storages: list[str], workers: int,
                  baseline: str | None) -> dict[str, LocalStack]:
    """One engine per storage backend, named by it ("pocketbase", "postgres"); with a baseline revision, that
    engine on each backend too ("baseline pocketbase", ...)."""
    engines: dict[str, LocalStack] = {}
    source = export_engine(baseline, tmp / "baseline-src") if baseline else None
    for storage in storages:
        # The default backend is named only when another is asked for: an engine of before #26 has no `storage`.
        backend: dict[str, Any] = {"storage": storage} if storage != "pocketbase" else {}
        if source is not None:
            engines[f"baseline {storage}"] = stacks.enter_context(local_stack(
                tmp / f"baseline-{storage}", [tenant], workers=workers, env={"PYTHONPATH": source},
                log=tmp / f"baseline-{storage}.log", **backend))
        # The engines' output (the seed's audit events) in a file of the run's directory, not among the figures.
        engines[storage] = stacks.enter_context(local_stack(tmp / storage, [tenant], workers=workers,
                                                            log=tmp / f"{storage}.log", **backend))
    return engines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", type=parse_storages, default=list(STORAGES),
                        help="storage backends, side by side (default: pocketbase,postgres)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers for the engine and the bare app")
    parser.add_argument("--steady", type=float, default=30, help="seconds measured in scenario 1")
    parser.add_argument("--step", type=float, default=10, help="seconds measured per saturation step")
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--scenarios", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3],
                        help="which to run")
    parser.add_argument("--baseline", help="also run the engine of this git revision on each backend (e.g. HEAD~1)")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32, 64], help="users per saturation step")
    parser.add_argument("--rounds", type=int, default=1, help="saturation rounds; each figure is the median round")
    parser.add_argument("--compare-users", type=int, default=16, help="users in scenario 3")
    parser.add_argument("--windows", type=int, default=8, help="rounds of windows in scenario 3")
    parser.add_argument("--window", type=float, default=5, help="seconds measured per window in scenario 3")
    args = parser.parse_args(argv)
    storages: list[str] = args.storage

    tenant, api_key, admin_key = demo_tenant()
    KEYS.update(api=api_key, admin=admin_key)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stacks:
        engines = start_engines(stacks, Path(tmp), tenant, storages, args.workers, args.baseline)
        for running in engines.values():
            seed(running.url, admin_key)
        hello_port = free_port()
        hello = subprocess.Popen([sys.executable, "-m", "uvicorn", "hello_app:app", "--host", "127.0.0.1", "--port",
                                  str(hello_port), "--workers", str(args.workers), "--log-level", "warning",
                                  "--no-access-log"], cwd=Path(__file__).parent, env=os.environ.copy())
        try:
            wait_http(f"http://127.0.0.1:{hello_port}/hello")
            print(f"engines ({', '.join(engines)}) and bare app: uvicorn, {args.workers} workers each; "
                  f"machine: {os.cpu_count()} cores, load generator in this process")
            rows: dict[str, dict[str, dict[str, Any]]] = {}
            if 1 in args.scenarios:
                for name in storages:
                    rows[name] = run(Shopper, engines[name].url, args.users, spawn_rate=50, seconds=args.steady)
                    table(f"Scenario 1 ({name}): {args.users} users, 0.5-1.5 s think time, {args.steady:.0f} s steady",
                          rows[name])
                    met = rows[name]["all"]["p95_ms"] <= 100 and rows[name]["all"]["failures"] == 0
                    print(f"  target P95 <= 100 ms over the mix, no errors: {'MET' if met else 'NOT MET'}")
            # Before scenario 2, which loads each engine alone: a summary miss costs more as the month's orders
            # grow, so the engines are compared holding the same orders.
            side_by_side: dict[str, list[dict[str, float]]] = {}
            summary: dict[str, dict[str, float]] = {}
            if 3 in args.scenarios:
                print(f"\nScenario 3: side by side, {args.compare_users} users, {args.windows} x {args.window:g} s "
                      f"windows each, in turn")
                side_by_side = compare({"mix": Saturating, "writes": Writer}, engines,
                                       (f"http://127.0.0.1:{hello_port}", hello.pid), args.compare_users, args.windows,
                                       args.window)
                summary = summarize_windows(side_by_side)
                print("\n  medians over the windows; CPU: process CPU time / requests served; CPU-bound: the share "
                      "of bare if the cores were all the run's (bare's CPU per request over this one's, load "
                      "generator included)")
                print("\n".join(side_by_side_table(summary)))
                if (target := postgres_target(summary)) is not None:
                    print(target)
                for storage in storages if args.baseline else ():
                    for kind in ("mix", "writes"):
                        new, old = side_by_side[f"{storage}: {kind}"], side_by_side[f"baseline {storage}: {kind}"]
                        ratios = [n["rps"] / o["rps"] for n, o in zip(new, old, strict=True)]
                        print(f"  {storage} {kind}: engine / baseline, window by window: "
                              f"{', '.join(f'{r:.2f}' for r in ratios)}; median {median(ratios):.2f}")
            best: dict[str, tuple[float, int, float]] = {}
            if 2 in args.scenarios:
                print("\nScenario 2: saturation (no think time), highest req/s with P95 <= 500 ms")
                workloads: dict[str, tuple[type[FastHttpUser], str]] = {}
                for name in storages:
                    url = engines[name].url
                    workloads |= {f"{name}: mix": (Saturating, url), f"{name}: writes": (Writer, url),
                                  f"{name}: catalog (cached)": (CatalogReader, url),
                                  f"{name}: summary (cached)": (SummaryReader, url)}
                workloads[BARE] = (Hello, f"http://127.0.0.1:{hello_port}")
                best, _ = saturate(workloads, args.steps, args.step, args.rounds)
                ceiling = best[BARE][0]
                print(f"\n  {'workload':<36} {'req/s':>8} {'users':>6} {'p95 ms':>7} {'vs bare':>8}")
                for name, (rps, users, p95) in best.items():
                    print(f"  {name:<36} {rps:>8.1f} {users:>6} {p95:>7.0f} {rps / ceiling if ceiling else 0:>8.0%}")
                cached = [rps for name, (rps, _, _) in best.items() if name.endswith("(cached)")]
                met = min(cached) >= 0.5 * ceiling
                print(f"  target cached reads >= 50 % of the bare endpoint: {'MET' if met else 'NOT MET'}")
            print(json.dumps({"scenario1": rows, "saturation": best, "side_by_side": side_by_side,
                              "summary": summary}), file=sys.stderr)
        finally:
            hello.terminate()
            hello.wait(timeout=10)


if __name__ == "__main__":
    main()
