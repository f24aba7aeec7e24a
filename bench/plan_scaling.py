#!/usr/bin/env python3
"""How `plan` scales with tenants: prod with 1, 10, 100 and 1,000 tenants, in one run.

Each size is a copy of Pulumi.prod.yaml whose tenants are generated (every third with a custom
domain, as the committed prod stack has). Prints seconds and resources per size, the cost per
tenant, and the ratio of per-tenant costs (1,000 vs 100): near 1.0 means linear growth.

    .venv/bin/python bench/plan_scaling.py [--sizes 1,10,100,1000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.plan import run_plan  # noqa: E402
from infra.stackfile import read_stack_file  # noqa: E402


def tenants(count: int) -> list[dict[str, object]]:
    return [
        {"slug": f"t{i:04d}", "name": f"Tenant {i}", "currency": "BRL",
         **({"domains": [f"shop.tenant{i:04d}.com.br"]} if i % 3 == 0 else {})}
        for i in range(count)
    ]


def measure(count: int, directory: Path, repeat: int) -> tuple[float, int]:
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document = copy.deepcopy(document)
    document["config"]["platform:tenants"] = tenants(count)
    path = directory / f"Pulumi.prod-{count}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    best = float("inf")
    resources = 0
    for _ in range(repeat):
        start = time.perf_counter()
        plan = run_plan(read_stack_file(path), "prod")
        best = min(best, time.perf_counter() - start)
        resources = len(plan.resources)
    return best, resources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the fastest counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    results: dict[int, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        measure(1, Path(tmp), 1)  # warm imports and caches, so the first size is not charged for them
        for size in sizes:
            results[size] = measure(size, Path(tmp), args.repeat)

    base_seconds, base_resources = results[sizes[0]]
    print(f"{'tenants':>8} {'seconds':>9} {'resources':>10} {'ms/tenant':>10} {'ms/resource':>12}")
    for size in sizes:
        seconds, resources = results[size]
        per_tenant = (seconds - base_seconds) / (size - sizes[0]) * 1000 if size != sizes[0] else float("nan")
        print(f"{size:>8} {seconds:>9.2f} {resources:>10} {per_tenant:>10.2f} {seconds / resources * 1000:>12.2f}")
    if len(sizes) >= 3:
        big, mid = sizes[-1], sizes[-2]
        per_big = (results[big][0] - base_seconds) / (big - sizes[0])
        per_mid = (results[mid][0] - base_seconds) / (mid - sizes[0])
        print(f"per-tenant cost ratio {big} vs {mid} tenants: {per_big / per_mid:.2f} (1.0 = linear)")
    print(f"resources per extra tenant: {(results[sizes[-1]][1] - base_resources) / (sizes[-1] - sizes[0]):.2f}")


if __name__ == "__main__":
    main()
