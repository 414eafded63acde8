"""Writing and reading the analytics rollups (tables of migration 7): per hour, and per
five minutes at the edges of report windows (`server.domain.analytics_rollup`).

When a slot is rolled up, and why its figures then stand:
- Slots are rolled once, `SETTLE` after they end: lazily by the first report that needs them
  (before it opens its read snapshot) and by the sweeper for the last day. Never on the
  per-step hot path: the engine writes nothing extra.
- Every figure is keyed by a time that no later change moves into or out of a closed slot:
  tasks by `created_at` (count only) and `completed_at`, step runs by the step's
  `completed_at`. Tasks and steps that finished `complete` never change again. What can
  still change is read live instead of rolled:
  * the statuses of tasks created in the window (`task_statistics` counts the ones that are
    not complete, from the status index, and subtracts them from the rolled creations);
  * step runs that failed with a retry scheduled (`error` with `next_attempt_at`): their
    next attempt will move them, so rollups skip them and reports read them from the steps
    table (the status index) over the whole window.
- Hence the documented differences from a fully live computation, all about history being
  rewritten after the fact: a task or step in `error` (retries exhausted) that is retried or
  resolved by hand after its slot was rolled up still counts as failed in that slot (and as
  complete in the slot it completes); and tasks deleted by retention still count in the slots
  they were created and finished in.
- Hourly rollups older than the longest period are deleted; five-minute ones after a day
  (`FINE_KEEP`), since only the edges of the windows reports ask for read them, and those of
  longer periods are rolled again on demand.
"""

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient as Conn
from tortoise.transactions import in_transaction

from server.db.sql import (
    Query,
    bucket_of,
    connection,
    json_pair,
    object_agg,
    slot_of,
    state,
    states,
)
from server.domain.analytics import MAX_PERIOD_HOURS, BottleneckScope
from server.domain.analytics_rollup import HOUR, Block, Split, slot_number, slot_start, split
from server.domain.states import StepState, TaskState
from server.infra.ports import Clock

FINISHED = states(StepState.COMPLETE, StepState.ERROR)
"""Finished steps, and finished tasks (both enums spell these two states alike)."""
KEYS = ("ns", "task_name", "version", "step_name")
SETTLED = (
    f"(status = {state(StepState.COMPLETE)} "
    f"OR (status = {state(StepState.ERROR)} AND next_attempt_at IS NULL))"
)
CLAIM_CHUNK = 500
FINE_KEEP = timedelta(hours=26)
"""Five-minute slots older than this are deleted (the sweeper keeps the last day's edges)."""
JUST_ROLLED = timedelta(minutes=10)
"""Slots rolled this recently are kept: the report that rolled them has yet to read them."""
FAILURES = f"(CASE WHEN status = {state(StepState.ERROR)} THEN attempts ELSE attempts - 1 END)"
"""Failed attempts of a step run: all of them if it ended in error, else all but the last."""


def step_runs(q: Query, where: str, end: datetime | None = None, *, many: bool = True) -> str:
    """Steps whose last attempt ended `where` (before `end`, when given), with their task's
    identity. `many`: bound the tasks to join, for step sets too large to join row by row."""
    filtered = f"{where} AND s.status IN {FINISHED} AND s.started_at IS NOT NULL"
    sql = (
        "SELECT t.namespace AS ns, t.name AS task_name, t.version AS version, "
        "s.name AS step_name, s.status, s.attempts, s.retry_limit, s.retryable, "
        "s.timeout_seconds, s.error_class, s.next_attempt_at, s.completed_at, "
        f"{q.ms('s.completed_at', 's.started_at')} AS d "
        f"FROM tasker_workflow_steps s JOIN tasker_tasks t ON t.id = s.task_id WHERE {filtered}"
    )
    if not many:
        return sql
    # A step is created with its task (the same `created_at`, see `services.creation`), so
    # the tasks to join lie between the earliest of these steps' creation and `end`: a short
    # range of the tasks' (created_at, id) index. Bounding them by completion instead made
    # PostgreSQL hash every task finished since the range began (31,000 of them for an hour's
    # 4,700 steps a day ago, at a million tasks: 15 ms against 2.4).
    earliest = f"(SELECT MIN(s.created_at) FROM tasker_workflow_steps s WHERE {filtered})"
    upper = "" if end is None else f" AND t.created_at < {q(end)}"
    return f"{sql} AND t.created_at >= {earliest}{upper}"


async def roll(window: Split, now: datetime) -> int:
    """Roll up every rolled slot of this window not rolled up yet; returns how many were."""
    wanted = list(window.slots())
    if not wanted:
        return 0
    q = Query(connection())
    done = await q.rows(
        f"SELECT span, slot FROM tasker_analytics_slots WHERE {rolled_sql(q, window.blocks)}"
    )
    known = {(int(r["span"]), int(r["slot"])) for r in done}
    missing = [key for key in wanted if key not in known]
    if not missing:
        return 0
    async with in_transaction("default") as tx:
        claimed: list[tuple[int, int]] = []
        for i in range(0, len(missing), CLAIM_CHUNK):
            claimed += await _claim(tx, missing[i : i + CLAIM_CHUNK], now)
        for span, lo, hi in _runs(sorted(claimed)):
            await _roll_tasks(tx, span, lo, hi)
            await _roll_steps(tx, span, lo, hi)
        if claimed:
            await _forget(tx, now)
    return len(claimed)


def rolled_sql(q: Query, blocks: Iterable[Block]) -> str:
    """A predicate on `span` and `slot`: the rollup rows of these blocks."""
    terms = [f"(span = {q(b.span)} AND slot >= {q(b.first)} AND slot < {q(b.end)})" for b in blocks]
    return f"({' OR '.join(terms)})" if terms else "(1 = 0)"


async def _claim(
    conn: Conn, slots: Sequence[tuple[int, int]], now: datetime
) -> list[tuple[int, int]]:
    """Mark these slots rolled; returns the ones this transaction marked. A concurrent roller
    of the same slot waits on the key until this commits, then finds it taken."""
    q = Query(conn)
    values = ", ".join(f"({q(span)}, {q(slot)}, {q(now)})" for span, slot in slots)
    rows = await q.rows(
        f"INSERT INTO tasker_analytics_slots (span, slot, rolled_at) VALUES {values} "
        "ON CONFLICT (span, slot) DO NOTHING RETURNING span, slot"
    )
    return [(int(r["span"]), int(r["slot"])) for r in rows]


def _runs(slots: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    """Sorted (span, slot) pairs as contiguous `(span, lo, hi)` runs."""
    run: list[int] | None = None
    for span, slot in slots:
        if run is not None and run[0] == span and run[2] == slot:
            run[2] += 1
            continue
        if run is not None:
            yield run[0], run[1], run[2]
        run = [span, slot, slot + 1]
    if run is not None:
        yield run[0], run[1], run[2]


async def _roll_tasks(conn: Conn, span: int, lo: int, hi: int) -> None:
    q = Query(conn)
    start, end = slot_start(lo, span), slot_start(hi, span)
    done = f"status = {state(TaskState.COMPLETE)}"
    await q.rows(
        "INSERT INTO tasker_analytics_task_slots (span, slot, namespace, name, version, "
        "created, completed, failed, completed_ms, histogram) "
        f"SELECT {q(span)}, h, namespace, name, version, 0, "
        f"COALESCE(SUM(n) FILTER (WHERE {done}), 0), "
        f"COALESCE(SUM(n) FILTER (WHERE status = {state(TaskState.ERROR)}), 0), "
        f"COALESCE(SUM(ms) FILTER (WHERE {done}), 0), "
        f"{object_agg(q, 'b', json_pair(q, 'n', 'rs'), done)} "
        f"FROM (SELECT {slot_of(q, 'completed_at', span)} AS h, namespace, name, version, status, "
        f"{bucket_of('d')} AS b, COUNT(*) AS n, SUM(d) AS ms, "
        "CAST(SUM(round(d)) AS BIGINT) AS rs "
        f"FROM (SELECT *, {q.ms('completed_at', 'created_at')} AS d FROM tasker_tasks "
        f"WHERE completed_at >= {q(start)} AND completed_at < {q(end)} "
        f"AND status IN {FINISHED}) AS f "
        "GROUP BY 1, 2, 3, 4, 5, 6) AS g GROUP BY h, namespace, name, version"
    )
    q = Query(conn)
    await q.rows(
        "INSERT INTO tasker_analytics_task_slots (span, slot, namespace, name, version, created) "
        f"SELECT {q(span)}, {slot_of(q, 'created_at', span)} AS h, namespace, name, version, "
        f"COUNT(*) FROM tasker_tasks WHERE created_at >= {q(start)} AND created_at < {q(end)} "
        "GROUP BY 2, 3, 4, 5 ON CONFLICT (span, slot, namespace, name, version) "
        "DO UPDATE SET created = excluded.created"
    )


def _settled_runs(q: Query, span: int, start: datetime, end: datetime) -> str:
    """The settled step runs of `[start, end)` with their slot `h` (see SETTLED)."""
    runs = step_runs(q, f"s.completed_at >= {q(start)} AND s.completed_at < {q(end)}", end)
    return f"SELECT *, {slot_of(q, 'completed_at', span)} AS h FROM ({runs}) AS r WHERE {SETTLED}"


async def _roll_steps(conn: Conn, span: int, lo: int, hi: int) -> None:
    q = Query(conn)
    start, end = slot_start(lo, span), slot_start(hi, span)
    keys = ", ".join(KEYS)
    settled = _settled_runs(q, span, start, end)
    one = "THEN 1 ELSE 0 END)"
    complete = state(StepState.COMPLETE)
    await q.rows(
        "INSERT INTO tasker_analytics_step_slots (span, slot, namespace, name, version, "
        "step_name, runs, sum_ms, max_ms, retried, timeout_max, untimed, retry_limit, "
        "retried_ok, last_ok, exhausted, histogram) "
        f"SELECT {q(span)}, h, {keys}, SUM(n), SUM(ms), MAX(mx), SUM(retried), MAX(tmo), "
        "SUM(untimed), MAX(rl), SUM(retried_ok), SUM(last_ok), SUM(exhausted), "
        f"{object_agg(q, 'b', json_pair(q, 'n', 'rs'))} "
        f"FROM (SELECT h, {keys}, {bucket_of('d')} AS b, COUNT(*) AS n, SUM(d) AS ms, "
        "CAST(SUM(round(d)) AS BIGINT) AS rs, MAX(d) AS mx, "
        f"SUM(CASE WHEN attempts > 1 {one} AS retried, MAX(timeout_seconds) AS tmo, "
        f"SUM(CASE WHEN timeout_seconds IS NULL {one} AS untimed, MAX(retry_limit) AS rl, "
        f"SUM(CASE WHEN status = {complete} AND attempts > 1 {one} AS retried_ok, "
        f"SUM(CASE WHEN status = {complete} AND attempts > 1 AND attempts >= retry_limit "
        f"{one} AS last_ok, "
        f"SUM(CASE WHEN status = {state(StepState.ERROR)} AND retryable "
        "AND attempts >= retry_limit "
        f"{one} AS exhausted "
        f"FROM ({settled}) AS s GROUP BY h, {keys}, b) AS g GROUP BY h, {keys}"
    )
    q = Query(conn)
    settled = _settled_runs(q, span, start, end)
    await q.rows(
        "INSERT INTO tasker_analytics_step_slots "
        "(span, slot, namespace, name, version, step_name, errors) "
        f"SELECT {q(span)}, h, {keys}, {object_agg(q, 'error_class', 'f')} "
        f"FROM (SELECT h, {keys}, error_class, SUM({FAILURES}) AS f FROM ({settled}) AS s "
        f"WHERE error_class IS NOT NULL GROUP BY h, {keys}, error_class "
        f"HAVING SUM({FAILURES}) > 0) AS e GROUP BY h, {keys} "
        "ON CONFLICT (span, slot, namespace, name, version, step_name) "
        "DO UPDATE SET errors = excluded.errors"
    )


async def _forget(conn: Conn, now: datetime) -> None:
    """Drop rollups older than any report can ask for, and five-minute ones older than
    `FINE_KEEP` unless just rolled (a report of a long period may be about to read them)."""
    hours = slot_number(now, HOUR) - MAX_PERIOD_HOURS - 24
    q = Query(conn)
    old = (
        f"(span = {q(HOUR)} AND slot < {q(hours)}) OR (span <> {q(HOUR)} AND rolled_at < "
        f"{q(now - JUST_ROLLED)} AND slot * span < {q(int((now - FINE_KEEP).timestamp()))})"
    )
    gone = f"SELECT span, slot FROM tasker_analytics_slots WHERE {old}"
    for table in ("tasker_analytics_step_slots", "tasker_analytics_task_slots"):
        await q.rows(f"DELETE FROM {table} WHERE (span, slot) IN ({gone})")
    await q.rows(f"DELETE FROM tasker_analytics_slots WHERE {old}")


def scope_sql(q: Query, scope: BottleneckScope) -> str:
    """` AND …` terms restricting tasks (`t`) to a report's namespace / name / version."""
    sql = ""
    for column in ("namespace", "name", "version"):
        value = getattr(scope, column)
        if value is not None:
            sql += f" AND t.{column} = {q(value)}"
    return sql


async def roll_recent(clock: Clock, hours: int = 25) -> int:
    """Roll up the settled slots of the last `hours` that are not yet (for the sweeper, so
    that reports seldom have to); returns how many slots were rolled up."""
    now = clock.now()
    return await roll(split(now - timedelta(hours=hours), now), now)
