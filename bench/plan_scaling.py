#!/usr/bin/env python3
"""How `plan` scales with tenants: prod with 1, 10, 100 and 1,000 tenants, in one run.

Each size is a copy of Pulumi.prod.yaml whose tenants are generated (every third with a custom
domain, as the committed prod stack has). For each size it times the two phases of `plan`: the
program under the mock engine, and the policy pack over the Analyzer protocol. Prints seconds and
resources per size, the marginal cost per tenant, and the ratio of per-tenant costs (largest vs
the one before): near 1.0 means linear growth.

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

from infra.analyzer import run_policies  # noqa: E402
from infra.budget import calls, deploys_needed  # noqa: E402
from infra.plan import run_plan  # noqa: E402
from infra.stackfile import read_stack_file  # noqa: E402


def tenants(count: int) -> list[dict[str, object]]:
    return [
        {"slug": f"t{i:04d}", "name": f"Tenant {i}", "currency": "BRL",
         **({"domains": [f"shop.tenant{i:04d}.com.br"]} if i % 3 == 0 else {})}
        for i in range(count)
    ]


EMPTY: dict[str, object] = {"resources": []}
BUDGET_ROWS: dict[int, str] = {}


def measure(count: int, directory: Path, repeat: int, policies: bool = True) -> tuple[float, float, int]:
    """Best (program seconds, policy seconds) over `repeat` runs, and the resource count. The stack
    passes config validation first (`run_plan`), so every size fits its zone's plan and quotas."""
    document = copy.deepcopy(yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text()))
    document["config"]["platform:tenants"] = tenants(count)
    document["config"].pop("platform:waivers", None)
    path = directory / f"Pulumi.prod-{count}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    best_program = best_policy = float("inf")
    resources = 0
    for _ in range(repeat):
        start = time.perf_counter()
        plan = run_plan(read_stack_file(path), "prod")
        middle = time.perf_counter()
        if policies:
            run_policies(plan.analyzer_inputs())
        best_program = min(best_program, middle - start)
        best_policy = min(best_policy, time.perf_counter() - middle)
        resources = len(plan.resources)
        # A first deploy of this stack, against the providers' rate limits (stacks/quotas.py).
        after = plan.to_json()
        used = ", ".join(f"{b.provider.rstrip(':')} {b.operations[0]} {n}/{b.per_deploy}"
                         for b, n in calls(EMPTY, after))
        BUDGET_ROWS[count] = f"{count:>8} {deploys_needed(EMPTY, after):>8}  {used}"
    return best_program, best_policy, resources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the fastest counts")
    parser.add_argument("--no-policies", action="store_true", help="time the program only")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    results: dict[int, tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        measure(1, Path(tmp), 1, not args.no_policies)  # warm imports, so the first size is not charged for them
        for size in sizes:
            results[size] = measure(size, Path(tmp), args.repeat, not args.no_policies)

    def total(size: int) -> float:
        return results[size][0] + results[size][1]

    print(f"{'tenants':>8} {'program s':>10} {'policy s':>9} {'total s':>8} {'resources':>10} {'ms/tenant':>10}")
    for size in sizes:
        program, policy, resources = results[size]
        per_tenant = (total(size) - total(sizes[0])) / (size - sizes[0]) * 1000 if size != sizes[0] else float("nan")
        print(f"{size:>8} {program:>10.2f} {policy:>9.2f} {total(size):>8.2f} {resources:>10} {per_tenant:>10.2f}")
    if len(sizes) >= 3:
        big, mid = sizes[-1], sizes[-2]
        per_big = (total(big) - total(sizes[0])) / (big - sizes[0])
        per_mid = (total(mid) - total(sizes[0])) / (mid - sizes[0])
        print(f"per-tenant cost ratio {big} vs {mid} tenants: {per_big / per_mid:.2f} (1.0 = linear)")
    extra = (results[sizes[-1]][2] - results[sizes[0]][2]) / (sizes[-1] - sizes[0])
    print(f"resources per extra tenant: {extra:.2f}")
    print("\nfirst deploy of each size against the API rate limits (calls / per-deploy budget):")
    print(f"{'tenants':>8} {'deploys':>8}  budgets")
    for size in sizes:
        print(BUDGET_ROWS[size])


if __name__ == "__main__":
    main()
