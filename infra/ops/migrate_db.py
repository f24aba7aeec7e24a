"""`python -m infra migrate-db --stack S --step copy|cutover|verify|rollback`: PocketBase's data into PostgreSQL,
proved, with a cut-over that pauses writes and a rollback (#26 item 3; docs/runbooks/migrate-db.md).

- `copy`: every engine collection (engine/schema.py) read from PocketBase's REST API as its superuser, in pages
  by record id, and merged into the tables of engine/migrations/0001_initial.sql as the migrator account (asyncpg,
  COPY into a staging table, then `INSERT ... ON CONFLICT DO UPDATE` where the row differs): re-runnable, and run
  while the engine still writes to PocketBase. Transitions are read before orders, so every transition's order is
  in the copy (PocketBase stores an order before any of its transitions).
- `cutover`: writes paused (PocketBase itself refuses the engine's account: each engine collection's createRule
  and updateRule set to null, "only superusers", https://pocketbase.io/docs/api-rules-and-filters/; the engine
  answers 503 `writes_paused` with Retry-After, engine/writes_paused.py), a drain of the engine's PocketBase
  timeout (a write PocketBase admitted before the rules changed and acknowledged to a client is acknowledged
  within that timeout of the rules' change, so it is stored before the final read starts), the final sync, then
  the proof. Exit 0: switch the stack to Postgres now (the runbook); PocketBase stays paused.
- `verify`: the proof alone: rows per collection and tenant, a SHA-256 per table over a canonical, ordered
  serialisation computed on each side independently (in Python from PocketBase's REST answers, in SQL by
  PostgreSQL), and the commission totals per affiliate, month and status (PocketBase's commission_totals view,
  summed by SQLite; `SUM` in PostgreSQL). Any difference: exit 1 and the differing rows named.
- `rollback`: lift the pause (each collection's rules as engine/schema.py declares them); the engine writes to
  PocketBase again. Only before the engine serves from PostgreSQL: see the runbook for after.

Credentials come from the environment, are never printed, and no stack output holds one: POCKETBASE_URL,
PB_SUPERUSER_EMAIL (default platform-admin@<zone>), PB_SUPERUSER_PASSWORD; POSTGRES_HOST, POSTGRES_PORT,
POSTGRES_DB, POSTGRES_MIGRATOR_USER, POSTGRES_MIGRATOR_PASSWORD, POSTGRES_CA_CERT (PG.md). Exit codes: 0 done and
proved, 1 a difference or a failure, 2 usage or a missing credential.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import ssl
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MIGRATE_JOB = "engine-migrate"
"""The schema job's name (components/postgres.py MIGRATE_JOB; not imported: this command needs no Pulumi SDK)."""
PAGE = 500
DRAIN_S = 6.0
"""After the pause, before the final read: the engine's POCKETBASE_TIMEOUT_SECONDS (5 s, engine/settings.py) and a
second. A write PocketBase admitted under the old rules is either stored and acknowledged within the engine's
timeout, or the engine answered 503 and the client retries it (its Idempotency-Key) on PostgreSQL."""
SUPERUSERS = "_superusers"


# ---------------------------------------------------------------------------------------------
# The tables, and how PocketBase's records map to their rows


@dataclass(frozen=True)
class Table:
    name: str
    """The collection's name, which is the table's."""
    key: tuple[str, ...]
    """The table's primary key (0001_initial.sql)."""
    columns: tuple[tuple[str, str], ...]
    """(column, kind): text, ntext (NULL for PocketBase's ""), int, nint (nullable), bool, json, ts."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


TABLES: tuple[Table, ...] = (
    Table("products", ("tenant", "sku"), (("tenant", "text"), ("sku", "text"), ("name", "text"),
                                          ("category", "text"), ("price_cents", "int"), ("active", "bool"))),
    Table("catalog_versions", ("tenant",), (("tenant", "text"), ("catalog_version", "text"))),
    Table("affiliates", ("tenant", "affiliate_id"), (("tenant", "text"), ("affiliate_id", "text"), ("name", "text"),
                                                     ("summary_version", "text"))),
    Table("commission_rules", ("tenant",), (("tenant", "text"), ("default_rate_bps", "int"),
                                            ("category_rates_bps", "json"), ("product_rates_bps", "json"),
                                            ("order_cap_cents", "nint"))),
    Table("orders", ("id",), (("id", "text"), ("tenant", "text"), ("idempotency_key", "text"),
                              ("request_hash", "text"), ("affiliate_id", "ntext"), ("status", "text"),
                              ("commission_status", "text"), ("currency", "text"), ("created_month", "text"),
                              ("total_cents", "int"), ("commission_cents", "int"), ("lines", "json"),
                              ("created", "ts"), ("updated", "ts"))),
    Table("order_transitions", ("order_id", "from_status"), (("tenant", "text"), ("order_id", "text"),
                                                             ("from_status", "text"), ("to_status", "text"),
                                                             ("created", "ts"))),
)
BY_NAME = {table.name: table for table in TABLES}
READ_ORDER = ("order_transitions", "orders", "products", "catalog_versions", "affiliates", "commission_rules")
"""Transitions before orders: an order is stored before its transitions, so a copy taken while writes go on holds
the order of every transition it holds (the foreign key order_transitions.order_id)."""
WRITE_ORDER = tuple(table.name for table in TABLES)
"""Orders before transitions, for the same foreign key."""


class MappingError(Exception):
    """A PocketBase record that does not fit its table: named, never copied half."""


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise MappingError(f"{where}: {value!r} is not a whole number")
    return int(value)


def pb_time(value: Any, where: str) -> dt.datetime:
    """PocketBase's autodate ("2026-12-07 18:58:46.123Z", UTC, milliseconds) as an aware datetime."""
    if not isinstance(value, str) or not value.endswith("Z"):
        raise MappingError(f"{where}: {value!r} is not PocketBase's date")
    return dt.datetime.fromisoformat(value[:-1].replace(" ", "T")).replace(tzinfo=dt.UTC)


def order_cap(record: Mapping[str, Any], where: str) -> int | None:
    """PocketBase stores an unset number as 0, so `has_order_cap` says whether 0 is a cap (services._order_cap):
    a record written before that field existed has a cap if its number is not 0."""
    cap = _int(record.get("order_cap_cents") or 0, where)
    return cap if record.get("has_order_cap") else (cap or None)


def to_row(table: Table, record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The table's row for a PocketBase record, in `table.columns` order (JSON columns as their text)."""
    row: list[Any] = []
    for name, kind in table.columns:
        where = f"{table.name} {record.get('id')!r}.{name}"
        value = record.get(name)
        if table.name == "commission_rules" and name == "order_cap_cents":
            row.append(order_cap(record, where))
        elif kind in ("text", "ntext"):
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise MappingError(f"{where}: {value!r} is not text")
            row.append(None if kind == "ntext" and value == "" else value)
        elif kind in ("int", "nint"):
            row.append(_int(value or 0, where))
        elif kind == "bool":
            row.append(bool(value))
        elif kind == "json":
            default: Any = [] if name == "lines" else {}
            row.append(json.dumps(default if value is None else value, ensure_ascii=False))
        elif kind == "ts":
            row.append(pb_time(value, where))
        else:  # pragma: no cover (the kinds above are all TABLES uses)
            raise AssertionError(kind)
    return tuple(row)


# ---------------------------------------------------------------------------------------------
# The canonical serialisation: one line per row, computed in Python from PocketBase, in SQL by PostgreSQL


def jsonb_text(value: Any) -> str:
    """A JSON value as PostgreSQL prints the jsonb it stores (`jsonb::text`): an object's keys shorter first, then
    by their bytes ("shorter keys are stored before longer keys, and keys of equal length are sorted by binary",
    https://www.postgresql.org/docs/15/datatype-json.html), a space after `:` and `,`."""
    if isinstance(value, dict):
        items = cast(dict[str, Any], value)
        keys = sorted(items, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {jsonb_text(items[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(item) for item in cast(list[Any], value)) + "]"
    return json.dumps(value, ensure_ascii=False)


def _cell(kind: str, value: Any) -> str:
    if value is None:
        return "-"
    if kind in ("text", "ntext"):
        return str(value).encode().hex()
    if kind in ("int", "nint"):
        return str(int(value))
    if kind == "bool":
        return "t" if value else "f"
    if kind == "json":
        return jsonb_text(json.loads(value)).encode().hex()
    moment = cast(dt.datetime, value).astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def line(table: Table, row: tuple[Any, ...]) -> str:
    """A row's canonical line: text as the hex of its UTF-8, NULL as `-`, integers in decimal, booleans t/f, JSON as
    the hex of its jsonb text, times in UTC to the millisecond (PocketBase's precision); `|` between."""
    return "|".join(_cell(kind, value) for (_, kind), value in zip(table.columns, row, strict=True))


_PB_TIME = re.compile(r"\A\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z\Z")


def _pb_cell(table: Table, name: str, kind: str, record: Mapping[str, Any]) -> str:
    """One cell of PocketBase's side of the proof, from the raw record field: not through `to_row`, which feeds the
    copy, so that a bug in that mapping shows as a difference instead of being on both sides."""
    value = record.get(name)
    where = f"{table.name} {record.get('id')!r}.{name}"
    if table.name == "commission_rules" and name == "order_cap_cents":
        # A number PocketBase stores as 0 when unset; `has_order_cap` says 0 is a cap (engine/services.py).
        if not isinstance(value, int | float) and value is not None:
            raise MappingError(f"{where}: {value!r} is not a number")
        return str(int(value or 0)) if record.get("has_order_cap") or value else "-"
    if kind in ("text", "ntext"):
        text = "" if value is None else value
        if not isinstance(text, str):
            raise MappingError(f"{where}: {value!r} is not text")
        return "-" if kind == "ntext" and not text else text.encode().hex()
    if kind in ("int", "nint"):
        if value is None:
            return "0"
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise MappingError(f"{where}: {value!r} is not a whole number")
        return str(int(value))
    if kind == "bool":
        return "t" if value is True else "f"
    if kind == "json":
        return jsonb_text(([] if name == "lines" else {}) if value is None else value).encode().hex()
    # PocketBase's autodate is already the canonical form: UTC, milliseconds, "Z".
    if not isinstance(value, str) or not _PB_TIME.match(value):
        raise MappingError(f"{where}: {value!r} is not PocketBase's date")
    return value


def pb_line(table: Table, record: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """A PocketBase record's key and canonical line (as `line` gives for a row), computed from the record alone."""
    return (tuple(str(record.get(k)) for k in table.key),
            "|".join(_pb_cell(table, name, kind, record) for name, kind in table.columns))


def row_key(table: Table, row: tuple[Any, ...]) -> tuple[str, ...]:
    values = dict(zip(table.names, row, strict=True))
    return tuple(str(values[k]) for k in table.key)


def _sql_cell(name: str, kind: str) -> str:
    column = f'"{name}"'
    if kind in ("text", "ntext"):
        return f"coalesce(encode(convert_to({column}, 'UTF8'), 'hex'), '-')"
    if kind in ("int", "nint"):
        return f"coalesce({column}::text, '-')"
    if kind == "bool":
        return f"CASE WHEN {column} THEN 't' ELSE 'f' END"
    if kind == "json":
        return f"encode(convert_to({column}::text, 'UTF8'), 'hex')"
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS"Z"')"""


def _sql_select(table: Table) -> str:
    cells = " || '|' || ".join(_sql_cell(name, kind) for name, kind in table.columns)
    keys = ", ".join(f'"{k}"::text AS k{i}' for i, k in enumerate(table.key))
    return f'SELECT {keys}, {cells} AS line FROM "{table.name}"'


def _sql_order(table: Table) -> str:
    """As Python orders str tuples: by code points, which the "C" collation gives for UTF-8 (by bytes)."""
    return ", ".join(f'k{i} COLLATE "C"' for i in range(len(table.key)))


def sql_lines(table: Table) -> str:
    """PostgreSQL's own lines for the table, each with its key, in the order of the checksum."""
    return f"SELECT * FROM ({_sql_select(table)}) rows ORDER BY {_sql_order(table)}"


def sql_checksum(table: Table) -> str:
    """The table's SHA-256, by PostgreSQL alone: its lines, ordered by key, joined by newlines."""
    return (f"SELECT encode(sha256(convert_to(coalesce(string_agg(line, E'\\n' ORDER BY {_sql_order(table)}), ''), "
            f"'UTF8')), 'hex') FROM ({_sql_select(table)}) rows")


def checksum(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# PocketBase, as its superuser


class PocketBaseAdmin:
    """PocketBase's REST API as its superuser: records in pages by id, and the engine collections' rules."""

    def __init__(self, url: str, email: str, password: str, *, verify: ssl.SSLContext | bool = True,
                 timeout_s: float = 30.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, verify=verify)
        self._email, self._password = email, password
        self._token: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _sign_in(self) -> None:
        response = await self._http.post(f"/api/collections/{SUPERUSERS}/auth-with-password",
                                         json={"identity": self._email, "password": self._password})
        if response.status_code != 200:
            raise RuntimeError(f"PocketBase refused the superuser {self._email} (HTTP {response.status_code})")
        self._token = str(response.json()["token"])

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._token is None:
            await self._sign_in()
        extra: dict[str, str] = kwargs.pop("headers", {})
        response = await self._http.request(method, path, headers={"Authorization": self._token or ""} | extra,
                                            **kwargs)
        if response.status_code == 401:  # the token expired during a long copy: once more
            await self._sign_in()
            response = await self._http.request(method, path, headers={"Authorization": self._token or ""} | extra,
                                                **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"PocketBase {method} {path}: HTTP {response.status_code} {response.text[:200]}")
        return response

    async def records(self, collection: str, fields: str | None = None) -> list[dict[str, Any]]:
        """Every record, in pages after the last id read (keyset: a record created meanwhile never shifts a page)."""
        items: list[dict[str, Any]] = []
        last = ""
        while True:
            params: dict[str, str | int] = {"perPage": PAGE, "sort": "id", "skipTotal": 1,
                                            "filter": f"id>'{last}'" if last else ""}
            if fields:
                params["fields"] = fields
            response = await self.call("GET", f"/api/collections/{collection}/records", params=params)
            batch = cast(list[dict[str, Any]], response.json()["items"])
            items += batch
            if len(batch) < PAGE:
                return items
            last = str(batch[-1]["id"])
            if "'" in last or "\\" in last:
                raise MappingError(f"{collection}: a record id {last!r} that is not PocketBase's")

    async def rules(self, collection: str) -> dict[str, Any]:
        return cast(dict[str, Any], (await self.call("GET", f"/api/collections/{collection}")).json())

    async def set_rules(self, collection: str, rules: Mapping[str, str | None], *, pause: bool = False) -> None:
        """The collection's rules. PocketBase's image sets an engine collection's rules back to the declared ones on
        any update (engine_schema.pb.js, against an older engine locking them), unless a pause is asked for with
        `X-Engine-Writes: paused`."""
        await self.call("PATCH", f"/api/collections/{collection}", json=dict(rules),
                        headers=PAUSE_HEADER if pause else {})


def engine_rules() -> dict[str, dict[str, str | None]]:
    """The create and update rules engine/schema.py gives each engine collection (what `rollback` restores)."""
    from engine.schema import document

    return {str(c["name"]): {"createRule": c["createRule"], "updateRule": c["updateRule"]}
            for c in document()["collections"] if c["name"] in BY_NAME}


PAUSED: dict[str, str | None] = {"createRule": None, "updateRule": None}
"""Superusers only: PocketBase refuses the engine's account every create and update, alone or in a batch, with 403
"Only superusers can perform this action." (pocketbase/pocketbase apis/record_crud.go, recordCreate and
recordUpdate: `if !hasSuperuserAuth && collection.CreateRule == nil`). Reads go on; deleteRule is null already."""


PAUSE_HEADER = {"X-Engine-Writes": "paused"}


async def pause(pb: PocketBaseAdmin) -> None:
    """Transitions first: the engine's probe (engine/writes_paused.py) asks that collection, so any write refused
    for the pause finds it paused."""
    for name in READ_ORDER:
        await pb.set_rules(name, PAUSED, pause=True)
    left = [name for name in WRITE_ORDER if name not in await paused(pb)]
    if left:
        raise RuntimeError(f"PocketBase kept the engine's writes open on {', '.join(left)}: its image lacks the "
                           "pause (engine_schema.pb.js, X-Engine-Writes); nothing was copied after it")


async def resume(pb: PocketBaseAdmin) -> None:
    for name, rules in engine_rules().items():
        await pb.set_rules(name, rules)


async def paused(pb: PocketBaseAdmin) -> list[str]:
    """The engine collections whose writes are paused."""
    found: list[str] = []
    for name in WRITE_ORDER:
        rules = await pb.rules(name)
        if rules.get("createRule") is None and rules.get("updateRule") is None:
            found.append(name)
    return found


async def read_all(pb: PocketBaseAdmin) -> dict[str, list[dict[str, Any]]]:
    return {name: await pb.records(name) for name in READ_ORDER}


# ---------------------------------------------------------------------------------------------
# PostgreSQL, as the migrator


@dataclass(frozen=True)
class Endpoints:
    pocketbase_url: str
    superuser_email: str
    superuser_password: str = field(repr=False)
    postgres_dsn: str = field(repr=False)
    postgres_ca_cert: str | None = field(default=None, repr=False)

    def postgres_ssl(self) -> ssl.SSLContext | None:
        """verify-ca (PG.md): the server's chain against POSTGRES_CA_CERT alone; the name is not checked (Cloud
        SQL's private IP certificates name the instance, not the address,
        https://cloud.google.com/sql/docs/postgres/configure-ssl-instance)."""
        if not self.postgres_ca_cert:
            return None
        context = ssl.create_default_context(cadata=self.postgres_ca_cert)
        context.check_hostname = False
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


async def connect_dsn(dsn: str, ssl_context: ssl.SSLContext | None = None) -> Any:
    """An asyncpg connection (typed Any: asyncpg's connection methods are not annotated)."""
    import asyncpg  # pyright: ignore[reportMissingTypeStubs]

    driver: Any = asyncpg
    connection: Any = await driver.connect(dsn, ssl=ssl_context)
    return connection


async def connect(endpoints: Endpoints) -> Any:
    return await connect_dsn(endpoints.postgres_dsn, endpoints.postgres_ssl())


_SQL_TYPES = {"text": "text", "ntext": "text", "int": "bigint", "nint": "bigint", "bool": "boolean", "json": "text",
              "ts": "timestamptz"}


@dataclass
class Written:
    inserted: int = 0
    updated: int = 0


async def _merge(connection: Any, table: Table, stage: str) -> Written:
    """Insert what is new and update what differs, from the staging table; how many of each."""
    columns = ", ".join(f'"{c}"' for c in table.names)
    select = ", ".join(f'"{c}"::jsonb' if k == "json" else f'"{c}"' for c, k in table.columns)
    others = [c for c in table.names if c not in table.key]
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in others)
    differ = (f"({', '.join(f'{table.name}.{chr(34)}{c}{chr(34)}' for c in others)}) IS DISTINCT FROM "
              f"({', '.join(f'EXCLUDED.{chr(34)}{c}{chr(34)}' for c in others)})")
    outcome = await connection.fetch(
        f'INSERT INTO "{table.name}" ({columns}) SELECT {select} FROM "{stage}" '
        f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {sets} WHERE {differ} "
        "RETURNING (xmax = 0) AS inserted")
    inserted = sum(1 for r in outcome if r["inserted"])
    return Written(inserted, len(outcome) - inserted)


async def write(connection: Any, records: Mapping[str, list[dict[str, Any]]]) -> dict[str, Written]:
    """Every table merged in one transaction: COPY into staging tables, then insert what is new and update what
    differs. Nothing is deleted: a row only PostgreSQL has is the proof's to name.

    Orders in three moves, for the foreign key and for the schema's rules (0002_engine_rights.sql,
    0003_engine_history.sql): an order is inserted as created with its commission pending, changes status only with
    its transition row in the same transaction, and its commission is its status's (domain.model COMMISSION_FOR).
    So new orders first, as created; then the transitions; then each order's status and commission walked along the
    transitions this transaction added (created -> paid -> refunded is two updates); then every other column."""
    rows = {name: [to_row(BY_NAME[name], record) for record in records[name]] for name in WRITE_ORDER}
    written: dict[str, Written] = {}
    async with connection.transaction():
        for name in WRITE_ORDER:
            table = BY_NAME[name]
            stage = f"stage_{name}"
            await connection.execute(f'CREATE TEMP TABLE "{stage}" ('
                                     + ", ".join(f'"{c}" {_SQL_TYPES[k]}' for c, k in table.columns)
                                     + ") ON COMMIT DROP")
            await connection.copy_records_to_table(stage, records=rows[name], columns=list(table.names))
            if name == "orders":
                columns = ", ".join(f'"{c}"' for c in table.names)
                born = ", ".join("'created'" if c == "status" else "'pending'" if c == "commission_status"
                                 else f'"{c}"::jsonb' if k == "json" else f'"{c}"' for c, k in table.columns)
                new = await connection.fetch(f'INSERT INTO orders ({columns}) SELECT {born} FROM stage_orders '
                                             "ON CONFLICT (id) DO NOTHING RETURNING id")
                written[name] = Written(len(new), 0)
                continue
            written[name] = await _merge(connection, table, stage)
        for _ in range(len(BY_NAME["order_transitions"].key) + 2):  # the longest walk: created -> paid -> refunded
            walked = await connection.fetch(
                f"UPDATE orders o SET status = t.to_status, commission_status = {_commission_sql()} "
                "FROM order_transitions t, stage_orders s "
                "WHERE s.id = o.id AND s.status <> o.status AND t.order_id = o.id AND t.from_status = o.status "
                "AND t.xmin = pg_current_xact_id()::xid RETURNING o.id")
            if not walked:
                break
        # An UPDATE, not _merge's INSERT ... ON CONFLICT: every staged order is in the table by now, and row-level
        # BEFORE INSERT triggers (orders_born_created) run for an INSERT ... ON CONFLICT DO UPDATE even when it ends
        # as an update (https://www.postgresql.org/docs/15/trigger-definition.html).
        others = [(c, k) for c, k in BY_NAME["orders"].columns if c != "id"]
        staged = ", ".join(f's."{c}"::jsonb' if k == "json" else f's."{c}"' for c, k in others)
        changed = await connection.fetch(
            f"UPDATE orders o SET ({', '.join(f'{chr(34)}{c}{chr(34)}' for c, _ in others)}) = ({staged}) "
            f"FROM stage_orders s WHERE s.id = o.id AND "
            f"({', '.join(f'o.{chr(34)}{c}{chr(34)}' for c, _ in others)}) IS DISTINCT FROM ({staged}) RETURNING o.id")
        written["orders"] = Written(written["orders"].inserted, len(changed))
    return written


def _commission_sql() -> str:
    """The commission of the status `t.to_status`, as domain.model COMMISSION_FOR says (the schema checks it)."""
    from engine.domain.model import COMMISSION_FOR

    cases = " ".join(f"WHEN '{status.value}' THEN '{commission.value}'"
                     for status, commission in COMMISSION_FOR.items())
    return f"CASE t.to_status {cases} END"


# ---------------------------------------------------------------------------------------------
# The proof


@dataclass
class Proof:
    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict[str, dict[str, tuple[int, int]]])
    """table -> tenant -> (PocketBase, PostgreSQL)"""
    checksums: dict[str, tuple[str, str]] = field(default_factory=dict[str, tuple[str, str]])
    totals: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = field(
        default_factory=dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]])
    """"tenant/affiliate/month/status" -> ((cents, orders) in PocketBase, in PostgreSQL)"""
    differences: list[str] = field(default_factory=list[str])
    lost: list[str] = field(default_factory=list[str])
    """Every row PocketBase holds and PostgreSQL does not ("<table> <key>"), none left out: after the switch, a write
    the move lost."""

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": {name: {tenant: {"pocketbase": a, "postgres": b} for tenant, (a, b) in sorted(per.items())}
                     for name, per in self.counts.items()},
            "checksums": {name: {"pocketbase": a, "postgres": b, "equal": a == b}
                          for name, (a, b) in self.checksums.items()},
            "commission_totals": {"groups": len(self.totals),
                                  "equal": all(a == b for a, b in self.totals.values())},
            "differences": self.differences,
            "only_in_pocketbase": self.lost,
        }


MAX_NAMED = 20
"""Differing rows named per table; the count says how many more."""


def _fields_differ(table: Table, pb_line: str, pg_line: str) -> str:
    left, right = pb_line.split("|"), pg_line.split("|")
    return ", ".join(name for name, a, b in zip(table.names, left, right, strict=True) if a != b)


async def prove(pb: PocketBaseAdmin, connection: Any) -> Proof:
    """Both sides, each computed on its own, compared."""
    proof = Proof()
    records = await read_all(pb)
    for table in TABLES:
        ours = dict(pb_line(table, record) for record in records[table.name])
        pb_sum = checksum([ours[k] for k in sorted(ours)])
        theirs = {tuple(str(r[f"k{i}"]) for i in range(len(table.key))): str(r["line"])
                  for r in await connection.fetch(sql_lines(table))}
        pg_sum = str(await connection.fetchval(sql_checksum(table)))
        proof.checksums[table.name] = (pb_sum, pg_sum)
        per_tenant: dict[str, list[int]] = {}
        for record in records[table.name]:
            per_tenant.setdefault(str(record.get("tenant")), [0, 0])[0] += 1
        for r in await connection.fetch(f'SELECT tenant, count(*) AS n FROM "{table.name}" GROUP BY tenant'):
            per_tenant.setdefault(str(r["tenant"]), [0, 0])[1] = int(r["n"])
        proof.counts[table.name] = {tenant: (a, b) for tenant, (a, b) in per_tenant.items()}
        for tenant, (a, b) in sorted(per_tenant.items()):
            if a != b:
                proof.differences.append(f"{table.name}: tenant {tenant!r} has {a} rows in PocketBase, {b} in "
                                         "PostgreSQL")
        named: list[str] = []
        for key in sorted(set(ours) | set(theirs)):
            where = f"{table.name} {'/'.join(key)}"
            if key not in theirs:
                named.append(f"{where}: only in PocketBase")
                proof.lost.append(where)
            elif key not in ours:
                named.append(f"{where}: only in PostgreSQL")
            elif ours[key] != theirs[key]:
                named.append(f"{where}: differs in {_fields_differ(table, ours[key], theirs[key])}")
        proof.differences += named[:MAX_NAMED]
        if len(named) > MAX_NAMED:
            proof.differences.append(f"{table.name}: and {len(named) - MAX_NAMED} more rows differ")
        if pb_sum != pg_sum and not named:
            proof.differences.append(f"{table.name}: checksums differ ({pb_sum[:12]} / {pg_sum[:12]})")
    pb_totals = {f"{g['tenant']}/{g['affiliate_id']}/{g['created_month']}/{g['commission_status']}":
                 (int(g["cents_high"]) * 1_000_000_000 + int(g["cents_low"]), int(g["orders"]))
                 for g in await pb.records("commission_totals")}
    pg_totals = {f"{r['tenant']}/{r['affiliate_id']}/{r['created_month']}/{r['commission_status']}":
                 (int(r["cents"]), int(r["orders"])) for r in await connection.fetch(
                     "SELECT tenant, affiliate_id, created_month, commission_status, sum(commission_cents) AS cents, "
                     "count(*) AS orders FROM orders WHERE affiliate_id IS NOT NULL "
                     "GROUP BY tenant, affiliate_id, created_month, commission_status")}
    for group in sorted(set(pb_totals) | set(pg_totals)):
        a, b = pb_totals.get(group), pg_totals.get(group)
        proof.totals[group] = (a, b)
        if a != b:
            proof.differences.append(f"commission totals {group}: PocketBase {_total(a)}, PostgreSQL {_total(b)}")
    return proof


def _total(value: tuple[int, int] | None) -> str:
    return "none" if value is None else f"{value[0]} cents over {value[1]} orders"


# ---------------------------------------------------------------------------------------------
# The steps


@dataclass
class Report:
    step: str
    seconds: dict[str, float] = field(default_factory=dict[str, float])
    written: dict[str, Written] = field(default_factory=dict[str, Written])
    proof: Proof | None = None
    paused_at: float | None = None
    """time.monotonic() when PocketBase began refusing the engine's writes."""
    ok: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "ok": self.ok, "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "written": {k: {"inserted": w.inserted, "updated": w.updated} for k, w in self.written.items()},
                **({"proof": self.proof.to_json()} if self.proof else {})}


def _say(out: Any, message: str) -> None:
    print(f"migrate-db: {message}", file=out, flush=True)


async def _copy(pb: PocketBaseAdmin, connection: Any, report: Report, label: str, out: Any) -> None:
    started = time.monotonic()
    records = await read_all(pb)
    read_s = time.monotonic() - started
    written = await write(connection, records)
    report.seconds[label] = time.monotonic() - started
    for name, w in written.items():
        total = report.written.setdefault(name, Written())
        total.inserted += w.inserted
        total.updated += w.updated
    _say(out, f"{label}: {sum(len(v) for v in records.values())} records read in {read_s:.1f} s; "
         + ", ".join(f"{name} +{w.inserted} ~{w.updated}" for name, w in written.items())
         + f" ({report.seconds[label]:.1f} s)")


async def run_step(step: str, endpoints: Endpoints, *, drain_s: float = DRAIN_S, out: Any = None,
                   on_paused: Callable[[float], None] | None = None, after_switch: bool = False) -> Report:
    """One step of the migration (module docstring). `on_paused`: called once PocketBase refuses the engine's
    writes, with the time.monotonic() the pause began (the drill measures the pause from it). `after_switch`
    (verify only): the engine serves from PostgreSQL, so rows only there, or changed there, are its writes since;
    what fails is a row only in PocketBase, a write the move lost."""
    out = out or sys.stderr
    report = Report(step)
    pb = PocketBaseAdmin(endpoints.pocketbase_url, endpoints.superuser_email, endpoints.superuser_password)
    connection: Any = None
    try:
        if step == "rollback":
            started = time.monotonic()
            await resume(pb)
            report.seconds["resume"] = time.monotonic() - started
            left = await paused(pb)
            report.ok = not left
            _say(out, "rollback: PocketBase takes the engine's writes again" if report.ok
                 else f"rollback: still paused: {', '.join(left)}")
            return report
        connection = await connect(endpoints)
        if step == "copy":
            await _copy(pb, connection, report, "copy", out)
        elif step == "cutover":
            started = time.monotonic()
            await pause(pb)
            report.paused_at = started  # the first collection refuses writes from its PATCH on
            report.seconds["pause"] = time.monotonic() - started
            if on_paused is not None:
                on_paused(started)
            _say(out, f"writes paused: PocketBase refuses the engine's creates and updates; draining {drain_s:g} s")
            await asyncio.sleep(drain_s)
            await _copy(pb, connection, report, "final_sync", out)
        if step in ("cutover", "verify"):
            started = time.monotonic()
            report.proof = await prove(pb, connection)
            if not report.proof.ok and step == "cutover":
                # A write PocketBase stored after the final read began (admitted before the pause, never
                # acknowledged): PocketBase is paused, so one more sync converges.
                _say(out, f"{len(report.proof.differences)} differences after the final sync; syncing once more")
                await _copy(pb, connection, report, "final_sync_again", out)
                report.proof = await prove(pb, connection)
            report.seconds["verify"] = time.monotonic() - started
            report.ok = report.proof.ok if not after_switch else not report.proof.lost
            if step == "cutover":
                # A PocketBase restart applies the declared rules again (engine_schema.pb.js onBootstrap): the
                # pause would be gone and writes could have landed after the proof.
                left = [name for name in WRITE_ORDER if name not in await paused(pb)]
                if left:
                    report.ok = False
                    report.proof.differences.append(f"the pause no longer holds on {', '.join(left)} (PocketBase "
                                                    "restarted?): run the cutover again")
            if after_switch:
                for where in report.proof.lost:
                    _say(out, f"LOST {where}: only in PocketBase")
                _say(out, f"after the switch: {len(report.proof.differences)} differences, written on PostgreSQL "
                     "since (expected); none lost" if report.ok else
                     f"NOT moved: {len(report.proof.lost)} rows only in PocketBase (runbook: after the switch)")
                return report
            for difference in report.proof.differences:
                _say(out, f"DIFFERS {difference}")
            for where in report.proof.lost:  # each one, also past the MAX_NAMED of its table
                if f"{where}: only in PocketBase" not in report.proof.differences:
                    _say(out, f"DIFFERS {where}: only in PocketBase")
            _say(out, "proved: every table, tenant and commission total equal" if report.ok
                 else "NOT proved: switch nothing (runbook: rollback)")
        return report
    finally:
        if connection is not None:
            await connection.close()
        await pb.close()


# ---------------------------------------------------------------------------------------------
# The command


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:  # pyright: ignore[reportPrivateUsage]
    parser = commands.add_parser("migrate-db", help="copy PocketBase's data into PostgreSQL and prove the copy; the "
                                                    "cut-over and its rollback (docs/runbooks/migrate-db.md)")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--step", choices=("copy", "cutover", "verify", "rollback"), required=True,
                        help="copy: bulk copy while writes go on; cutover: pause writes, final sync, prove; verify: "
                             "prove only; rollback: lift the pause (before the engine serves from PostgreSQL)")
    parser.add_argument("--drain-seconds", type=float, default=DRAIN_S,
                        help=f"after the pause, before the final read (default {DRAIN_S:g}: the engine's PocketBase "
                             "timeout and a second; raise it with POCKETBASE_TIMEOUT_SECONDS)")
    parser.add_argument("--after-switch", action="store_true",
                        help="verify once the engine serves from PostgreSQL: rows written there since are expected; "
                             "exit 1 on any row only in PocketBase (a lost write), each named")


CREDENTIALS = {
    "POCKETBASE_URL": "PocketBase's address from here: prod's VM has none outside, so open a tunnel first "
                      "(gcloud compute start-iap-tunnel <vm> 8090 --local-host-port=localhost:8090 ...) and give "
                      "http://localhost:8090",
    "PB_SUPERUSER_PASSWORD": "pulumi stack export --stack {stack} --show-secrets | jq -r '.deployment.resources[] | "
                             "select(.urn | endswith(\"::database-superuser-password\")) | "
                             ".outputs.result.plaintext | fromjson' "
                             "(a secret's plaintext is its JSON, infra/ops/tenant_keys.py)",
    "POSTGRES_HOST": "the Cloud SQL instance's private address (pulumi stack output, or the console)",
    "POSTGRES_DB": "the engine's database name",
    "POSTGRES_MIGRATOR_USER": "the schema owner's account, as `python -m engine migrate` signs in",
    "POSTGRES_MIGRATOR_PASSWORD": "its password (Secret Manager, as the migration step reads it)",
}


def endpoints_from_env(stack: str, env: Mapping[str, str], zone: str) -> tuple[Endpoints | None, list[str]]:
    missing = [f"{name} is not set: {source.format(stack=stack)}" for name, source in CREDENTIALS.items()
               if not env.get(name)]
    if missing:
        return None, missing
    from urllib.parse import quote

    dsn = (f"postgresql://{quote(env['POSTGRES_MIGRATOR_USER'], safe='')}:"
           f"{quote(env['POSTGRES_MIGRATOR_PASSWORD'], safe='')}@{env['POSTGRES_HOST']}:"
           f"{env.get('POSTGRES_PORT') or '5432'}/{quote(env['POSTGRES_DB'], safe='')}")
    return Endpoints(env["POCKETBASE_URL"], env.get("PB_SUPERUSER_EMAIL") or f"platform-admin@{zone}",
                     env["PB_SUPERUSER_PASSWORD"], dsn, env.get("POSTGRES_CA_CERT") or None), []


def main(args: argparse.Namespace) -> int:
    from infra.ops import load_stack

    loaded = load_stack(args.stack)
    if loaded is None:
        return EXIT_USAGE
    endpoints, missing = endpoints_from_env(args.stack, os.environ, loaded[1].zone.name)
    if endpoints is None:
        print("error: " + "\nerror: ".join(missing), file=sys.stderr)
        return EXIT_USAGE
    if args.after_switch and args.step != "verify":
        print(f"error: --after-switch is for --step verify, not {args.step}", file=sys.stderr)
        return EXIT_USAGE
    if args.drain_seconds < 0:
        print(f"error: --drain-seconds {args.drain_seconds:g}: expected 0 or more seconds", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = asyncio.run(run_step(args.step, endpoints, drain_s=args.drain_seconds,
                                      after_switch=bool(args.after_switch)))
    except (MappingError, RuntimeError, OSError, httpx.HTTPError) as exc:
        print(f"error: migrate-db {args.step}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(report.to_json(), indent=2))
    if args.step == "cutover" and report.ok:
        print(f"migrate-db: next, switch the engine to PostgreSQL (writes stay paused until its revision serves; "
              f"docs/runbooks/migrate-db.md steps 3-4):\n"
              f"  pulumi config set --path platform:database.engine postgres --stack {args.stack}\n"
              f"  pulumi up --stack {args.stack}\n"
              f"  gcloud run jobs execute {MIGRATE_JOB} --wait ...\n"
              f"  python -m infra rollout --stack {args.stack}\n"
              f"  python -m infra migrate-db --stack {args.stack} --step verify --after-switch", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED
