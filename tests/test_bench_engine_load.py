"""bench/engine_load.py's `--storage` handling and its side-by-side table (#26 item 4), checked without timing
anything: the figures of a real run are in bench/README.md, never asserted here."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load_report import (
    BARE,
    parse_storages,
    postgres_target,
    side_by_side_table,
    summarize_windows,
)

ROOT = Path(__file__).resolve().parent.parent


def _window(rps: float, p50: float = 5, p99: float = 50, engine_us: float = 0, store_us: float = 0,
            redis_us: float = 0, failures: int = 0, load_us: float = 500) -> dict[str, float]:
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "failures": failures, "engine_us": engine_us,
            "store_us": store_us, "redis_us": redis_us, "load_us": load_us}


def test_storage_names_both_backends_in_order_each_once() -> None:
    assert parse_storages("pocketbase,postgres") == ["pocketbase", "postgres"]
    assert parse_storages("postgres, pocketbase,postgres") == ["postgres", "pocketbase"]
    assert parse_storages("postgres") == ["postgres"]


@pytest.mark.parametrize("value", ["mysql", "pocketbase,sqlite", "", ","])
def test_an_unknown_or_empty_storage_is_refused_naming_the_choices(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="pocketbase, postgres"):
        parse_storages(value)


def test_each_workload_is_a_share_of_the_bare_endpoints_median_with_its_cpu_per_request_in_ms() -> None:
    measured = {
        "pocketbase: mix": [_window(100, engine_us=2000, store_us=1500), _window(120, engine_us=2200, store_us=900),
                            _window(110, engine_us=1800, store_us=1000)],
        "postgres: mix": [_window(300, 4, 40, 900, 300, 20), _window(280, 6, 60, 1100, 500, 40),
                          _window(290, 5, 80, 1000, 400, 30, failures=2)],
        BARE: [_window(1000, engine_us=150), _window(1200, engine_us=130), _window(1100, engine_us=140)],
    }
    summary = summarize_windows(measured)
    assert summary["pocketbase: mix"]["share"] == pytest.approx(110 / 1100)
    # The bare endpoint: 0.14 ms in its server and 0.5 in the load generator per request; the mix on PostgreSQL
    # 1.0 + 0.4 + 0.03 + 0.5: were the cores all the run's, the mix could be 0.64 / 1.93 of bare.
    assert summary["postgres: mix"] == pytest.approx({"rps": 290, "share": 290 / 1100, "p50_ms": 5, "p99_ms": 60,
                                                      "errors": 2, "engine_ms": 1.0, "store_ms": 0.4,
                                                      "redis_ms": 0.03, "load_ms": 0.5,
                                                      "cpu_bound_share": 0.64 / 1.93})
    assert summary[BARE]["share"] == pytest.approx(1.0)
    lines = side_by_side_table(summary)
    assert "engine CPU ms/req" in lines[0] and "of bare" in lines[0] and "load gen ms/req" in lines[0]
    assert [line.split()[0:2] for line in lines[1:]] == [["pocketbase:", "mix"], ["postgres:", "mix"],
                                                        ["bare", "FastAPI"]]
    postgres = lines[2].split()
    assert postgres[2:12] == ["290.0", "26.4%", "5", "60", "2", "1.000", "0.400", "0.030", "0.500", "33.2%"]
    assert postgres_target(summary) == "  target: the mix on PostgreSQL at 25% of bare or more: 26.4%, MET"


def test_the_target_is_not_met_below_a_quarter_of_bare_and_is_not_judged_without_postgres() -> None:
    summary = summarize_windows({"postgres: mix": [_window(240)], "baseline postgres: mix": [_window(900)],
                                 BARE: [_window(1000)]})
    assert postgres_target(summary) == "  target: the mix on PostgreSQL at 25% of bare or more: 24.0%, NOT MET"
    assert postgres_target(summarize_windows({"pocketbase: mix": [_window(900)], BARE: [_window(1000)]})) is None


def test_a_quick_run_prints_the_table_for_each_backend_asked(tmp_path: Path) -> None:
    """The real thing, tiny: real engines with their stores and Redis, one window of a second at two users."""
    storages = "pocketbase,postgres"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "engine_load.py"), "--storage", storages,
                          "--scenarios", "3", "--windows", "1", "--window", "1", "--compare-users", "2",
                          "--workers", "1"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    header = next(line for line in run.stdout.splitlines() if "engine CPU ms/req" in line)
    table = run.stdout.split(header, 1)[1].splitlines()
    names = [" ".join(line.split()[:2]) for line in table if line.strip()]
    expected = [f"{storage}: {kind}" for kind in ("mix", "writes") for storage in storages.split(",")]
    assert names[:len(expected) + 1] == [*expected, "bare FastAPI"]
    summary = json.loads(run.stderr.strip().splitlines()[-1])["summary"]
    assert set(summary) == {*expected, BARE}
    for name in expected:
        assert summary[name]["rps"] > 0 and summary[name]["errors"] == 0
        assert summary[name]["engine_ms"] > 0 and summary[name]["store_ms"] > 0 and summary[name]["load_ms"] > 0
