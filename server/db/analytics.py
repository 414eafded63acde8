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

from server.db.sql import Query, connection, percentile, ranked
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


async def trends(now: datetime) -> tuple[dict[str, Trend], dict[str, tuple[int, int]]]:
    """Completion rate and mean duration of the tasks finished in the last 1, 4 and 24 hours,
    and per window the (completed, failed) counts the rates come from."""
    q = Query(connection())
    since = q(now - timedelta(hours=max(h for _, h in TREND_WINDOWS)))
    dur = q.ms("t.completed_at", "t.created_at")
    cols = []
    for label, hours in TREND_WINDOWS:
        edge = q(now - timedelta(hours=hours))
        cols.append(
            f"COUNT(*) FILTER (WHERE t.status = 'complete' AND t.completed_at >= {edge}) "
            f"AS c_{label}, "
            f"COUNT(*) FILTER (WHERE t.status = 'error' AND t.completed_at >= {edge}) "
            f"AS e_{label}, "
            f"AVG({dur}) FILTER (WHERE t.status = 'complete' AND t.completed_at >= {edge}) "
            f"AS d_{label}"
        )
    row = await q.one(
        f"SELECT {', '.join(cols)} FROM tasker_tasks t "
        f"WHERE t.completed_at >= {since} AND t.status IN {FINISHED}"
    )
    out: dict[str, Trend] = {}
    counts: dict[str, tuple[int, int]] = {}
    for label, _ in TREND_WINDOWS:
        done, failed = int(row[f"c_{label}"] or 0), int(row[f"e_{label}"] or 0)
        rate = round(done / (done + failed), 4) if done + failed else None
        out[label] = Trend(completion_rate=rate, avg_duration_ms=_int(row[f"d_{label}"]))
        counts[label] = (done, failed)
    return out, counts


async def processing_times(since: datetime) -> ProcessingTimes:
    """Nearest-rank p50/p95/p99 (ms) of the tasks completed since `since`."""
    q = Query(connection())
    source = (
        f"SELECT {q.ms('t.completed_at', 't.created_at')} AS d FROM tasker_tasks t "
        f"WHERE t.completed_at >= {q(since)} AND t.status = 'complete'"
    )
    cols = ", ".join(f"{percentile(q, 'd', p)} AS p{i}" for i, p in enumerate(PERCENTILES))
    row = await q.one(f"SELECT {cols} FROM ({ranked(q, source, 'd')}) AS r")
    return ProcessingTimes(
        p50=_int(row.get("p0")), p95=_int(row.get("p1")), p99=_int(row.get("p2"))
    )


async def task_statistics(since: datetime) -> TaskStatistics:
    """Tasks created since `since`: how many, completed, failed, and retried."""
    q = Query(connection())
    edge = q(since)
    row = await q.one(
        "SELECT COUNT(*) AS total, "
        "COUNT(*) FILTER (WHERE t.status = 'complete') AS completed, "
        "COUNT(*) FILTER (WHERE t.status = 'error') AS failed, "
        "COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM tasker_workflow_steps s "
        "WHERE s.task_id = t.id AND s.attempts > 1)) AS retried "
        f"FROM tasker_tasks t WHERE t.created_at >= {edge}"
    )
    return TaskStatistics(
        total_tasks=int(row.get("total") or 0),
        completed=int(row.get("completed") or 0),
        failed=int(row.get("failed") or 0),
        retried=int(row.get("retried") or 0),
    )


async def exhausted_steps(since: datetime) -> int:
    """Steps of tasks created since `since` that failed for good (no retry scheduled)."""
    q = Query(connection())
    row = await q.one(
        "SELECT COUNT(*) AS n FROM tasker_workflow_steps s JOIN tasker_tasks t "
        "ON t.id = s.task_id WHERE s.status = 'error' AND s.next_attempt_at IS NULL "
        f"AND t.created_at >= {q(since)}"
    )
    return int(row.get("n") or 0)


async def slowest_tasks(scope: BottleneckScope, since: datetime) -> list[SlowTask]:
    """Per handler: tasks finished in the period, failure share, mean duration of successes."""
    q = Query(connection())
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
            task_name=r["name"], namespace=r["namespace"], version=r["version"],
            avg_duration_ms=_int(r["avg_ms"]), execution_count=int(r["runs"]),
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


async def step_stats(
    scope: BottleneckScope, since: datetime, default_timeout: float
) -> list[StepStats]:
    """Per (handler, step): the figures `slowest_steps` and the recommendations rest on."""
    keys = ("ns", "task_name", "version", "step_name")
    group = ", ".join(keys)
    q = Query(connection())
    timeout = q(float(default_timeout))
    rows = await q.rows(
        f"SELECT {group}, COUNT(*) AS runs, AVG(d) AS avg_ms, "
        f"{percentile(q, 'd', 0.95)} AS p95, "
        "COUNT(*) FILTER (WHERE attempts > 1) AS retried, "
        f"MAX(COALESCE(timeout_seconds, {timeout})) AS timeout, "
        "MAX(retry_limit) AS retry_limit, "
        "SUM(CASE WHEN error_class = 'StepTimeout' THEN "
        "(CASE WHEN status = 'error' THEN attempts ELSE attempts - 1 END) ELSE 0 END) "
        "AS timed_out, "
        "COUNT(*) FILTER (WHERE status = 'complete' AND attempts > 1) AS retried_ok, "
        "COUNT(*) FILTER (WHERE status = 'complete' AND attempts > 1 "
        "AND attempts >= retry_limit) AS last_ok, "
        "COUNT(*) FILTER (WHERE status = 'error' AND next_attempt_at IS NULL AND retryable "
        "AND attempts >= retry_limit) AS exhausted "
        f"FROM ({ranked(q, _step_runs(q, scope, since), 'd', keys)}) AS runs GROUP BY {group}"
    )
    return [
        StepStats(
            task_name=r["task_name"], step_name=r["step_name"], runs=int(r["runs"]),
            avg_duration_ms=round(float(r["avg_ms"])), p95_duration_ms=round(float(r["p95"])),
            retried=int(r["retried"]), timeout_seconds=float(r["timeout"]),
            timed_out=int(r["timed_out"] or 0), retry_limit=int(r["retry_limit"]),
            retried_successes=int(r["retried_ok"]), last_attempt_successes=int(r["last_ok"]),
            exhausted=int(r["exhausted"]),
        )
        for r in rows
    ]


async def error_patterns(scope: BottleneckScope, since: datetime) -> list[ErrorPattern]:
    """Failed attempts by error class (each step's attempts attributed to its last error)."""
    q = Query(connection())
    rows = await q.rows(
        "SELECT error_class, step_name, "
        "SUM(CASE WHEN status = 'error' THEN attempts ELSE attempts - 1 END) AS failures "
        f"FROM ({_step_runs(q, scope, since)}) AS runs WHERE error_class IS NOT NULL "
        "GROUP BY error_class, step_name"
    )
    by_class: dict[str, tuple[int, set[str]]] = {}
    for r in rows:
        failures = int(r["failures"] or 0)
        if failures <= 0:
            continue
        count, steps = by_class.get(r["error_class"], (0, set()))
        by_class[r["error_class"]] = (count + failures, steps | {r["step_name"]})
    patterns = [ErrorPattern(k, n, sorted(s)) for k, (n, s) in by_class.items()]
    return sorted(patterns, key=lambda e: (-e.frequency, e.error_type))
