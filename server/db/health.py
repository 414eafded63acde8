"""Current-state queries for health, readiness and the scrape-time gauges.

All of them read small, indexed slices (status ranges, unfinished tasks), so they stay cheap
however long the history grows; only the full counts by status touch every row's index entry.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from server.db.sql import Query, as_datetime, connection, state, states
from server.domain.states import StepState, TaskState

ACTIVE_TASKS = states(TaskState.PENDING, TaskState.IN_PROGRESS)


async def ping() -> None:
    """One round trip to the database (raises when it cannot be reached)."""
    await connection().execute_query("SELECT 1")


def pool_stats() -> dict[str, Any]:
    """The connection pool of this process, as far as the driver tells."""
    conn = connection()
    info: dict[str, Any] = {"dialect": str(conn.capabilities.dialect)}
    pool = getattr(conn, "_pool", None)
    if pool is not None and hasattr(pool, "get_size"):  # asyncpg
        info.update(
            size=pool.get_size(),
            idle=pool.get_idle_size(),
            min=pool.get_min_size(),
            max=pool.get_max_size(),
        )
    else:  # SQLite: one connection per process
        info.update(size=1, max=1)
    return info


async def counts_by_status(table: str, statuses: tuple[str, ...] | None = None) -> dict[str, int]:
    """Rows of `tasker_tasks` or `tasker_workflow_steps` per status (every state, 0-filled)."""
    states = [s.value for s in (TaskState if table == "tasker_tasks" else StepState)]
    q = Query(connection())
    where = ""
    if statuses:
        where = " WHERE status IN (" + ", ".join(q(s) for s in statuses) + ")"
    rows = await q.rows(f"SELECT status, COUNT(*) AS n FROM {table}{where} GROUP BY status")
    counts = dict.fromkeys(statuses or states, 0)
    counts.update({r["status"]: int(r["n"]) for r in rows})
    return counts


async def retry_counts(now: datetime) -> dict[str, int]:
    """Errored steps: backing off, due for their retry now, and failed for good."""
    q = Query(connection())
    at = q(now)
    row = await q.one(
        f"SELECT COUNT(*) FILTER (WHERE next_attempt_at > {at}) AS backing_off, "
        f"COUNT(*) FILTER (WHERE next_attempt_at <= {at}) AS due, "
        "COUNT(*) FILTER (WHERE next_attempt_at IS NULL) AS exhausted "
        f"FROM tasker_workflow_steps WHERE status = {state(StepState.ERROR)}"
    )
    return {k: int(row.get(k) or 0) for k in ("backing_off", "due", "exhausted")}


@dataclass(frozen=True, slots=True)
class Backlog:
    """Steps that could run now, and how long they have been waiting."""

    ready: int
    stuck: int
    oldest_ready_since: datetime | None
    active_steps: int


async def backlog(
    now: datetime, stuck_before: datetime, conn: BaseDBAsyncClient | None = None
) -> Backlog:
    """Ready steps (parents done, or retry due) of unfinished tasks, and the stuck ones.

    A step is ready since the later of when it became pending and when its last parent
    finished; a retry is ready since its `next_attempt_at`. A step is *stuck* when it has been
    ready since before `stuck_before`, or holds a lease that expired before then.
    """
    conn = conn or connection()
    q = Query(conn)
    at, cutoff = q(now), q(stuck_before)
    latest_parent = "MAX(p.completed_at)"
    ready_sql = (
        f"SELECT CASE WHEN {latest_parent} > s.updated_at THEN {latest_parent} "
        "ELSE s.updated_at END AS since "
        "FROM tasker_workflow_steps s "
        f"JOIN tasker_tasks t ON t.id = s.task_id AND t.status IN {ACTIVE_TASKS} "
        "LEFT JOIN tasker_step_edges e ON e.to_step_id = s.id "
        "LEFT JOIN tasker_workflow_steps p ON p.id = e.from_step_id "
        f"WHERE s.status = {state(StepState.PENDING)} AND s.dispatched_at IS NOT NULL "
        "GROUP BY s.id, s.updated_at "
        "UNION ALL "
        "SELECT s.next_attempt_at AS since FROM tasker_workflow_steps s "
        f"JOIN tasker_tasks t ON t.id = s.task_id AND t.status IN {ACTIVE_TASKS} "
        f"WHERE s.status = {state(StepState.ERROR)} AND s.next_attempt_at <= {at}"
    )
    row = await q.one(
        f"SELECT COUNT(*) AS ready, COUNT(*) FILTER (WHERE since < {cutoff}) AS stuck, "
        f"MIN(since) AS oldest FROM ({ready_sql}) AS r"
    )
    leases = Query(conn)
    lost = await leases.one(
        "SELECT COUNT(*) AS n FROM tasker_workflow_steps "
        f"WHERE status = {state(StepState.IN_PROGRESS)} "
        f"AND lease_expires_at < {leases(stuck_before)}"
    )
    active = Query(conn)
    steps = await active.one(
        "SELECT COUNT(*) AS n FROM tasker_workflow_steps s JOIN tasker_tasks t "
        f"ON t.id = s.task_id WHERE t.status IN {ACTIVE_TASKS}"
    )
    return Backlog(
        ready=int(row.get("ready") or 0),
        stuck=int(row.get("stuck") or 0) + int(lost.get("n") or 0),
        oldest_ready_since=as_datetime(row.get("oldest")),
        active_steps=int(steps.get("n") or 0),
    )
