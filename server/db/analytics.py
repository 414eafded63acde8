"""History queries behind the analytics reports: SQL aggregates over tasks and steps.

Populations (the reports say the same in their docs):
- a task *finished* in a window when it is `complete` or `error` with `completed_at` in it;
  its duration is `completed_at - created_at`;
- a step *run* is a step whose last attempt ended in the window (`complete`, or `error` with
  `completed_at` in it), whatever its task is doing now; its duration is that attempt's
  `completed_at - started_at`;
- a task is *retried* when any of its steps was attempted more than once.
Every query is bounded by a time index (`completed_at` or `created_at`) so its cost follows
the window, not the size of the history.
"""

from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient as Conn

from server.db.sql import Query, percentile, percentile_columns, percentile_values, ranked
from server.domain.analytics import (
    PERCENTILES,
    TREND_WINDOWS,
    BottleneckScope,
    ErrorPattern,
    ProcessingTimes,
    SlowTask,
    StepStats,
    TaskStatistics,
    Trend,
    needs_p95,
)

FINISHED = "('complete', 'error')"


def _int(value: object) -> int | None:
    return None if value is None else round(float(value))  # type: ignore[arg-type]


def _scope(q: Query, scope: BottleneckScope, alias: str = "t") -> str:
    sql = ""
    for column in ("namespace", "name", "version"):
        value = getattr(scope, column)
        if value is not None:
            sql += f" AND {alias}.{column} = {q(value)}"
    return sql


async def finished_tasks(
    conn: Conn, now: datetime
) -> tuple[dict[str, Trend], dict[str, tuple[int, int]], ProcessingTimes]:
    """One pass over the tasks finished in the last 24 hours: per 1/4/24 h window the
    completion rate, mean duration of the completed and the (completed, failed) counts; and
    the nearest-rank p50/p95/p99 (ms) of the completed ones' durations."""
    q = Query(conn)
    since = q(now - timedelta(hours=max(h for _, h in TREND_WINDOWS)))
    source = (
        f"SELECT t.status, t.completed_at, {q.ms('t.completed_at', 't.created_at')} AS d "
        f"FROM tasker_tasks t WHERE t.completed_at >= {since} AND t.status IN {FINISHED}"
    )
    done = "status = 'complete'"
    cols = [percentile_columns(q, "d", PERCENTILES, where=done)]
    for label, hours in TREND_WINDOWS:
        edge = q(now - timedelta(hours=hours))
        cols += [
            f"COUNT(*) FILTER (WHERE {done} AND completed_at >= {edge}) AS c_{label}",
            f"COUNT(*) FILTER (WHERE status = 'error' AND completed_at >= {edge}) AS e_{label}",
            f"AVG(d) FILTER (WHERE {done} AND completed_at >= {edge}) AS d_{label}",
        ]
    # Ranked per status, so that the percentiles count the completed tasks only.
    row = await q.one(f"SELECT {', '.join(cols)} FROM ({ranked(q, source, 'd', ('status',))}) AS r")
    trends: dict[str, Trend] = {}
    counts: dict[str, tuple[int, int]] = {}
    for label, _ in TREND_WINDOWS:
        completed, failed = int(row[f"c_{label}"] or 0), int(row[f"e_{label}"] or 0)
        total = completed + failed
        rate = round(completed / total, 4) if total else None
        trends[label] = Trend(completion_rate=rate, avg_duration_ms=_int(row[f"d_{label}"]))
        counts[label] = (completed, failed)
    p50, p95, p99 = (_int(v) for v in percentile_values(row, len(PERCENTILES)))
    return trends, counts, ProcessingTimes(p50=p50, p95=p95, p99=p99)


async def task_statistics(conn: Conn, since: datetime) -> TaskStatistics:
    """Tasks created since `since`: how many, completed, failed, and retried."""
    q = Query(conn)
    edge = q(since)
    # A task's steps are created with it (same `created_at`), so the retried ones are a range
    # of the small partial index of steps attempted more than once.
    row = await q.one(
        "SELECT COUNT(*) AS total, "
        "COUNT(*) FILTER (WHERE t.status = 'complete') AS completed, "
        "COUNT(*) FILTER (WHERE t.status = 'error') AS failed, "
        "(SELECT COUNT(DISTINCT s.task_id) FROM tasker_workflow_steps s "
        f"WHERE s.attempts > 1 AND s.created_at >= {edge}) AS retried "
        f"FROM tasker_tasks t WHERE t.created_at >= {edge}"
    )
    return TaskStatistics(
        total_tasks=int(row.get("total") or 0),
        completed=int(row.get("completed") or 0),
        failed=int(row.get("failed") or 0),
        retried=int(row.get("retried") or 0),
    )


async def exhausted_steps(conn: Conn, since: datetime) -> int:
    """Steps of tasks created since `since` that failed for good (no retry scheduled)."""
    q = Query(conn)
    row = await q.one(
        "SELECT COUNT(*) AS n FROM tasker_workflow_steps s WHERE s.status = 'error' "
        f"AND s.next_attempt_at IS NULL AND s.created_at >= {q(since)}"
    )
    return int(row.get("n") or 0)


async def slowest_tasks(conn: Conn, scope: BottleneckScope, since: datetime) -> list[SlowTask]:
    """Per handler: tasks finished in the period, failure share, mean duration of successes."""
    q = Query(conn)
    dur = q.ms("t.completed_at", "t.created_at")
    rows = await q.rows(
        "SELECT t.namespace, t.name, t.version, COUNT(*) AS runs, "
        "COUNT(*) FILTER (WHERE t.status = 'error') AS failed, "
        f"AVG({dur}) FILTER (WHERE t.status = 'complete') AS avg_ms "
        f"FROM tasker_tasks t WHERE t.completed_at >= {q(since)} AND t.status IN {FINISHED}"
        f"{_scope(q, scope)} GROUP BY t.namespace, t.name, t.version"
    )
    return [
        SlowTask(
            task_name=r["name"],
            namespace=r["namespace"],
            version=r["version"],
            avg_duration_ms=_int(r["avg_ms"]),
            execution_count=int(r["runs"]),
            failure_rate=round(int(r["failed"]) / int(r["runs"]), 4),
        )
        for r in rows
    ]


def _step_runs(q: Query, scope: BottleneckScope, since: datetime) -> str:
    """Steps whose last attempt ended since `since`, with their task's identity."""
    edge = q(since)
    return (
        "SELECT t.namespace AS ns, t.name AS task_name, t.version AS version, "
        "s.name AS step_name, s.status, s.attempts, s.retry_limit, s.retryable, "
        "s.timeout_seconds, s.error_class, s.next_attempt_at, "
        f"{q.ms('s.completed_at', 's.started_at')} AS d "
        "FROM tasker_workflow_steps s JOIN tasker_tasks t ON t.id = s.task_id "
        f"WHERE s.completed_at >= {edge} AND s.status IN {FINISHED} "
        "AND s.started_at IS NOT NULL"
        # Implied by the step's own window (a task ends after its steps, or has not ended):
        # stated so that the planner joins a window of tasks instead of scanning them all.
        f" AND (t.completed_at >= {edge} OR t.status IN ('pending', 'in_progress'))"
        f"{_scope(q, scope)}"
    )


async def step_figures(
    conn: Conn, scope: BottleneckScope, since: datetime, default_timeout: float
) -> tuple[list[StepStats], list[ErrorPattern]]:
    """Per (handler, step): the figures of `slowest_steps` and of the advice; and the error
    patterns. One hash-aggregated pass over the window's step runs (grouped by error class
    too), then a 95th percentile only for the steps whose slowest run could put it near
    the timeout (`needs_p95`): the advice is exact, and big windows are not sorted whole."""
    keys = ("ns", "task_name", "version", "step_name")
    q = Query(conn)
    timeout = q(float(default_timeout))
    failures = "(CASE WHEN status = 'error' THEN attempts ELSE attempts - 1 END)"
    rows = await q.rows(
        f"SELECT {', '.join(keys)}, error_class, COUNT(*) AS runs, SUM(d) AS sum_ms, "
        f"MAX(d) AS max_ms, SUM({failures}) AS failures, "
        "COUNT(*) FILTER (WHERE attempts > 1) AS retried, "
        f"MAX(COALESCE(timeout_seconds, {timeout})) AS timeout, "
        "MAX(retry_limit) AS retry_limit, "
        "COUNT(*) FILTER (WHERE status = 'complete' AND attempts > 1) AS retried_ok, "
        "COUNT(*) FILTER (WHERE status = 'complete' AND attempts > 1 "
        "AND attempts >= retry_limit) AS last_ok, "
        "COUNT(*) FILTER (WHERE status = 'error' AND next_attempt_at IS NULL AND retryable "
        "AND attempts >= retry_limit) AS exhausted "
        f"FROM ({_step_runs(q, scope, since)}) AS runs "
        f"GROUP BY {', '.join(keys)}, error_class"
    )
    steps: dict[tuple[str, ...], dict[str, float]] = {}
    errors: dict[str, tuple[int, set[str]]] = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        acc = steps.setdefault(
            key,
            dict.fromkeys(
                (
                    "runs",
                    "sum_ms",
                    "max_ms",
                    "retried",
                    "timeout",
                    "retry_limit",
                    "timed_out",
                    "retried_ok",
                    "last_ok",
                    "exhausted",
                ),
                0.0,
            ),
        )
        for name in ("runs", "sum_ms", "retried", "retried_ok", "last_ok", "exhausted"):
            acc[name] += float(r[name] or 0)
        for name in ("max_ms", "timeout", "retry_limit"):
            acc[name] = max(acc[name], float(r[name] or 0))
        failed = int(r["failures"] or 0)
        if r["error_class"] == "StepTimeout":
            acc["timed_out"] += failed
        if r["error_class"] is not None and failed > 0:
            count, names = errors.get(r["error_class"], (0, set()))
            errors[r["error_class"]] = (count + failed, names | {r["step_name"]})
    candidates = [
        key
        for key, acc in steps.items()
        if needs_p95(int(acc["runs"]), acc["max_ms"], acc["timeout"])
    ]
    p95s = await _p95s(conn, scope, since, candidates) if candidates else {}
    stats = [
        StepStats(
            task_name=key[1],
            step_name=key[3],
            runs=int(acc["runs"]),
            avg_duration_ms=round(acc["sum_ms"] / acc["runs"]),
            p95_duration_ms=p95s.get(key),
            retried=int(acc["retried"]),
            timeout_seconds=acc["timeout"],
            timed_out=int(acc["timed_out"]),
            retry_limit=int(acc["retry_limit"]),
            retried_successes=int(acc["retried_ok"]),
            last_attempt_successes=int(acc["last_ok"]),
            exhausted=int(acc["exhausted"]),
        )
        for key, acc in steps.items()
    ]
    patterns = [ErrorPattern(k, n, sorted(names)) for k, (n, names) in errors.items()]
    return stats, sorted(patterns, key=lambda e: (-e.frequency, e.error_type))


async def _p95s(
    conn: Conn, scope: BottleneckScope, since: datetime, keys: list[tuple[str, ...]]
) -> dict[tuple[str, ...], int | None]:
    """Nearest-rank p95 (ms) of the runs of these handler steps, in one query."""
    q = Query(conn)
    wanted = ", ".join(f"({', '.join(q(v) for v in key)})" for key in keys)
    columns = ("ns", "task_name", "version", "step_name")
    source = (
        f"SELECT * FROM ({_step_runs(q, scope, since)}) AS runs "
        f"WHERE ({', '.join(columns)}) IN ({wanted})"
    )
    rows = await q.rows(
        f"SELECT {', '.join(columns)}, {percentile(q, 'd', 0.95)} AS p95 "
        f"FROM ({ranked(q, source, 'd', columns)}) AS r GROUP BY {', '.join(columns)}"
    )
    return {tuple(r[c] for c in columns): _int(r["p95"]) for r in rows}
