"""The PostgreSQL statements of map items: a claim, and a completion that claims the next item.

Both lock the item's task first: the task row before the step's and the items', the order
every writer of a task takes (a completion that locked its step first deadlocked with a
cancel).

A claim (`CLAIM_ITEM`) runs in a transaction right after the statement that takes that lock
(`LOCK_TASK_OF_ITEM`). The lock is a statement of its own on purpose: under READ COMMITTED a
statement reads the snapshot taken when it started, so a count of running items read in the
statement that waited for the lock could miss the items another worker claimed meanwhile, and
a step would run more than `max_parallel` at once. The next statement starts after the lock is
held, and reads every item the previous holder wrote.

A completion (`COMPLETE_ITEM`) is one statement and counts nothing: it hands the slot of the
item it completes to the next item, claimed for the same worker, so the items in progress
never grow. What its snapshot cannot decide — the last item (complete the step), no next item
claimed (send the free slots' items) — the caller settles in a transaction of its own
(`server.engine.pg_items`).

Statuses are parameters (`pg_sql.Statement`); an item's moves are not step moves, so the
statements name states, not moves. Every item move appends its history row in the same
statement (`server.domain.item_moves`).
"""

from collections.abc import Sequence
from enum import StrEnum

from server.domain.item_moves import ITEM_CLAIMED, ITEM_COMPLETE
from server.domain.readiness import CLAIMABLE_TASK_STATES
from server.domain.states import StepState
from server.engine.pg_sql import QUICK_COMMIT, Statement

_S = StepState


def _text(constant: str) -> str:
    """A fixed reason as an SQL literal (our own constants: no quote to escape)."""
    assert "'" not in constant
    return f"'{constant}'"


ITEM_ARGS = ("item_id", "task_id", "step_id", "step_name", "items_lease", "lease")
"""The arguments an item's claim and completion start with: the item, its step and task, the
step's own lease (held while it waits for its items) and the item's."""

ITEM_STATES: dict[str, StrEnum | Sequence[StrEnum]] = {
    "pending": _S.PENDING,
    "in_progress": _S.IN_PROGRESS,
    "claimable_tasks": sorted(CLAIMABLE_TASK_STATES),
}

ITEMS_OPEN = """ws.status = $in_progress::text AND ws.lease_owner = $items_lease
       AND (t.status = ANY($claimable_tasks::text[])) IS TRUE  -- by key, never a status index
       -- A paused task (or handler) starts no item; resuming sends them again.
       AND t.paused_at IS NULL AND t.handler_paused_at IS NULL"""
"""An item may start: its step (`ws`) still waits for its items, and its task (`t`) may start
steps."""

LOCK_TASK_OF_ITEM = Statement(
    """
SELECT t.id AS task_id, t.namespace, t.name, t.version, ws.id AS step_id, ws.name AS step_name
  FROM tasker_step_items i
  JOIN tasker_workflow_steps ws ON ws.id = i.step_id
  JOIN tasker_tasks t ON t.id = ws.task_id
 WHERE i.id = $item_id
   FOR NO KEY UPDATE OF t
""",
    args=("item_id",),
    moves={},
    states={},
)

CLAIM_ITEM = Statement(
    """
WITH target AS (
    SELECT i.id, i.status AS old_status, ws.timeout_seconds
      FROM tasker_step_items i
      JOIN tasker_workflow_steps ws ON ws.id = i.step_id
      JOIN tasker_tasks t ON t.id = ws.task_id
     WHERE i.id = $item_id
       AND (i.status = $pending::text
            OR (i.status = $error::text AND i.next_attempt_at <= $now))
       -- Only while its step waits for its items: none starts once it failed or was cancelled.
       AND $items_open
       AND (SELECT count(*) FROM tasker_step_items r
             WHERE r.step_id = ws.id AND r.status = $in_progress::text) < $limit
), claimed AS (
    UPDATE tasker_step_items i
       SET status = $in_progress::text, attempts = i.attempts + 1, lease_owner = $lease,
           lease_expires_at = $now + make_interval(
               secs => COALESCE(target.timeout_seconds, $default_timeout) + $grace),
           started_at = $now, completed_at = NULL, next_attempt_at = NULL, updated_at = $now
      FROM target
     WHERE i.id = target.id AND i.status = target.old_status
 RETURNING i.id, i.idx, i.item, i.attempts, target.old_status
), history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT $task_id, $step_id, $step_name, c.old_status, $in_progress::text, $claimed_reason,
           jsonb_build_object('item', c.idx, 'attempt', c.attempts, 'worker', $lease::text), $now
      FROM claimed c
)
SELECT c.id, c.idx, c.item, c.attempts, ws.handler_class, ws.retry_limit, ws.retryable,
       ws.timeout_seconds, ws.inputs, t.context,
       (SELECT json_object_agg(p.name, p.results)
          FROM tasker_step_edges e JOIN tasker_workflow_steps p ON p.id = e.from_step_id
         WHERE e.to_step_id = ws.id AND p.task_id = ws.task_id) AS parent_results,
       $quick_commit
  FROM claimed c, tasker_workflow_steps ws JOIN tasker_tasks t ON t.id = ws.task_id
 WHERE ws.id = $step_id
""".replace("$items_open", ITEMS_OPEN)
    .replace("$claimed_reason", _text(ITEM_CLAIMED))
    .replace("$quick_commit", QUICK_COMMIT),
    args=(*ITEM_ARGS, "limit", "now", "default_timeout", "grace"),
    moves={},
    states={**ITEM_STATES, "error": _S.ERROR},
)

COMPLETE_ITEM = Statement(
    """
WITH task_lock AS (
    -- The task row first, then the step's, then the item's: the order every writer of a task
    -- takes. Locked rows are read as their newest versions, whatever this statement's
    -- snapshot: a cancel or a pause that committed while this statement waited is seen.
    SELECT t.status, t.paused_at, t.handler_paused_at FROM tasker_tasks t
     WHERE t.id = $task_id
       FOR NO KEY UPDATE
), step_lock AS (
    SELECT ws.status, ws.lease_owner FROM tasker_workflow_steps ws
     WHERE ws.id = $step_id AND EXISTS (SELECT 1 FROM task_lock)
       FOR NO KEY UPDATE
), done AS (
    -- A change to the item committed meanwhile (its lease reaped) is re-checked here: the
    -- UPDATE reads the newest version of the row it changes, and skips it.
    UPDATE tasker_step_items
       SET status = $complete::text, results = $results::jsonb, completed_at = $now,
           lease_owner = NULL, lease_expires_at = NULL, updated_at = $now
     WHERE id = $item_id AND status = $in_progress::text AND lease_owner = $lease
       AND EXISTS (SELECT 1 FROM step_lock)
 RETURNING id, idx, attempts
), done_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT $task_id, $step_id, $step_name, $in_progress::text, $complete::text,
           $complete_reason, jsonb_build_object('item', d.idx, 'attempt', d.attempts), $now
      FROM done d
), open AS (
    -- The step still waits for its items and its task may start one.
    SELECT 1 FROM task_lock t, step_lock ws
     WHERE $items_open
       AND EXISTS (SELECT 1 FROM done)
), next AS (
    -- The next item in input order. The snapshot is older than the lock when this statement
    -- waited for it, and the items the previous holder claimed look pending in it: locking
    -- re-reads each row's newest version and skips those no longer pending, so the LIMIT
    -- takes the first item still free.
    SELECT i.id FROM tasker_step_items i
     WHERE i.step_id = $step_id AND i.status = $pending::text AND i.dispatched_at IS NULL
       AND EXISTS (SELECT 1 FROM open)
     -- The (step_id, status, dispatched_at, idx) index's own order: on a table not analyzed
     -- yet, `ORDER BY idx` alone let the planner take the (status, dispatched_at) index and
     -- read every pending item of every map step, sorted, on each completion.
     ORDER BY i.status, i.dispatched_at, i.idx
     LIMIT 1
       FOR UPDATE OF i
), claimed AS (
    -- It runs on this worker at once, in the slot the completed item frees: a completion
    -- never adds to the items in progress, so `max_parallel` holds whatever the snapshot.
    UPDATE tasker_step_items i
       SET status = $in_progress::text, attempts = i.attempts + 1, lease_owner = $next_lease,
           lease_expires_at = $now + make_interval(secs => $timeout::float8 + $grace::float8),
           started_at = $now, completed_at = NULL, next_attempt_at = NULL, dispatched_at = $now,
           updated_at = $now
     WHERE i.id = (SELECT id FROM next) AND i.status = $pending::text AND i.dispatched_at IS NULL
       AND $next_lease::text IS NOT NULL
 RETURNING i.id, i.idx, i.item, i.attempts
), claimed_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT $task_id, $step_id, $step_name, $pending::text, $in_progress::text, $claimed_reason,
           jsonb_build_object('item', c.idx, 'attempt', c.attempts, 'worker', $next_lease::text),
           $now
      FROM claimed c
)
SELECT (SELECT count(*) FROM done) AS done,
       (SELECT json_build_array(id, idx, item, attempts) FROM claimed) AS claimed
""".replace("$items_open", ITEMS_OPEN)
    .replace("$claimed_reason", _text(ITEM_CLAIMED))
    .replace("$complete_reason", _text(ITEM_COMPLETE)),
    args=(*ITEM_ARGS, "results", "next_lease", "timeout", "grace", "now"),
    moves={},
    states={**ITEM_STATES, "complete": _S.COMPLETE},
)
