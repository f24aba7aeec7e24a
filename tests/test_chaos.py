"""Chaos over the local stack with real binaries (infra/ops/chaos.py): PocketBase, Redis and the engine's
two workers, a fault-injecting proxy between the engine and each dependency.

The short run (4-second faults) of `python3 tools/dev.py chaos` passes: a worker killed under load,
PocketBase unreachable, Redis blackholed, 500 ms on every PocketBase call, and #23's faults (writes answered
late, PocketBase frozen, Redis -ERR, -OOM, cut and late, a proxy's pages in front of PocketBase, garbage
after an order). The checker's own checks are fed the faults they check (a lying fake engine). And, since a short run sees
only a few requests, a burst against a PocketBase that resets every connection: every answer, of the
order API and of /readyz, a clean 503 problem+json.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from infra.ops.chaos import FAULTS, SCENARIOS, SHORT, ChaosStack, chaos_stack, clean_answer, render, run_scenario


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChaosStack, str]]:
    with chaos_stack(tmp_path_factory.mktemp("chaos")) as running:
        yield running


def test_pocketbase_resetting_every_connection_is_answered_with_clean_503s(stack: tuple[ChaosStack, str]) -> None:
    chaos, api_key = stack

    # New connections all the time, as the engine's workers take them in turn.
    client = httpx.Client(base_url=chaos.url, timeout=10,
                          headers={"Connection": "close", "Authorization": f"Bearer {api_key}"})

    def call(number: int) -> httpx.Response:
        if number % 2:
            return client.get("/readyz")
        return client.post("/v1/orders", headers={"Idempotency-Key": f"reset-burst-{number}"},
                           json={"lines": [{"sku": "MUG", "quantity": 1}]})

    chaos.pocketbase.reset()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(call, range(400)))
    finally:
        chaos.pocketbase.heal()
        client.close()

    def clean(answer: httpx.Response) -> bool:
        """An order: a 503 problem. /readyz: 503 saying PocketBase is down (its own document, not a problem)."""
        if answer.request.url.path == "/readyz":
            return answer.status_code == 503 and answer.json().get("checks", {}).get("pocketbase") is False
        return answer.status_code == 503 and clean_answer(answer)

    unclean = [f"{a.request.method} {a.request.url.path}: {a.status_code} {a.text[:120]}" for a in answers
               if not clean(a)]
    kinds = Counter(line.split(" {")[0] for line in unclean)
    assert unclean == [], f"{len(unclean)} of {len(answers)} answers were not a clean 503: {dict(kinds)}"


def test_the_short_chaos_run_passes(stack: tuple[ChaosStack, str]) -> None:
    chaos, api_key = stack
    settings = SHORT
    out = io.StringIO()

    results = [run_scenario(chaos, api_key, scenario, settings, number, out)
               for number, scenario in enumerate(SCENARIOS, start=1)]
    table = render(results)
    print(out.getvalue() + table)

    assert [r.name for r in results] == ["engine worker killed under load", "PocketBase unreachable",
                                         "Redis blackholed", "PocketBase +500 ms"]
    assert table.endswith("chaos: 4 passed, 0 failed\n"), table


def test_the_short_chaos_run_of_23s_faults_passes(stack: tuple[ChaosStack, str]) -> None:
    """#23: late and frozen writes, Redis error, OOM, cut and late replies, a proxy's pages in front of
    PocketBase, garbage after an order: nothing lost, duplicated or stale, no wrong answer."""
    chaos, api_key = stack
    out = io.StringIO()

    results = [run_scenario(chaos, api_key, scenario, SHORT, number, out)
               for number, scenario in enumerate(FAULTS, start=len(SCENARIOS) + 1)]
    table = render(results)
    print(out.getvalue() + table)

    assert len(results) == 10 and all(r.stale == 0 and r.wrong == 0 for r in results), table
    assert table.endswith("chaos: 10 passed, 0 failed\n"), table


def test_readyz_is_judged_by_its_sustained_answer_and_strictly_during_a_fault() -> None:
    from infra.ops.chaos import Sample, _readyz_truth  # pyright: ignore[reportPrivateUsage]

    up = {"pocketbase": True, "redis": True}
    redis_down = {"pocketbase": True, "redis": False}

    def samples(*states: tuple[float, int, dict[str, bool]]) -> list[Sample]:
        return [Sample(at, at + 0.1, code, checks) for at, code, checks in states]

    fault = dict(start=10.0, end=20.0, recovered=21.0)
    blip = samples((1, 200, up), (2, 503, redis_down), (3, 200, up), (12, 503, redis_down), (22, 200, up))
    sustained = samples((1, 200, up), (2, 503, redis_down), (3, 503, redis_down), (12, 503, redis_down))
    missed = samples((1, 200, up), (12, 503, redis_down), (13, 200, up), (22, 200, up))

    assert _readyz_truth(blip, down="redis", **fault) == (True, "503, redis false (1 transient)")
    assert _readyz_truth(sustained, down="redis", **fault)[0] is False
    assert "redis not reported down" in _readyz_truth(missed, down="redis", **fault)[1]
    assert _readyz_truth(samples((1, 200, up), (22, 200, up)), down="redis", **fault)[0] is False, "nothing to judge"


def test_the_checker_reports_a_stale_summary_fed_to_it() -> None:
    """The stale-summary check is fed the fault it checks: a read sent after an order (or a payment) was
    acknowledged that does not count it is stale; one sent before the acknowledgement is not."""
    from infra.ops.chaos import SummaryRead, stale_summaries

    acks, paid, commission = [1.0, 2.0, 3.0], [2.5], 100
    fresh = [SummaryRead(sent=2.6, code=200, clean=True, orders=2, approved_cents=100),
             SummaryRead(sent=0.5, code=200, clean=True, orders=0, approved_cents=0),
             SummaryRead(sent=9.0, code=503, clean=True)]
    stale_order = SummaryRead(sent=3.5, code=200, clean=True, orders=2, approved_cents=100)
    stale_payment = SummaryRead(sent=3.5, code=200, clean=True, orders=3, approved_cents=0)

    assert stale_summaries(fresh, acks, paid, commission) == []
    assert len(stale_summaries([*fresh, stale_order], acks, paid, commission)) == 1
    assert len(stale_summaries([*fresh, stale_payment], acks, paid, commission)) == 1


def test_the_checker_reports_a_lost_or_duplicated_order_fed_to_it() -> None:
    from infra.ops.chaos import lost_and_duplicated

    acks = {"k1": ("o1", 1.0), "k2": ("o2", 2.0)}

    assert lost_and_duplicated(acks, {"k1": ["o1"], "k2": ["o2"]}) == (0, 0)
    assert lost_and_duplicated(acks, {"k1": ["o1"], "k2": ["o2", "o9"]}) == (0, 1), "a key stored twice"
    assert lost_and_duplicated(acks, {"k1": ["o1"], "k2": ["o7"]}) == (1, 0), "not the id the client was given"
    assert lost_and_duplicated(acks, {"k1": ["o1"]}) == (1, 0), "not stored at all"


def test_a_scenario_with_a_stale_summary_or_a_wrong_answer_fails_and_shows_them() -> None:
    from infra.ops.chaos import Result

    result = Result("x", "y", stale=2, wrong=1, checks=[("no stale summary", False, "2 stale"),
                                                        ("no wrong answer", False, "1 wrong")])
    table = render([result])

    assert not result.passed
    assert "| stale | wrong |" in table and "| 2     | 1     |" in table
    assert table.endswith("chaos: 0 passed, 1 failed\n")


class _LyingEngine:
    """A fake engine that lies the ways #23 found: a summary that never counts an order (stale), a payment of
    an existing order answered 404 (wrong), and PocketBase holding one key's order twice (duplicated)."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading
        import uuid

        self.stored: dict[str, list[str]] = {}
        stored = self.stored

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status < 400 else "application/problem+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith("/readyz"):
                    self._send(200, {"ready": True, "checks": {"pocketbase": True, "redis": True}})
                else:  # the summary, as it was before any order
                    self._send(200, {"order_count": 0, "approved_cents": 0, "pending_cents": 0})

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(200, {})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/pay"):
                    self._send(404, {"status": 404, "title": "Not found", "detail": "no order"})
                    return
                key, order = self.headers["Idempotency-Key"], uuid.uuid4().hex
                stored.setdefault(key, []).append(order)
                if len(stored) == 1:
                    stored[key].append(uuid.uuid4().hex)  # the first key: two orders
                self._send(201, {"id": order, "commission_cents": 100})

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.admin_key = "admin"
        self.garbage = None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stored_orders(self, prefix: str) -> dict[str, list[str]]:
        return {key: ids for key, ids in self.stored.items() if key.startswith(prefix + "-")}


def test_a_run_against_an_engine_that_lies_reports_its_stale_summaries_wrong_answers_and_duplicates() -> None:
    """run_scenario itself, not just its helpers: the checks are wired into every scenario's result."""
    from infra.ops.chaos import Load, Scenario, Settings

    def evident(_load: Load, _start: float, _end: float) -> tuple[bool, str]:
        return True, "-"

    engine = _LyingEngine()
    scenario = Scenario("lies", "none", lambda _s: None, lambda _s: None, None, 2.0, evident)
    try:
        result = run_scenario(engine, "key", scenario,  # pyright: ignore[reportArgumentType]
                              Settings(fault_s=1.0, warmup_s=0.5, after_s=0.3, clients=2, rate_per_s=10.0),
                              1, io.StringIO())
    finally:
        engine.server.shutdown()
    failed = {name for name, ok, _ in result.checks if not ok}

    assert result.stale > 0 and result.wrong > 0 and result.duplicated == 1, result
    assert {"no stale summary", "no wrong answer", "no acknowledged order lost or duplicated"} <= failed


def test_the_admin_probe_reports_an_engine_that_judges_orders_by_old_data() -> None:
    """#23, second audit: the lying engine acknowledges every admin write (200) and then answers every order 201
    with a commission of 100 cents: the deactivated product is orderable, and the product's new rate (20 % of
    1000 cents, by hand: 200) is not applied. The new affiliate's order (201) is right."""
    from infra.ops.chaos import AdminProbe

    engine = _LyingEngine()
    probe = AdminProbe(engine.url, "key", "admin", "p1")
    try:
        probe.prepare()
        probe.write()
        probe.check()
    finally:
        engine.server.shutdown()

    assert probe.acknowledged == {"new affiliate": True, "product deactivated": True, "rate changed": True}
    assert [w.split(",")[0] for w in probe.wrong] == ["admin write under the fault: the deactivated product ordered",
                                                      "admin write under the fault: the old rate applied"]
