"""Task reads as plain SQL: the hottest path of the REST and GraphQL APIs.

Building a Tortoise query (Q objects, pypika, parameter lists) and hydrating model instances
cost several times the CPU that PostgreSQL spends answering it: py-spy put 58 % of a
single-task read and most of a 25-task page there. These reads go straight from one statement
(plain string formatting over a fixed column list) to `TaskView`s. Writes keep going through
the ORM and `server.engine.changes`; nothing here changes a row.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from server.db.sql import Query, Row, as_datetime, as_uuid, connection, json_value
from server.domain.states import TaskState
from server.domain.views import TaskFilter, TaskView

# Exactly the TaskView fields, in its order, in the table's column names (read by position).
COLUMNS = (
    "id",
    "namespace",
    "name",
    "version",
    "status",
    "context",
    "created_at",
    "updated_at",
    "initiator",
    "source_system",
    "reason",
    "tags",
    "bypass_steps",
    "idempotency_key",
    "identity_hash",
    "requested_at",
    "completed_at",
    "run_at",
    "schedule_id",
    "scheduled_for",
    "paused_at",
    "handler_paused_at",
    "priority",
    "forked_from",
    "parent_task_id",
    "parent_step",
)
COLUMN_LIST = ", ".join(f"t.{c}" for c in COLUMNS)
_SELECT = f"SELECT {COLUMN_LIST} FROM tasker_tasks t"
NEWEST_FIRST = "ORDER BY t.created_at DESC, t.id DESC"
DIRECT_OFFSET = 100
"""Pages starting this close to the newest task read their rows in the same index walk."""


Key = tuple[datetime, UUID]
"""A task's place in the newest-first order: (created_at, id)."""


def _json(value: Any) -> Any:
    # asyncpg hands jsonb over as text, SQLite stores it as text; '[]' is the common case.
    if value is None:
        return None
    return [] if value == "[]" else json_value(value)


def _decoded(value: Any) -> Any:
    return value


_STATES = {state.value: state for state in TaskState}  # an Enum call costs 2 µs a row


def _moment(value: Any) -> datetime:
    moment = as_datetime(value)
    assert moment is not None  # NOT NULL columns
    return moment


def task_view_of(record: Row, *, json_decoded: bool = False) -> TaskView:
    """The values of `COLUMNS`, in that order, as a view: a row as the driver returns it, or
    an ORM instance's values (`json_decoded`: its JSON columns are Python values already).

    By position: looking 17 columns up by name in an asyncpg record and passing them by
    keyword cost 5.2 µs a row against 3.2 (a tenth of a 25-task page's CPU)."""
    load = _decoded if json_decoded else _json
    return TaskView(
        as_uuid(record[0]),
        record[1],
        record[2],
        record[3],
        _STATES[record[4]],
        load(record[5]),
        _moment(record[6]),
        _moment(record[7]),
        record[8],
        record[9],
        record[10],
        tuple(load(record[11]) or ()),
        tuple(load(record[12]) or ()),
        record[13],
        record[14],
        as_datetime(record[15]),
        as_datetime(record[16]),
        as_datetime(record[17]),
        None if record[18] is None else as_uuid(record[18]),
        as_datetime(record[19]),
        as_datetime(record[20]),
        as_datetime(record[21]),
        record[22],
        None if record[23] is None else as_uuid(record[23]),
        None if record[24] is None else as_uuid(record[24]),
        record[25],
    )


def uuid_param(q: Query, value: UUID) -> str:
    # UUIDs are a native type on PostgreSQL and hyphenated text on SQLite (as Tortoise writes).
    return q(value if q.postgres else str(value))


def _where(q: Query, flt: TaskFilter) -> list[str]:
    terms = []
    for column, value in (
        ("namespace", flt.namespace),
        ("name", flt.name),
        ("version", flt.version),
        ("status", flt.status.value if flt.status else None),
    ):
        if value:
            terms.append(f"t.{column} = {q(value)}")
    return terms


def _clause(terms: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(terms)}" if terms else ""


async def _views(q: Query, sql: str) -> list[TaskView]:
    return [task_view_of(r) for r in await q.records(sql)]


async def task_by_id(task_id: UUID) -> TaskView | None:
    """The task, or None."""
    q = Query(connection())
    found = await q.point_records(f"{_SELECT} WHERE t.id = {uuid_param(q, task_id)}")
    return task_view_of(found[0]) if found else None


async def tasks_by_ids(task_ids: Sequence[UUID]) -> list[TaskView]:
    """These tasks (missing ids are absent), in no particular order."""
    if not task_ids:
        return []
    q = Query(connection())
    if q.postgres:
        return await _views(q, f"{_SELECT} WHERE t.id = ANY({q(list(task_ids))}::uuid[])")
    marks = ", ".join(uuid_param(q, i) for i in task_ids)
    return await _views(q, f"{_SELECT} WHERE t.id IN ({marks})")


async def count(flt: TaskFilter) -> int:
    """How many tasks match the filter."""
    q = Query(connection())
    row = await q.one(f"SELECT COUNT(*) AS n FROM tasker_tasks t{_clause(_where(q, flt))}")
    return int(row["n"])


async def page(
    flt: TaskFilter,
    *,
    offset: int,
    limit: int,
    count: bool = False,
    start: Key | None = None,
) -> tuple[list[TaskView], int | None]:
    """`limit` tasks matching the filter after skipping `offset` (counted from the task
    `start`, inclusive, when given; see `anchors`), newest first, and with `count` how many
    match in all (in the same round trip; None when the page is empty).

    Beyond `DIRECT_OFFSET` the offset is walked over ids only (an index-only scan of
    (created_at, id) when there is no filter) and only the page's rows are read.
    """
    q = Query(connection())
    terms = _where(q, flt)
    where = _clause(terms)
    if start is not None:
        terms = [*terms, _beside(q, start, "<=")]
    order = f"{NEWEST_FIRST} LIMIT {q(limit)} OFFSET {q(offset)}"
    total = _total_column(where) if count else ""
    if offset <= DIRECT_OFFSET:
        # Near the start of the order the rows are read straight from the index walk: finding
        # 25 ids and then each row by primary key took PostgreSQL 0.58 ms against 0.09 for the
        # first page, the one clients poll.
        sql = f"SELECT {COLUMN_LIST}{total} FROM tasker_tasks t{_clause(terms)} {order}"
    else:
        # Deeper, the offset is walked over ids only (an index-only scan) and the page's ids
        # are matched as an array (PostgreSQL) or an IN list (SQLite): the rows are then read
        # by primary key whatever the planner believes about the table (a join let it hash
        # the whole table when its statistics were stale).
        ids = f"SELECT t.id FROM tasker_tasks t{_clause(terms)} {order}"
        chosen = f"= ANY(ARRAY({ids}))" if q.postgres else f"IN ({ids})"
        sql = f"SELECT {COLUMN_LIST}{total} FROM tasker_tasks t WHERE t.id {chosen} {NEWEST_FIRST}"
    return await _views_and_total(q, sql, count)


def _total_column(where: str) -> str:
    """How many tasks match `where`, as a column of the page's rows: the count in the page's
    own round trip."""
    return f", (SELECT COUNT(*) FROM tasker_tasks t{where}) AS total_count"


async def _views_and_total(q: Query, sql: str, count: bool) -> tuple[list[TaskView], int | None]:
    """The rows of `sql` as views, and with `count` its `_total_column` (None when there is no
    row to carry it)."""
    rows = await q.records(sql)
    counted = int(rows[0]["total_count"]) if count and rows else None
    return [task_view_of(r) for r in rows], counted


def keyset_sql(
    q: Query, flt: TaskFilter, cursor: Key | None, limit: int, *, count: bool = False
) -> str:
    """`limit` tasks matching the filter, newest first, older than a keyset cursor; with
    `count`, how many match the filter in all as a column (`_total_column`)."""
    filtered = _where(q, flt)
    terms = [*filtered, _beside(q, cursor, "<")] if cursor is not None else filtered
    total = _total_column(_clause(filtered)) if count else ""
    return (
        f"SELECT {COLUMN_LIST}{total} FROM tasker_tasks t{_clause(terms)} "
        f"{NEWEST_FIRST} LIMIT {q(limit)}"
    )


def _beside(q: Query, key: Key, op: str) -> str:
    """`(t.created_at, t.id) op key` for a key given as values (see `_compare`)."""
    return _compare(q(key[0]), uuid_param(q, key[1]), op)


def _compare(created: str, ident: str, op: str) -> str:
    """`(t.created_at, t.id) op (created, ident)`, `op` one of <, <=, >.

    Written as `created_at <= c AND (created_at < c OR id < i)` rather than the plain OR, so
    that the first term bounds the index scan: with the OR alone PostgreSQL walked the index
    from the newest task and filtered every row up to the key, and a page deep in a million
    tasks took as long as reading all the ones before it."""
    strict = op[0]
    return (
        f"t.created_at {strict}= {created} AND "
        f"(t.created_at {strict} {created} OR t.id {op} {ident})"
    )


async def count_newer(flt: TaskFilter, key: Key) -> int:
    """How many tasks matching the filter come before `key` in the newest-first order."""
    q = Query(connection())
    terms = [*_where(q, flt), _beside(q, key, ">")]
    row = await q.one(f"SELECT COUNT(*) AS n FROM tasker_tasks t{_clause(terms)}")
    return int(row["n"])


async def anchors(flt: TaskFilter, every: int) -> list[Key]:
    """The keys at positions 0, `every`, 2 * `every`, ... of the filter's newest-first order.

    PostgreSQL hops from each anchor to the next with an `OFFSET every - 1 LIMIT 1` over the
    index (a million tasks in ~0.1 s; numbering every row with a window function took 0.7 s).
    SQLite, which has no LATERAL, numbers the rows.
    """
    q = Query(connection())
    terms = _where(q, flt)
    if q.postgres:
        hop = [*terms, _compare("a.created_at", "a.id", "<")]
        newest = f"SELECT t.created_at, t.id, 0 FROM tasker_tasks t{_clause(terms)}"
        sql = (
            f"WITH RECURSIVE a(created_at, id, n) AS (({newest} {NEWEST_FIRST} LIMIT 1) "
            "UNION ALL SELECT nx.created_at, nx.id, a.n + 1 FROM a, LATERAL ("
            f"SELECT t.created_at, t.id FROM tasker_tasks t{_clause(hop)} {NEWEST_FIRST} "
            f"OFFSET {q(every - 1)} LIMIT 1) AS nx) SELECT created_at, id FROM a ORDER BY n"
        )
    else:
        sql = (
            "SELECT created_at, id FROM (SELECT t.created_at, t.id, "
            f"ROW_NUMBER() OVER ({NEWEST_FIRST}) - 1 AS pos FROM tasker_tasks t{_clause(terms)}) "
            f"WHERE pos % {q(every)} = 0 ORDER BY pos"
        )
    rows = await q.records(sql)
    return [(_moment(r["created_at"]), as_uuid(r["id"])) for r in rows]


async def older_than(
    flt: TaskFilter, cursor: Key | None, *, limit: int, count: bool = False
) -> tuple[list[TaskView], int | None]:
    """See `keyset_sql`; with `count`, the total as `page` gives it."""
    q = Query(connection())
    return await _views_and_total(q, keyset_sql(q, flt, cursor, limit, count=count), count)
