#!/usr/bin/env python3
"""What one cached read costs in Redis client code: the engine's pipelined client against redis-py.

The engine's summary read is one MGET of two keys. This runs that MGET from N concurrent tasks on
one event loop (uvloop, as uvicorn runs it) against a real redis-server on loopback, for
redis-py's asyncio client (single connection, and a connection pool) and for
`engine.adapters.resp.Redis`. It prints commands per second and this process's CPU time per
command, and the ratios to redis-py's pool, all in one run (the machine is noisy; compare ratios).

    .venv/bin/python bench/redis_client.py [--seconds 3] [--tasks 1 4 16]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis_py
import uvloop
from engine.adapters.resp import Redis
from engine.dev import free_port, wait_tcp

Call = Callable[[], Awaitable[Any]]


async def drive(call: Call, tasks: int, seconds: float) -> tuple[float, float]:
    """(commands per second, CPU µs per command) with `tasks` tasks calling in a loop."""
    stop = time.monotonic() + seconds
    count = 0

    async def loop() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await call()
            count += 1

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    return count / (time.monotonic() - wall), (time.process_time() - cpu) / count * 1e6


async def measure(url: str, tasks: list[int], seconds: float) -> dict[int, dict[str, tuple[float, float]]]:
    single = redis_py.Redis.from_url(url, decode_responses=True, socket_timeout=0.25,  # what the engine used
                                     single_connection_client=True)
    pool = redis_py.Redis.from_url(url, decode_responses=True, socket_timeout=0.25)
    ours = Redis(url, timeout_s=0.25)
    await ours.execute("MSET", "summary-gen:t:a", "3", "summary:t:a:2026-11", '3\n{"order_count":1}')
    clients: dict[str, Call] = {
        "redis-py, one connection": lambda: single.mget(["summary-gen:t:a", "summary:t:a:2026-11"]),
        "redis-py, pool": lambda: pool.mget(["summary-gen:t:a", "summary:t:a:2026-11"]),
        "engine (hiredis, pipelined)": lambda: ours.execute("MGET", "summary-gen:t:a", "summary:t:a:2026-11"),
    }
    results: dict[int, dict[str, tuple[float, float]]] = {}
    for n in tasks:
        results[n] = {}
        for name, call in clients.items():
            await drive(call, n, 0.3)  # connect and warm up
            results[n][name] = await drive(call, n, seconds)
    await single.aclose()
    await pool.aclose()
    await ours.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds measured per client and task count")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 4, 16], help="concurrent tasks")
    args = parser.parse_args()

    port, password = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait_tcp(port, server)
        results = uvloop.run(measure(f"redis://:{password}@127.0.0.1:{port}/0", args.tasks, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"MGET of two keys, redis-server on loopback, {args.seconds:.0f} s per row, uvloop")
    print(f"  {'tasks':>5}  {'client':<28} {'cmd/s':>9} {'CPU µs/cmd':>11} {'CPU vs pool':>12}")
    for n, row in results.items():
        pool_cpu = row["redis-py, pool"][1]
        for name, (rate, cpu) in row.items():
            print(f"  {n:>5}  {name:<28} {rate:>9,.0f} {cpu:>11.1f} {cpu / pool_cpu:>11.2f}x")


if __name__ == "__main__":
    main()
