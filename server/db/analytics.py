"""History queries behind the analytics reports: rollups plus SQL over recent rows.

Populations (the reports say the same in their docs):
- a task *finished* in a window when it is `complete` or `error` with `completed_at` in it;
  its duration is `completed_at - created_at`;
- a step *run* is a step whose last attempt ended in the window (`complete`, or `error` with
  `completed_at` in it), whatever its task is doing now; its duration is that attempt's
  `completed_at - started_at`;
- a task is *retried* when any of its steps was attempted more than once.
Each window is a `Split`: its whole settled hours and five-minute slots are read from the
rollups (a few rows per slot and handler, see `server.db.analytics_rollup`), the rest (a few
minutes) from the tasks and steps tables through their time indexes, so a report's cost
follows the number of slots and handlers in its window, not the number of tasks.
"""

from collections.abc import Mapping
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient as Conn

from server.db.analytics_rollup import FINISHED, rolled_sql, scope_sql
from server.db.rolled_blocks import RolledBlockCache
from server.db.sql import Query, bucket_of, in_ranges, state
from server.domain.analytics import (
    PERCENTILES,
    BottleneckScope,
    ProcessingTimes,
    SlowTask,
    TaskStatistics,
    Trend,
)
from server.domain.analytics_rollup import Block, Histogram, Split
from server.domain.states import StepState, TaskState

DONE = f"status = {state(TaskState.COMPLETE)}"
NOT_COMPLETE = tuple(s.value for s in TaskState if s is not TaskState.COMPLETE)
Key = tuple[str, ...]


def _int(value: object) -> int | None:
    return None if value is None else round(float(value))  # type: ignore[arg-type]


async def finished_tasks(
    conn: Conn, memo: RolledBlockCache, windows: Mapping[str, Split]
) -> tuple[dict[str, Trend], dict[str, tuple[int, int]], ProcessingTimes]:
    """Per trend window: completion rate, mean duration of the completed and the (completed,
    failed) counts of the tasks finished in it; and the p50/p95/p99 (ms) of the completed
    ones' durations over the widest window (the last one)."""
    sums = {label: [0, 0, 0.0] for label in windows}
    # The windows share blocks and slots (the last hours are in all three): one row a slot.
    blocks = {b for s in windows.values() for b in s.blocks}
    rolled = await memo.rows(conn, "finished per slot", blocks, _finished_per_slot)
    for r in {(r["span"], r["slot"]): r for r in rolled}.values():
        for label, split in windows.items():
            if split.covers(int(r["span"]), int(r["slot"])):
                sums[label][0] += int(r["c"] or 0)
                sums[label][1] += int(r["e"] or 0)
                sums[label][2] += float(r["ms"] or 0)
    q = Query(conn)
    cols = []
    for label, split in windows.items():
        inside = in_ranges(q, "completed_at", split.live)
        cols += [
            f"COUNT(*) FILTER (WHERE {DONE} AND {inside}) AS c_{label}",
            f"COUNT(*) FILTER (WHERE status = {state(TaskState.ERROR)} AND {inside}) AS e_{label}",
            f"SUM(d) FILTER (WHERE {DONE} AND {inside}) AS s_{label}",
        ]
    live = [r for split in windows.values() for r in split.live]
    row = await q.one(
        f"SELECT {', '.join(cols)} FROM (SELECT status, completed_at, "
        f"{q.ms('completed_at', 'created_at')} AS d FROM tasker_tasks "
        f"WHERE {in_ranges(q, 'completed_at', live)} AND status IN {FINISHED}) AS f"
    )
    trends: dict[str, Trend] = {}
    counts: dict[str, tuple[int, int]] = {}
    for label in windows:
        completed = int(sums[label][0]) + int(row.get(f"c_{label}") or 0)
        failed = int(sums[label][1]) + int(row.get(f"e_{label}") or 0)
        total_ms = float(sums[label][2]) + float(row.get(f"s_{label}") or 0)
        total = completed + failed
        trends[label] = Trend(
            completion_rate=round(completed / total, 4) if total else None,
            avg_duration_ms=round(total_ms / completed) if completed else None,
        )
        counts[label] = (completed, failed)
    durations = await _task_histogram(conn, memo, list(windows.values())[-1])
    p50, p95, p99 = (durations.percentile(p) for p in PERCENTILES)
    return trends, counts, ProcessingTimes(p50=p50, p95=p95, p99=p99)


def _finished_per_slot(q: Query, where: str) -> str:
    return (
        "SELECT span, slot, SUM(completed) AS c, SUM(failed) AS e, "
        f"SUM(completed_ms) AS ms FROM tasker_analytics_task_slots WHERE {where} "
        "GROUP BY span, slot"
    )


async def _task_histogram(conn: Conn, memo: RolledBlockCache, split: Split) -> Histogram:
    """Durations of the tasks completed in the window."""
    merged = Histogram()

    async def read(block: Block) -> Histogram:
        q = Query(conn)
        rows = await q.rows(
            "SELECT histogram FROM tasker_analytics_task_slots "
            f"WHERE {rolled_sql(q, [block])} AND completed > 0"
        )
        rolled = Histogram()
        rolled.add_stored(r["histogram"] for r in rows)
        return rolled

    for rolled in await memo.each("task durations", split.blocks, read):
        merged.merge(rolled)
    q = Query(conn)
    merged.add_rows(
        await q.rows(
            f"SELECT {bucket_of('d')} AS b, COUNT(*) AS n, SUM(round(d)) AS s "
            f"FROM (SELECT {q.ms('completed_at', 'created_at')} AS d FROM tasker_tasks "
            f"WHERE {in_ranges(q, 'completed_at', split.live)} AND {DONE}) AS f GROUP BY 1"
        )
    )
    return merged


async def task_statistics(conn: Conn, memo: RolledBlockCache, split: Split) -> TaskStatistics:
    """Tasks created in the window: how many, completed, failed, and retried. Statuses are
    read now (tasks created in a rolled slot may have finished since): the tasks that are not
    complete are few and indexed by status, the complete ones are the rest."""
    rolled = await memo.rows(conn, "created", split.blocks, _created)
    created = sum(int(r.get("n") or 0) for r in rolled)
    q = Query(conn)
    edge = q(split.since)
    others = ", ".join(q(s) for s in NOT_COMPLETE)
    # A task's steps are created with it (same `created_at`), so the retried ones are a range
    # of the small partial index of steps attempted more than once.
    row = await q.one(
        "SELECT (SELECT COUNT(*) FROM tasker_tasks "
        f"WHERE {in_ranges(q, 'created_at', split.live)}) AS live, "
        "(SELECT COUNT(*) FROM tasker_tasks "
        f"WHERE status IN ({others}) AND created_at >= {edge}) AS open, "
        "(SELECT COUNT(*) FROM tasker_tasks "
        f"WHERE status = {state(TaskState.ERROR)} AND created_at >= {edge}) AS failed, "
        "(SELECT COUNT(DISTINCT s.task_id) FROM tasker_workflow_steps s "
        f"WHERE s.attempts > 1 AND s.created_at >= {edge}) AS retried"
    )
    total = created + int(row.get("live") or 0)
    return TaskStatistics(
        total_tasks=total,
        completed=max(0, total - int(row.get("open") or 0)),
        failed=int(row.get("failed") or 0),
        retried=int(row.get("retried") or 0),
    )


def _created(q: Query, where: str) -> str:
    return f"SELECT SUM(created) AS n FROM tasker_analytics_task_slots WHERE {where}"


async def exhausted_steps(conn: Conn, since: datetime) -> int:
    """Steps of tasks created since `since` that failed for good (no retry scheduled)."""
    q = Query(conn)
    row = await q.one(exhausted_sql(q, since))
    return int(row.get("n") or 0)


def exhausted_sql(q: Query, since: datetime) -> str:
    """A range of migration 6's partial index (those steps only, by `created_at`)."""
    return (
        "SELECT COUNT(*) AS n FROM tasker_workflow_steps s "
        f"WHERE s.status = {state(StepState.ERROR)} "
        f"AND s.next_attempt_at IS NULL AND s.created_at >= {q(since)}"
    )


async def slowest_tasks(
    conn: Conn, memo: RolledBlockCache, scope: BottleneckScope, split: Split
) -> list[SlowTask]:
    """Per handler: tasks finished in the period, failure share, mean duration of successes."""
    rolled = await memo.rows(conn, "finished per handler", split.blocks, _finished_per_handler)
    rows = [r for r in rolled if scope.holds(r["namespace"], r["name"], r["version"])]
    q = Query(conn)
    rows += await q.rows(
        f"SELECT t.namespace, t.name, t.version, COUNT(*) FILTER (WHERE t.{DONE}) AS c, "
        f"COUNT(*) FILTER (WHERE t.status = {state(TaskState.ERROR)}) AS e, "
        f"SUM({q.ms('t.completed_at', 't.created_at')}) FILTER (WHERE t.{DONE}) AS ms "
        f"FROM tasker_tasks t WHERE {in_ranges(q, 't.completed_at', split.live)} "
        f"AND t.status IN {FINISHED}{scope_sql(q, scope)} GROUP BY t.namespace, t.name, t.version"
    )
    sums: dict[Key, list[float]] = {}
    for r in rows:
        acc = sums.setdefault((r["namespace"], r["name"], r["version"]), [0, 0, 0.0])
        for i, column in enumerate(("c", "e", "ms")):
            acc[i] += float(r[column] or 0)
    return [
        SlowTask(
            task_name=name,
            namespace=ns,
            version=version,
            avg_duration_ms=round(ms / done) if done else None,
            execution_count=int(done + failed),
            failure_rate=round(failed / (done + failed), 4),
        )
        for (ns, name, version), (done, failed, ms) in sums.items()
        if done + failed > 0
    ]


def _finished_per_handler(q: Query, where: str) -> str:
    return (
        "SELECT namespace, name, version, SUM(completed) AS c, SUM(failed) AS e, "
        f"SUM(completed_ms) AS ms FROM tasker_analytics_task_slots WHERE {where} "
        "GROUP BY namespace, name, version"
    )
