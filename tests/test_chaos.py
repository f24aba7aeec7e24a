"""Chaos over the local stack with real binaries (infra/ops/chaos.py): PocketBase, Redis and the engine's
two workers, a fault-injecting proxy between the engine and each dependency.

The short run (2-second faults) of `python3 tools/dev.py chaos` passes: a worker killed under load,
PocketBase unreachable, Redis blackholed, 500 ms on every PocketBase call. And, since a short run sees
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

from infra.ops.chaos import SCENARIOS, SHORT, ChaosStack, chaos_stack, clean_answer, render, run_scenario


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
