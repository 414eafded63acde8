"""Writing and reading the hourly analytics rollups (tables of migration 4).

When an hour is rolled up, and why its figures then stand:
- Hours are rolled once, `SETTLE` after they end: lazily by the first report that needs them
  (before it opens its read snapshot) and by the sweeper for the last day. Never on the
  per-step hot path: the engine writes nothing extra.
- Every figure is keyed by a time that no later change moves into or out of a closed hour:
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
  resolved by hand after its hour was rolled up still counts as failed in that hour (and as
  complete in the hour it completes); and tasks deleted by retention still count in the hours
  they were created and finished in. Rollups older than the longest period are deleted.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient as Conn
from tortoise.transactions import in_transaction

from server.db.sql import Query, bucket_of, connection, hour_of, json_pair, object_agg
from server.domain.analytics import MAX_PERIOD_HOURS, BottleneckScope
from server.domain.analytics_rollup import hour_start

FINISHED = "('complete', 'error')"
KEYS = ("ns", "task_name", "version", "step_name")
SETTLED = "(status = 'complete' OR (status = 'error' AND next_attempt_at IS NULL))"
CLAIM_CHUNK = 500
FAILURES = "(CASE WHEN status = 'error' THEN attempts ELSE attempts - 1 END)"
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


async def roll(first: int, end: int, now: datetime) -> int:
    """Roll up every hour in `[first, end)` not rolled up yet; returns how many were."""
    if end <= first:
        return 0
    q = Query(connection())
    done = await q.rows(
        f"SELECT hour FROM tasker_analytics_hours WHERE hour >= {q(first)} AND hour < {q(end)}"
    )
    known = {int(r["hour"]) for r in done}
    missing = [h for h in range(first, end) if h not in known]
    if not missing:
        return 0
    async with in_transaction("default") as tx:
        claimed: list[int] = []
        for i in range(0, len(missing), CLAIM_CHUNK):
            claimed += await _claim(tx, missing[i : i + CLAIM_CHUNK], now)
        for lo, hi in _runs(sorted(claimed)):
            await _roll_tasks(tx, lo, hi)
            await _roll_steps(tx, lo, hi)
        if claimed:
            await _forget(tx, min(claimed) - MAX_PERIOD_HOURS - 24)
    return len(claimed)


async def _claim(conn: Conn, hours: Sequence[int], now: datetime) -> list[int]:
    """Mark these hours rolled; returns the ones this transaction marked. A concurrent roller
    of the same hour waits on the key until this commits, then finds it taken."""
    q = Query(conn)
    values = ", ".join(f"({q(h)}, {q(now)})" for h in hours)
    rows = await q.rows(
        f"INSERT INTO tasker_analytics_hours (hour, rolled_at) VALUES {values} "
        "ON CONFLICT (hour) DO NOTHING RETURNING hour"
    )
    return [int(r["hour"]) for r in rows]


def _runs(hours: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Sorted hours as contiguous `[lo, hi)` runs."""
    start = prev = None
    for h in hours:
        if start is None or prev is None or h != prev + 1:
            if start is not None and prev is not None:
                yield start, prev + 1
            start = h
        prev = h
    if start is not None and prev is not None:
        yield start, prev + 1


async def _roll_tasks(conn: Conn, lo: int, hi: int) -> None:
    q = Query(conn)
    start, end = hour_start(lo), hour_start(hi)
    done = "status = 'complete'"
    await q.rows(
        "INSERT INTO tasker_analytics_task_hours "
        "(hour, namespace, name, version, created, completed, failed, completed_ms, histogram) "
        "SELECT h, namespace, name, version, 0, "
        f"COALESCE(SUM(n) FILTER (WHERE {done}), 0), "
        "COALESCE(SUM(n) FILTER (WHERE status = 'error'), 0), "
        f"COALESCE(SUM(ms) FILTER (WHERE {done}), 0), "
        f"{object_agg(q, 'b', json_pair(q, 'n', 'rs'), done)} "
        f"FROM (SELECT {hour_of(q, 'completed_at')} AS h, namespace, name, version, status, "
        f"{bucket_of('d')} AS b, COUNT(*) AS n, SUM(d) AS ms, "
        "CAST(SUM(round(d)) AS BIGINT) AS rs "
        f"FROM (SELECT *, {q.ms('completed_at', 'created_at')} AS d FROM tasker_tasks "
        f"WHERE completed_at >= {q(start)} AND completed_at < {q(end)} "
        f"AND status IN {FINISHED}) AS f "
        "GROUP BY 1, 2, 3, 4, 5, 6) AS g GROUP BY h, namespace, name, version"
    )
    q = Query(conn)
    await q.rows(
        "INSERT INTO tasker_analytics_task_hours (hour, namespace, name, version, created) "
        f"SELECT {hour_of(q, 'created_at')} AS h, namespace, name, version, COUNT(*) "
        f"FROM tasker_tasks WHERE created_at >= {q(start)} AND created_at < {q(end)} "
        "GROUP BY 1, 2, 3, 4 ON CONFLICT (hour, namespace, name, version) "
        "DO UPDATE SET created = excluded.created"
    )


def _settled_runs(q: Query, start: datetime, end: datetime) -> str:
    """The settled step runs of `[start, end)` with their hour `h` (see SETTLED)."""
    runs = step_runs(q, f"s.completed_at >= {q(start)} AND s.completed_at < {q(end)}", end)
    return f"SELECT *, {hour_of(q, 'completed_at')} AS h FROM ({runs}) AS r WHERE {SETTLED}"


async def _roll_steps(conn: Conn, lo: int, hi: int) -> None:
    q = Query(conn)
    start, end = hour_start(lo), hour_start(hi)
    keys = ", ".join(KEYS)
    settled = _settled_runs(q, start, end)
    one = "THEN 1 ELSE 0 END)"
    await q.rows(
        "INSERT INTO tasker_analytics_step_hours (hour, namespace, name, version, step_name, "
        "runs, sum_ms, max_ms, retried, timeout_max, untimed, retry_limit, retried_ok, "
        "last_ok, exhausted, histogram) "
        f"SELECT h, {keys}, SUM(n), SUM(ms), MAX(mx), SUM(retried), MAX(tmo), SUM(untimed), "
        "MAX(rl), SUM(retried_ok), SUM(last_ok), SUM(exhausted), "
        f"{object_agg(q, 'b', json_pair(q, 'n', 'rs'))} "
        f"FROM (SELECT h, {keys}, {bucket_of('d')} AS b, COUNT(*) AS n, SUM(d) AS ms, "
        "CAST(SUM(round(d)) AS BIGINT) AS rs, MAX(d) AS mx, "
        f"SUM(CASE WHEN attempts > 1 {one} AS retried, MAX(timeout_seconds) AS tmo, "
        f"SUM(CASE WHEN timeout_seconds IS NULL {one} AS untimed, MAX(retry_limit) AS rl, "
        f"SUM(CASE WHEN status = 'complete' AND attempts > 1 {one} AS retried_ok, "
        "SUM(CASE WHEN status = 'complete' AND attempts > 1 AND attempts >= retry_limit "
        f"{one} AS last_ok, "
        "SUM(CASE WHEN status = 'error' AND retryable AND attempts >= retry_limit "
        f"{one} AS exhausted "
        f"FROM ({settled}) AS s GROUP BY h, {keys}, b) AS g GROUP BY h, {keys}"
    )
    q = Query(conn)
    settled = _settled_runs(q, start, end)
    await q.rows(
        "INSERT INTO tasker_analytics_step_hours "
        "(hour, namespace, name, version, step_name, errors) "
        f"SELECT h, {keys}, {object_agg(q, 'error_class', 'f')} "
        f"FROM (SELECT h, {keys}, error_class, SUM({FAILURES}) AS f FROM ({settled}) AS s "
        f"WHERE error_class IS NOT NULL GROUP BY h, {keys}, error_class "
        f"HAVING SUM({FAILURES}) > 0) AS e GROUP BY h, {keys} "
        "ON CONFLICT (hour, namespace, name, version, step_name) "
        "DO UPDATE SET errors = excluded.errors"
    )


async def _forget(conn: Conn, before: int) -> None:
    """Drop rollups older than any report can ask for."""
    for table in (
        "tasker_analytics_step_hours",
        "tasker_analytics_task_hours",
        "tasker_analytics_hours",
    ):
        q = Query(conn)
        await q.rows(f"DELETE FROM {table} WHERE hour < {q(before)}")


def scope_sql(q: Query, scope: BottleneckScope, prefix: str = "t.") -> str:
    """` AND …` terms restricting rows to a report's namespace / name / version."""
    sql = ""
    for column in ("namespace", "name", "version"):
        value = getattr(scope, column)
        if value is not None:
            sql += f" AND {prefix}{column} = {q(value)}"
    return sql
