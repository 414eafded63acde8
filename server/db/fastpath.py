"""PostgreSQL fast path for the two hottest writes: claiming a step and completing it.

Each is ONE statement (data-modifying CTEs), so it is atomic without BEGIN/COMMIT and costs
one round trip. They do exactly what the portable ORM path in `server.services.execution`
does — compare-and-set on the step, history rows, readiness counters — and the same tests run
against both. Under READ COMMITTED an UPDATE re-checks its WHERE clause against the newest row
version, so the compare-and-set holds when two workers race for one step.

Every row a statement changes is addressed by its primary key or, once locked, by its `ctid`,
never by a predicate the planner could serve from another index: on tables not yet analyzed
(a new database, or a burst before autovacuum catches up) PostgreSQL costed the status indexes
the same as the primary key and chose them, and each claim walked every pending step and
task (bench/engine_bench.py: ~1.7 ms of database CPU per step).
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from server.db.sql import json_value

_CLAIM = """
WITH target AS (
    SELECT ws.ctid AS step_row, t.ctid AS task_row, ws.status AS old_status
      FROM tasker_workflow_steps ws JOIN tasker_tasks t ON t.id = ws.task_id
     WHERE ws.id = $1 AND ws.waiting_on = 0 AND t.status IN ('pending', 'in_progress')
       AND (ws.status = 'pending' OR (ws.status = 'error' AND ws.next_attempt_at <= $2))
       -- Locks the task row (as cancel/resolve/finalize do, exclusively): a claim cannot slip
       -- between a cancel's read of the open steps and its commit, and sibling claims of a
       -- pending task serialise, so exactly one of them starts the task. The step row is
       -- locked too: a racing claim waits, then finds it no longer runnable.
       FOR NO KEY UPDATE OF t, ws
), claimed AS (
    UPDATE tasker_workflow_steps ws
       SET status = 'in_progress', attempts = ws.attempts + 1, lease_owner = $3,
           lease_expires_at = $2 + make_interval(secs => COALESCE(ws.timeout_seconds, $4) + $5),
           started_at = $2, completed_at = NULL, next_attempt_at = NULL, updated_at = $2
      FROM target
     WHERE ws.ctid = target.step_row
 RETURNING ws.id, ws.task_id, ws.name, ws.attempts, ws.retry_limit, ws.retryable,
           ws.timeout_seconds, ws.inputs, ws.handler_class, target.old_status
), history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT c.task_id, c.id, c.name, m.from_status, m.to_status, m.reason,
           jsonb_build_object('attempt', c.attempts, 'worker', $3::text), $2
      FROM claimed c,
           (VALUES (1, 'error', 'pending', 'retry due'),
                   (2, 'pending', 'in_progress', 'claimed'))
               AS m(ord, from_status, to_status, reason)
     WHERE m.ord = 2 OR c.old_status = 'error'
 RETURNING id, from_status, to_status, reason
), started AS (
    UPDATE tasker_tasks t SET status = 'in_progress', updated_at = $2
      FROM target, claimed c WHERE t.ctid = target.task_row AND t.status = 'pending'
 RETURNING t.id
), started_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT id, NULL, NULL, 'pending', 'in_progress', 'step started', '{}'::jsonb, $2
      FROM started
 RETURNING id
)
SELECT c.id, c.task_id, c.name, c.attempts, c.retry_limit, c.retryable, c.timeout_seconds,
       c.inputs, c.handler_class, t.namespace, t.name AS handler_name, t.version,
       t.status AS task_status, t.context,
       -- `p.task_id` bounds the parents to this task's steps whatever plan is chosen.
       (SELECT json_object_agg(p.name, p.results)
          FROM tasker_step_edges e JOIN tasker_workflow_steps p ON p.id = e.from_step_id
         WHERE e.to_step_id = c.id AND p.task_id = c.task_id) AS parent_results,
       t.created_at AS task_created_at,
       (SELECT MAX(p.completed_at)
          FROM tasker_step_edges e JOIN tasker_workflow_steps p ON p.id = e.from_step_id
         WHERE e.to_step_id = c.id AND p.task_id = c.task_id) AS parents_done_at,
       (SELECT json_agg(json_build_array(h.id, h.from_status, h.to_status, h.reason)
                        ORDER BY h.id) FROM history h) AS history,
       (SELECT id FROM started_history) AS started_cursor
  FROM claimed c JOIN tasker_tasks t ON t.id = c.task_id
"""

_COMPLETE = """
WITH done AS (
    -- A concurrent change to the row (cancel, lease reaped) moves it to a new ctid, and the
    -- re-check then skips it: the result is discarded, as it must be in those cases.
    UPDATE tasker_workflow_steps
       SET status = 'complete', results = $3::jsonb, completed_at = $4, updated_at = $4,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE ctid = (SELECT ctid FROM tasker_workflow_steps WHERE id = $1)
       AND status = 'in_progress' AND lease_owner = $2
 RETURNING id, task_id, name
), children AS (
    UPDATE tasker_workflow_steps c
       SET waiting_on = c.waiting_on - 1,
           dispatched_at = CASE WHEN c.waiting_on = 1 AND c.status = 'pending'
                                THEN $4 ELSE c.dispatched_at END
      FROM tasker_step_edges e, done
     WHERE e.from_step_id = done.id AND c.id = e.to_step_id
 RETURNING c.id, c.waiting_on, c.status
), task AS (
    -- One UPDATE (a statement may change a row only once): count the step done and, when it
    -- was the last one of a running task, finish the task.
    UPDATE tasker_tasks t
       SET remaining = t.remaining - 1,
           status = CASE WHEN t.remaining = 1 AND t.status = 'in_progress'
                         THEN 'complete' ELSE t.status END,
           completed_at = CASE WHEN t.remaining = 1 AND t.status = 'in_progress'
                               THEN $4 ELSE t.completed_at END,
           updated_at = CASE WHEN t.remaining = 1 AND t.status = 'in_progress'
                             THEN $4 ELSE t.updated_at END
      FROM done WHERE t.id = done.task_id
 RETURNING t.id, t.remaining, t.status
), history AS (
    -- After `task`, whose UPDATE takes the task's row lock: ids are drawn under that lock, as
    -- every writer of a task's history draws them, so one task's cursors commit in order
    -- (`server.services.follow` depends on it).
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT d.task_id, d.id, d.name, 'in_progress', 'complete', 'completed', $5::jsonb, $4
      FROM done d, task
 RETURNING id
), finished_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT id, NULL, NULL, 'in_progress', 'complete', 'all steps done', '{}'::jsonb, $4
      FROM task WHERE remaining = 0 AND status = 'complete'
 RETURNING id
)
SELECT (SELECT id FROM history) AS cursor,
       (SELECT remaining FROM task) AS remaining,
       (SELECT id FROM finished_history) AS finished_cursor,
       ARRAY(SELECT id FROM children WHERE waiting_on = 0 AND status = 'pending') AS ready
"""


def connection() -> BaseDBAsyncClient:
    """The default connection."""
    return Tortoise.get_connection("default")


def available() -> bool:
    """True on PostgreSQL, where the fast path applies."""
    return connection().capabilities.dialect == "postgres"


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """What a successful claim returns."""

    step_id: int
    task_id: UUID
    step_name: str
    attempt: int
    retry_limit: int
    retryable: bool
    timeout_seconds: float | None
    inputs: Any
    handler_class: str
    namespace: str
    handler_name: str
    version: str
    task_status: str
    context: Any
    parent_results: dict[str, Any]
    history: list[tuple[int, str, str, str]]
    started_cursor: int | None = None
    """History cursor of the task's pending -> in_progress move when this claim started it."""
    task_created_at: datetime | None = None  # metrics only (issue 6)
    parents_done_at: datetime | None = None


def _json(value: Any) -> Any:
    return json_value(value) if isinstance(value, str) else value


async def claim(
    step_id: int, now: datetime, lease_owner: str, default_timeout: float, grace: float
) -> ClaimedRow | None:
    """Claim a runnable step in one statement; None when it is not runnable (or lost the race)."""
    rows = await connection().execute_query_dict(
        _CLAIM, [step_id, now, lease_owner, default_timeout, grace]
    )
    if not rows:
        return None
    r = rows[0]
    return ClaimedRow(
        step_id=r["id"],
        task_id=r["task_id"],
        step_name=r["name"],
        attempt=r["attempts"],
        retry_limit=r["retry_limit"],
        retryable=r["retryable"],
        timeout_seconds=r["timeout_seconds"],
        inputs=_json(r["inputs"]),
        handler_class=r["handler_class"],
        namespace=r["namespace"],
        handler_name=r["handler_name"],
        version=r["version"],
        task_status=r["task_status"],
        context=_json(r["context"]),
        parent_results=_json(r["parent_results"]) or {},
        started_cursor=r["started_cursor"],
        task_created_at=r["task_created_at"],
        parents_done_at=r["parents_done_at"],
        history=[tuple(h) for h in _json(r["history"]) or []],
    )


@dataclass(frozen=True, slots=True)
class Completion:
    """What a successful completion returns: its history cursor, what is left, what is ready."""

    cursor: int
    remaining: int
    ready: list[int]
    finished_cursor: int | None = None
    """History cursor of the task's in_progress -> complete move when this step finished it."""


async def complete(
    step_id: int, lease_owner: str, results_json: str, now: datetime, metadata: dict[str, Any]
) -> Completion | None:
    """Complete a step we hold the lease on (its results already JSON), count it done; None
    if the lease was lost."""
    rows = await connection().execute_query_dict(
        _COMPLETE, [step_id, lease_owner, results_json, now, json.dumps(metadata)]
    )
    row = rows[0] if rows else None
    if row is None or row["cursor"] is None:
        return None
    return Completion(
        int(row["cursor"]),
        int(row["remaining"]),
        list(row["ready"] or []),
        row["finished_cursor"],
    )
