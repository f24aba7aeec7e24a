"""bench/engine_load.py's figures: the storage backends it is asked for, and scenario 3's table (shares of the
bare endpoint, latency, CPU per request). Apart from the load generator (which patches the process with gevent)
so that tests/test_bench_engine_load.py can check them without starting anything."""

from __future__ import annotations

import argparse

STORAGES = ("pocketbase", "postgres")
"""The engine's storage backends (STORAGE, engine.dev.local_stack(..., storage=...))."""
POSTGRES_MIX_TARGET = 0.25
"""#26: the saturated mix on PostgreSQL at 25 % of the bare endpoint or more."""


def parse_storages(value: str) -> list[str]:
    """`--storage pocketbase,postgres`: the backends, in order, each once."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in STORAGES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a comma-separated list of {', '.join(STORAGES)}")
    return list(dict.fromkeys(names))


BARE = "bare FastAPI hello"


def summarize_windows(measured: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per workload, over its windows: the median req/s and its share of the bare endpoint's median, the
    medians of p50, p99 and of the CPU per request (ms) of the engine, its store, Redis and the load generator;
    errors summed. "cpu_bound_share": the share the CPU alone would allow, were the cores all the run's (a busy
    machine gives it less): the bare endpoint's CPU per request (its server and the load generator) over this
    workload's (engine, store, Redis and the load generator)."""
    bare_rps = median([w["rps"] for w in measured[BARE]])
    summary: dict[str, dict[str, float]] = {}
    for name, windows in measured.items():
        rps = median([w["rps"] for w in windows])
        summary[name] = {"rps": rps, "share": rps / bare_rps if bare_rps else 0.0,
                         "p50_ms": median([w["p50_ms"] for w in windows]),
                         "p99_ms": median([w["p99_ms"] for w in windows]),
                         "errors": float(sum(w["failures"] for w in windows)),
                         **{f"{part}_ms": median([w.get(f"{part}_us", 0.0) for w in windows]) / 1000
                            for part in ("engine", "store", "redis", "load")}}
    parts = ("engine_ms", "store_ms", "redis_ms", "load_ms")
    bare_cpu = sum(summary[BARE][part] for part in parts)
    for row in summary.values():
        cpu = sum(row[part] for part in parts)
        row["cpu_bound_share"] = bare_cpu / cpu if cpu and bare_cpu else 0.0
    return summary


def side_by_side_table(summary: dict[str, dict[str, float]]) -> list[str]:
    """Scenario 3's table: one line per workload, the bare endpoint last (100 %)."""
    lines = [f"  {'workload':<28} {'req/s':>8} {'of bare':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7} "
             f"{'engine CPU ms/req':>17} {'store ms/req':>12} {'Redis ms/req':>12} {'load gen ms/req':>15} "
             f"{'CPU-bound':>9}"]
    for name, row in sorted(summary.items(), key=lambda kv: kv[0] == BARE):
        lines.append(f"  {name:<28} {row['rps']:>8.1f} {row['share']:>8.1%} {row['p50_ms']:>7.0f} "
                     f"{row['p99_ms']:>7.0f} {row['errors']:>7.0f} {row['engine_ms']:>17.3f} "
                     f"{row['store_ms']:>12.3f} {row['redis_ms']:>12.3f} {row['load_ms']:>15.3f} "
                     f"{row['cpu_bound_share']:>9.1%}")
    return lines


def postgres_target(summary: dict[str, dict[str, float]]) -> str | None:
    """#26's target line, when the mix ran on PostgreSQL."""
    for name, row in summary.items():
        if name.endswith("postgres: mix") and not name.startswith("baseline"):
            met = row["share"] >= POSTGRES_MIX_TARGET
            return (f"  target: the mix on PostgreSQL at {POSTGRES_MIX_TARGET:.0%} of bare or more: "
                    f"{row['share']:.1%}, {'MET' if met else 'NOT MET'}")
    return None


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
