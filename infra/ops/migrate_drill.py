"""The move to PostgreSQL, rehearsed under load with real binaries (`python3 tools/dev.py drill --migrate-db`, #26).

PocketBase (with the image's hooks), Redis and the engine on PocketBase, as `engine dev` runs them; PostgreSQL from
Debian's packages with the engine's tables (infra/ops/pg_local.py); clients creating orders (half with an
affiliate) and paying some, each retrying a refused write with its Idempotency-Key after Retry-After, as a client
should. Under that load: `migrate-db`'s initial copy, then the cut-over (writes paused in PocketBase, drain, final
sync, proof), then the switch: the engine restarted with STORAGE=postgres and serving; writes resume. An engine
without a PostgreSQL store (before helper pgport's adapter is merged) cannot switch: the drill then takes the
rollback path instead (the pause lifted, the engine writing to PocketBase again) and says so.

Printed: orders acknowledged, orders lost (acknowledged but not in PostgreSQL after the switch with the same id,
money and status; must be 0), the write pause in seconds (from PocketBase refusing the engine's writes to the
first write served after it), what every refused write was answered (503 writes_paused with Retry-After, never
500 nor a hang), and `migrate drill: N passed, M failed`. Exit 0 only when all passed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from engine.dev import LocalStack, wait_http, wait_tcp
from engine.registry import key_hash

from infra.ops import migrate_db
from infra.ops.drill import Checked
from infra.ops.migrate_db import Endpoints, run_step
from infra.ops.pg_local import Postgres, apply_schema, postgres_server


@dataclass(frozen=True)
class MigrateDrillSettings:
    warmup_s: float = 8.0
    """Traffic on PocketBase before the initial copy."""
    between_s: float = 2.0
    """Traffic between the initial copy and the cut-over (writes the final sync must bring)."""
    after_s: float = 3.0
    """Traffic after writes resume."""
    rate_per_s: float = 30.0
    clients: int = 4
    drain_s: float = migrate_db.DRAIN_S


@dataclass
class Ack:
    order_id: str
    total_cents: int
    commission_cents: int
    at: float
    statuses: list[tuple[float, str]] = field(default_factory=list[tuple[float, str]])
    """(when acknowledged, status) of each status change after `created`."""

    def status_at(self, moment: float) -> str:
        """The status acknowledged last by `moment`."""
        return next((status for at, status in reversed(self.statuses) if at <= moment), "created")


@dataclass
class MigrateDrillResult(Checked):
    acknowledged: int = 0
    lost: int = 0
    pause_s: float = 0.0
    paused_answers: int = 0
    """Writes answered 503 writes_paused with Retry-After."""
    other_refusals: dict[str, int] = field(default_factory=dict[str, int])
    """Anything else a write was answered while the drill ran ("HTTP 500", "timeout", ...)."""
    switched: bool = False
    lost_examples: list[str] = field(default_factory=list[str])
    checks: list[tuple[str, bool, str]] = field(default_factory=list[tuple[str, bool, str]])
    log: list[str] = field(default_factory=list[str])

    def render(self) -> str:
        lines = [f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}" for name, ok, detail in self.checks]
        lines += [f"orders: {self.acknowledged} acknowledged, {self.lost} lost",
                  f"write pause: {self.pause_s:.2f} s ({self.paused_answers} writes answered 503 writes_paused "
                  "with Retry-After, each retried)",
                  f"migrate drill: {self.passed} passed, {self.failed} failed"]
        return "\n".join(lines) + "\n"


class Load:
    """Clients creating orders and paying some; a refused write is retried with its key after Retry-After."""

    def __init__(self, url: str, api_key: str, settings: MigrateDrillSettings) -> None:
        self.url, self.api_key, self.settings = url, api_key, settings
        self.acks: dict[str, Ack] = {}
        self.paused_answers = 0
        self.refusals: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(settings.clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def first_ack_after(self, moment: float) -> float | None:
        with self.lock:
            later = [a.at for a in self.acks.values() if a.at > moment]
        return min(later) if later else None

    def _refused(self, what: str) -> None:
        with self.lock:
            self.refusals[what] = self.refusals.get(what, 0) + 1

    def _write(self, client: httpx.Client, path: str, headers: dict[str, str], body: dict[str, Any] | None,
               ) -> httpx.Response | None:
        """The write, retried while refused for the pause or while the engine restarts; None when the drill stops."""
        while not self.stop.is_set():
            try:
                response = client.post(path, headers=headers, json=body)
            except httpx.TimeoutException:
                self._refused("no answer within 10 s")
                continue
            except httpx.TransportError:
                self._refused("engine restarting (connection refused)")
                self.stop.wait(0.1)
                continue
            if response.status_code == 503:
                paused = (response.headers.get("content-type", "").startswith("application/problem+json")
                          and response.json().get("error") == "writes_paused")
                retry_after = response.headers.get("retry-after", "")
                if paused and retry_after.isdigit() and int(retry_after) > 0:
                    with self.lock:
                        self.paused_answers += 1
                else:
                    self._refused(f"503 {'writes_paused' if paused else 'storage unavailable'} "
                                  f"(Retry-After {retry_after or 'absent'})")
                # A client waits Retry-After; the drill waits less, to measure when writes resume.
                self.stop.wait(0.2)
                continue
            if response.status_code >= 400:
                self._refused(f"HTTP {response.status_code}")
                return None
            return response
        return None

    def _client(self, index: int) -> None:
        period = self.settings.clients / self.settings.rate_per_s
        rng = random.Random(index)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        mine: list[str] = []
        with httpx.Client(base_url=self.url, timeout=10) as client:
            next_at = time.monotonic()
            while not self.stop.is_set():
                if mine and rng.random() < 0.3:
                    order_id = mine.pop(rng.randrange(len(mine)))
                    response = self._write(client, f"/v1/orders/{order_id}/pay", headers, None)
                    if response is not None:
                        with self.lock:
                            self.acks[order_id].statuses.append((time.monotonic(), str(response.json()["status"])))
                else:
                    body: dict[str, Any] = {"lines": [{"sku": "MUG", "quantity": rng.randint(1, 3),
                                                       "discount_cents": rng.randint(0, 99)}]}
                    if rng.random() < 0.5:
                        body["affiliate_id"] = "ana"
                    response = self._write(client, "/v1/orders", headers | {"Idempotency-Key": uuid.uuid4().hex},
                                           body)
                    if response is not None:
                        order = response.json()
                        ack = Ack(str(order["id"]), int(order["total_cents"]), int(order["commission_cents"]),
                                  time.monotonic())
                        with self.lock:
                            self.acks[ack.order_id] = ack
                        mine.append(ack.order_id)
                next_at += period
                self.stop.wait(max(0.0, next_at - time.monotonic()))


def engine_has_postgres() -> bool:
    """Whether this engine can serve from PostgreSQL (its settings know STORAGE, PG.md)."""
    from engine.settings import Settings

    return "storage" in Settings.model_fields


def restart_engine(stack: LocalStack, env: dict[str, str]) -> None:
    """The engine stopped and started again on the same address with `env` added (the switch's deploy)."""
    stack.stop("engine")
    stack.env.update(env)
    output = open(stack.log, "ab") if stack.log is not None else None  # noqa: SIM115 (the child keeps it)
    try:
        stack.processes["engine"] = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "--host", "127.0.0.1", "--port", str(stack.engine_port)],
            env=stack.env, stdout=output, stderr=output)
    finally:
        if output is not None:
            output.close()
    wait_tcp(stack.engine_port, stack.processes["engine"], timeout_s=stack.engine_start_timeout_s)
    wait_http(f"{stack.url}/readyz", timeout_s=stack.engine_start_timeout_s)


async def _in_postgres(pg: Postgres, ids: list[str]) -> dict[str, tuple[int, int, str]]:
    connection = await migrate_db.connect_dsn(pg.dsn())
    try:
        rows: list[Any] = await connection.fetch(
            "SELECT id, total_cents, commission_cents, status FROM orders WHERE id = ANY($1::text[])", ids)
        return {str(r["id"]): (int(r["total_cents"]), int(r["commission_cents"]), str(r["status"])) for r in rows}
    finally:
        await connection.close()


def run_migrate_drill(workdir: Path, settings: MigrateDrillSettings, out: Any = sys.stdout) -> MigrateDrillResult:
    result = MigrateDrillResult()
    api_key, admin_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tenant: dict[str, object] = {"slug": "drill", "currency": "BRL", "api_key_hashes": [key_hash(api_key)],
                                 "admin_key_hashes": [key_hash(admin_key)]}
    stack = LocalStack(workdir, [tenant], log=workdir / "engine.log")
    step_out = io.StringIO()

    def say(message: str) -> None:
        result.log.append(message)
        print(f"migrate drill: {message}", file=out, flush=True)

    with postgres_server() as pg:
        asyncio.run(apply_schema(pg))
        try:
            stack.start()
            admin = {"Authorization": f"Bearer {admin_key}"}
            for path, body in (("/v1/products/MUG", {"name": "Mug", "category": "home", "price_cents": 4500}),
                               ("/v1/affiliates/ana", {"name": "Ana"}),
                               ("/v1/commission-rules", {"default_rate_bps": 1000, "order_cap_cents": 1000})):
                httpx.put(f"{stack.url}{path}", headers=admin, json=body, timeout=10).raise_for_status()
            endpoints = Endpoints(f"http://127.0.0.1:{stack.pb_port}", stack.email, stack.password, pg.dsn())
            say(f"engine {stack.url} on PocketBase 127.0.0.1:{stack.pb_port}, PostgreSQL 127.0.0.1:{pg.port}; "
                f"{settings.rate_per_s:g} writes/s from {settings.clients} clients")
            paused_at: list[float] = []
            with Load(stack.url, api_key, settings) as load:
                time.sleep(settings.warmup_s)
                copied = asyncio.run(run_step("copy", endpoints, out=step_out))
                say(f"initial copy under load: {sum(w.inserted for w in copied.written.values())} rows in "
                    f"{copied.seconds.get('copy', 0):.2f} s")
                time.sleep(settings.between_s)
                cut = asyncio.run(run_step("cutover", endpoints, drain_s=settings.drain_s, out=step_out,
                                           on_paused=paused_at.append))
                differences = cut.proof.differences if cut.proof else ["no proof"]
                result.checks.append(("the final sync is proved (rows per tenant, checksums, commission totals)",
                                      cut.ok, "equal" if cut.ok else "; ".join(differences[:5])))
                say(f"cut-over: paused ({cut.seconds.get('pause', 0):.2f} s), drained {settings.drain_s:g} s, "
                    f"final sync {cut.seconds.get('final_sync', 0):.2f} s, proof {cut.seconds.get('verify', 0):.2f} s: "
                    f"{'proved' if cut.ok else 'NOT proved'}")
                resuming_at = time.monotonic()  # writes may be acknowledged again from here on
                if cut.ok and engine_has_postgres():
                    restart_engine(stack, pg.engine_env())
                    result.switched = True
                    say("switch: the engine restarted with STORAGE=postgres and is ready; writes resume there")
                else:
                    why = ("the proof failed" if not cut.ok else
                           "this engine has no PostgreSQL store (STORAGE unknown to its settings: helper pgport's "
                           "adapter is not merged here)")
                    rolled = asyncio.run(run_step("rollback", endpoints, out=step_out))
                    say(f"no switch: {why}; rollback: {'pause lifted' if rolled.ok else 'FAILED'} in "
                        f"{rolled.seconds.get('resume', 0):.2f} s, writes resume on PocketBase")
                    result.checks.append(("rollback before resume lifts the pause", rolled.ok, "engine writes to "
                                          "PocketBase again" if rolled.ok else "still paused"))
                resumed_at = time.monotonic()
                if paused_at:
                    say(f"writes resumed {resumed_at - paused_at[0]:.2f} s after the pause began")
                time.sleep(settings.after_s)
            acks = list(load.acks.values())
            result.acknowledged = len(acks)
            result.paused_answers = load.paused_answers
            result.other_refusals = dict(load.refusals)
            # The pause begins with the first collection's PATCH and holds once the last one's is done: a write to
            # a collection not yet paused, or admitted just before, may still be acknowledged in between (the drain
            # is for those). The pause lasts until the first write acknowledged after it held.
            pause_start = paused_at[0] if paused_at else resumed_at
            fully_paused = pause_start + cut.seconds.get("pause", 0.0)
            first_after = load.first_ack_after(fully_paused)
            result.pause_s = (first_after if first_after is not None else resumed_at) - pause_start
            # Every order acknowledged before writes resumed must be in PostgreSQL, with the same id, money and
            # status: the cut-over's promise. After a switch, every order acknowledged at all. (Without a switch,
            # what PocketBase acknowledged after the rollback stays there, and is read back through the engine.)
            must = [a for a in acks if result.switched or a.at <= resuming_at]
            as_of = float("inf") if result.switched else resuming_at
            found = asyncio.run(_in_postgres(pg, [a.order_id for a in must]))
            lost = [a for a in must
                    if found.get(a.order_id) != (a.total_cents, a.commission_cents, a.status_at(as_of))]
            result.lost = len(lost)
            result.lost_examples = [
                f"{a.order_id}: acknowledged {(a.total_cents, a.commission_cents, a.status_at(as_of))}, "
                f"PostgreSQL {found.get(a.order_id)}" for a in lost[:5]]
            if not result.switched:
                # Acknowledged on PocketBase after the rollback: the engine reads each back.
                with httpx.Client(base_url=stack.url, timeout=10,
                                  headers={"Authorization": f"Bearer {api_key}"}) as client:
                    later = [a for a in acks if a.at > resuming_at]
                    unread = [a for a in later if client.get(f"/v1/orders/{a.order_id}").status_code != 200]
                    changed = [a for a in acks if a.statuses and a.statuses[-1][0] > resuming_at
                               and client.get(f"/v1/orders/{a.order_id}").json().get("status") != a.statuses[-1][1]]
                    unread += changed
                result.lost += len(unread)
            bad = {what: n for what, n in result.other_refusals.items()
                   if not what.startswith("engine restarting")}
            result.checks += [
                ("every acknowledged order is in PostgreSQL with the same id, money and status"
                 + ("" if result.switched else " (those before writes resumed; the later ones on PocketBase)"),
                 result.lost == 0 and result.acknowledged > 0,
                 f"{result.lost} of {len(must)} lost" + (f": {result.lost_examples[0]}" if result.lost_examples
                                                          else "")),
                ("writes refused during the pause were answered 503 writes_paused with Retry-After",
                 result.paused_answers > 0, f"{result.paused_answers} answered so"),
                ("no write was answered otherwise (500, another 503, a hang)", not bad,
                 ", ".join(f"{n}x {what}" for what, n in bad.items()) or "none"),
                ("no write was acknowledged while the pause held",
                 not any(fully_paused < a.at < resuming_at for a in acks)
                 and not any(fully_paused < at < resuming_at for a in acks for at, _ in a.statuses),
                 f"{sum(1 for a in acks if fully_paused < a.at < resuming_at)} orders in "
                 f"{resuming_at - fully_paused:.2f} s"),
                ("orders are acknowledged again after the pause", first_after is not None,
                 f"first after {result.pause_s:.2f} s"),
            ]
            if result.switched:
                result.checks.append(("the engine serves from PostgreSQL after the switch",
                                      any(a.at > resumed_at for a in acks),
                                      f"{sum(1 for a in acks if a.at > resumed_at)} orders after the switch"))
        finally:
            stack.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.ops.migrate_drill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=float, default=MigrateDrillSettings.warmup_s,
                        help="seconds of traffic before the copy")
    parser.add_argument("--rate", type=float, default=MigrateDrillSettings.rate_per_s, help="writes per second")
    parser.add_argument("--keep", action="store_true", help="keep the drill's directory (logs, data)")
    args = parser.parse_args(argv)
    settings = MigrateDrillSettings(warmup_s=args.warmup, rate_per_s=args.rate)
    workdir = Path(tempfile.mkdtemp(prefix="dr-migrate-"))
    try:
        result = run_migrate_drill(workdir, settings)
    finally:
        if args.keep:
            print(f"migrate drill: kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(result.render())
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
