"""Raw-SQL helpers shared by the analytics and health queries: one query text, two dialects.

Tortoise's raw queries differ by backend in three ways that matter here (see STACK.md §3):
placeholders (`$1` on asyncpg, `?` on SQLite), datetime arithmetic, and percentiles (SQLite
has no `percentile_disc`). `Query` hides the first two; `ranked` + `percentile` the third. Both
percentile forms are the nearest-rank definition, so the two dialects return the same values.
"""

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

import orjson
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from server.db import loop_reads
from server.db.fair_pool import FairAsyncpgClient
from server.domain.analytics_rollup import BUCKETS_PER_LN, Range


def state(value: StrEnum) -> str:
    """A task or step state as an SQL literal, spelled by its enum. A literal, not a parameter:
    the partial indexes on `status` are only chosen for a query whose text matches them."""
    return f"'{value.value}'"


def states(*values: StrEnum) -> str:
    """Several states as an SQL list: `('pending', 'in_progress')`."""
    return "(" + ", ".join(state(v) for v in values) + ")"


def connection() -> BaseDBAsyncClient:
    """The default connection of this process."""
    return Tortoise.get_connection("default")


def dialect(conn: BaseDBAsyncClient) -> str:
    """'postgres' or 'sqlite'."""
    return str(conn.capabilities.dialect)


class Row(Protocol):
    """A driver's row (asyncpg's `Record`, `sqlite3.Row`): by column name or by position."""

    def __getitem__(self, key: Any, /) -> Any: ...


class Query:
    """Collects parameters and renders the placeholders of one dialect."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.postgres = dialect(conn) == "postgres"
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        """A placeholder bound to `value`."""
        if isinstance(value, datetime) and not self.postgres:
            # Tortoise stores SQLite datetimes as `str(aware UTC datetime)`; comparing text
            # with text in the same format orders correctly and keeps the indexes usable.
            value = str(value.astimezone(UTC))
        self.values.append(value)
        # Numbered on both (`?N` on SQLite), so one placeholder may appear twice in a query.
        return f"${len(self.values)}" if self.postgres else f"?{len(self.values)}"

    def ms(self, later: str, earlier: str) -> str:
        """SQL for `later - earlier` in milliseconds (a float)."""
        if self.postgres:
            # date_part is double precision; EXTRACT is numeric (PG 14+), several times slower
            # to sum and sort over a million rows.
            return f"(date_part('epoch', {later} - {earlier}) * 1000)"
        return f"((julianday({later}) - julianday({earlier})) * 86400000.0)"

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        """Run `sql` with the collected parameters."""
        return list(await self.conn.execute_query_dict(sql, self.values))

    async def records(self, sql: str) -> Sequence["Row"]:
        """Run `sql`; rows as the driver returns them: no copy into dicts, which cost a
        third of reading a page of tasks."""
        if isinstance(self.conn, FairAsyncpgClient):  # the pool itself, not a transaction
            return await self.conn.fetch_records(sql, self.values)
        return (await self.conn.execute_query(sql, self.values))[1]

    async def point_records(self, sql: str) -> Sequence["Row"]:
        """`records` for a read of a few rows by key (a task by its id): on SQLite, read on
        the event loop's own thread when it can be (`server.db.loop_reads`)."""
        if not self.postgres:
            found = loop_reads.read(self.conn, sql, self.values)
            if found is not None:
                return found
        return await self.records(sql)

    async def one(self, sql: str) -> dict[str, Any]:
        """The first row of `sql`, or an empty dict."""
        found = await self.rows(sql)
        return found[0] if found else {}


def ranked(q: Query, source: str, value: str, keys: Sequence[str] = ()) -> str:
    """`source` prepared for `percentile` over `value`, per group of `keys`.

    PostgreSQL needs nothing (`percentile_disc` is an aggregate). SQLite gets each row's rank
    `rn` within its group and the group size `n` from window functions.
    """
    if q.postgres:
        return source
    partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
    return (
        f"SELECT src.*, ROW_NUMBER() OVER ({partition}ORDER BY {value}) AS rn, "
        f"COUNT(*) OVER ({partition.strip()}) AS n FROM ({source}) AS src"
    )


def percentile(q: Query, value: str, p: float, where: str | None = None) -> str:
    """Aggregate: the nearest-rank p-quantile of `value` over rows from `ranked` (only the rows
    matching `where`, which must then be one of `ranked`'s groups).

    PostgreSQL's `percentile_disc(p)` is the value at rank ceil(p * n); the SQLite form takes
    the smallest value whose row number reaches p * n, which is the same rank.
    """
    if q.postgres:
        only = f" FILTER (WHERE {where})" if where else ""
        return f"percentile_disc({float(p)!r}) WITHIN GROUP (ORDER BY {value}){only}"
    only = f"{where} AND " if where else ""
    return f"MIN(CASE WHEN {only}rn >= {float(p)!r} * n THEN {value} END)"


def percentile_columns(
    q: Query, value: str, fractions: Sequence[float], where: str | None = None
) -> str:
    """Select-list columns for several percentiles of one value (read them with
    `percentile_values`). PostgreSQL sorts once for all of them (an array argument)."""
    if not q.postgres:
        return ", ".join(
            f"{percentile(q, value, p, where)} AS p{i}" for i, p in enumerate(fractions)
        )
    array = ", ".join(repr(float(p)) for p in fractions)
    only = f" FILTER (WHERE {where})" if where else ""
    return f"percentile_disc(ARRAY[{array}]) WITHIN GROUP (ORDER BY {value}){only} AS ps"


def percentile_values(row: dict[str, Any], count: int) -> list[Any]:
    """The values of `percentile_columns` in a result row (None where there were no rows)."""
    if "ps" in row:
        return list(row["ps"] or [None] * count)
    return [row.get(f"p{i}") for i in range(count)]


@contextlib.asynccontextmanager
async def reading() -> AsyncIterator[BaseDBAsyncClient]:
    """A connection for a report's queries.

    On PostgreSQL, one read-only transaction, so all of a report's figures come from one
    snapshot, with settings for big aggregates: no JIT (compiling costs more than it saves on
    these one-off queries) and room to hash and sort in memory. SQLite gets the shared
    connection as it is: a transaction there would hold up the writers for the duration.
    """
    conn = connection()
    if dialect(conn) != "postgres":
        yield conn
        return
    async with in_transaction("default") as tx:
        await tx.execute_script(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
            "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"
        )
        yield tx


def as_datetime(value: Any) -> datetime | None:
    """A column value as an aware datetime (SQLite hands back text)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_uuid(value: Any) -> UUID:
    """A uuid column's value as a UUID (asyncpg hands one over, SQLite hands back text)."""
    return value if isinstance(value, UUID) else UUID(str(value))


def json_value(text: str | bytes) -> Any:
    """A stored JSON text, decoded: orjson takes a sixth of json's time on the small
    documents of the hot reads (a task's context, a step's results). Python's json also
    writes NaN and Infinity, which SQLite keeps as text; those fall back to json."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def slot_of(q: Query, column: str, span: int) -> str:
    """SQL for the slot number (`span` seconds since the Unix epoch, UTC) of a timestamp."""
    if q.postgres:
        return f"CAST(floor(date_part('epoch', {column}) / {int(span)}) AS BIGINT)"
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / {int(span)})"


def bucket_of(value: str) -> str:
    """SQL for the histogram bucket of a duration in ms (`analytics_rollup.bucket`): the same
    text on both dialects, on whole milliseconds so that both feed `ln` the same number."""
    whole = f"round({value})"
    return (
        f"(CASE WHEN {whole} < 1 THEN -1 "
        f"ELSE CAST(floor(ln({whole}) * {BUCKETS_PER_LN!r}) AS INTEGER) END)"
    )


def object_agg(q: Query, key: str, value: str, where: str | None = None) -> str:
    """Aggregate: a JSON object text `{key: value}` over the group ('{}' for none)."""
    only = f" FILTER (WHERE {where})" if where else ""
    if q.postgres:
        return f"COALESCE(CAST(json_object_agg({key}, {value}){only} AS TEXT), '{{}}')"
    return f"COALESCE(json_group_object({key}, {value}){only}, '{{}}')"


def json_entries(q: Query, column: str) -> str:
    """A table function: the `key` and `value` (as text) of each entry of a JSON object text."""
    if q.postgres:
        return f"json_each_text(CAST({column} AS json))"
    return f"json_each({column})"


def json_pair(q: Query, first: str, second: str) -> str:
    """SQL for a two-element JSON array."""
    function = "json_build_array" if q.postgres else "json_array"
    return f"{function}({first}, {second})"


def in_ranges(q: Query, column: str, ranges: Sequence[Range]) -> str:
    """A predicate: `column` in any of these half-open time ranges (FALSE for none)."""
    parts = []
    for start, end in ranges:
        if end is not None and end <= start:
            continue
        upper = "" if end is None else f" AND {column} < {q(end)}"
        parts.append(f"({column} >= {q(start)}{upper})")
    return f"({' OR '.join(parts)})" if parts else "(1 = 0)"
