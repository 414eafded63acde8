"""The PostgreSQL statements of map items: a claim, and a completion that claims the next item.

Each runs in a transaction right after the statement that locks the item's task
(`LOCK_TASK_OF_ITEM`, or `Transaction.lock_task`): the task row before the step's items, the
order every writer of a task takes (a completion that locked its step first deadlocked with a
cancel). The lock is a statement of its own on purpose: under READ COMMITTED a statement reads
the snapshot taken when it started, so counts of running items read in the statement that
waited for the lock could miss the items another worker claimed meanwhile, and a step would
run more than `max_parallel` at once. The next statement starts after the lock is held, and
reads every item the previous holder wrote.

Statuses are parameters (`pg_sql.Statement`); an item's moves are not step moves, so the
statements name states, not moves. Every item move appends its history row in the same
statement (`server.domain.item_moves`).
"""

from server.domain.item_moves import ITEM_CLAIMED, ITEM_COMPLETE
from server.domain.readiness import CLAIMABLE_TASK_STATES
from server.domain.states import StepState
from server.engine.pg_sql import Statement

_S = StepState


def _text(constant: str) -> str:
    """A fixed reason as an SQL literal (our own constants: no quote to escape)."""
    assert "'" not in constant
    return f"'{constant}'"


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
       AND ws.status = $in_progress::text AND ws.lease_owner = $items_lease
       AND t.status = ANY($claimable_tasks::text[])
       -- A paused task (or handler) starts no item; resuming sends them again.
       AND t.paused_at IS NULL AND t.handler_paused_at IS NULL
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
         WHERE e.to_step_id = ws.id AND p.task_id = ws.task_id) AS parent_results
  FROM claimed c, tasker_workflow_steps ws JOIN tasker_tasks t ON t.id = ws.task_id
 WHERE ws.id = $step_id
""".replace("$claimed_reason", _text(ITEM_CLAIMED)),
    args=(
        "item_id",
        "task_id",
        "step_id",
        "step_name",
        "items_lease",
        "lease",
        "limit",
        "now",
        "default_timeout",
        "grace",
    ),
    moves={},
    states={
        "pending": _S.PENDING,
        "in_progress": _S.IN_PROGRESS,
        "error": _S.ERROR,
        "claimable_tasks": sorted(CLAIMABLE_TASK_STATES),
    },
)

COMPLETE_ITEM = Statement(
    """
WITH done AS (
    UPDATE tasker_step_items
       SET status = $complete::text, results = $results::jsonb, completed_at = $now,
           lease_owner = NULL, lease_expires_at = NULL, updated_at = $now
     WHERE id = $item_id AND status = $in_progress::text AND lease_owner = $lease
 RETURNING id, idx, attempts
), done_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT $task_id, $step_id, $step_name, $in_progress::text, $complete::text,
           $complete_reason, jsonb_build_object('item', d.idx, 'attempt', d.attempts), $now
      FROM done d
), counts AS (
    -- Read before `done` (a statement's parts share one snapshot): the completed item is
    -- still counted here as running, hence the `- 1` below. Each part stays on the
    -- (step_id, status, dispatched_at, idx) index and reads only the busy items, never the
    -- long tail of pending or complete ones.
    SELECT (SELECT count(*) FROM tasker_step_items i
             WHERE i.step_id = $step_id AND i.status = $in_progress::text)
         + (SELECT count(*) FROM tasker_step_items i
             WHERE i.step_id = $step_id AND i.status = $pending::text
               AND i.dispatched_at IS NOT NULL)
         + (SELECT count(*) FROM tasker_step_items i
             WHERE i.step_id = $step_id AND i.status = $error::text
               AND i.next_attempt_at IS NOT NULL) AS busy,
           EXISTS (SELECT 1 FROM tasker_step_items i
                    WHERE i.step_id = $step_id AND i.status = ANY($unfinished::text[])
                      AND i.id <> $item_id) AS more
), open AS (
    -- The step still waits for its items and its task may start one.
    SELECT 1 FROM tasker_workflow_steps ws JOIN tasker_tasks t ON t.id = ws.task_id
     WHERE ws.id = $step_id AND ws.status = $in_progress::text AND ws.lease_owner = $items_lease
       AND t.status = ANY($claimable_tasks::text[])
       AND t.paused_at IS NULL AND t.handler_paused_at IS NULL
       AND EXISTS (SELECT 1 FROM done)
), next AS (
    -- The free slots' items, in input order (`map_slots.fill_slots`).
    SELECT i.id, i.idx FROM tasker_step_items i
     WHERE i.step_id = $step_id AND i.status = $pending::text AND i.dispatched_at IS NULL
       AND EXISTS (SELECT 1 FROM open)
     ORDER BY i.idx
     LIMIT (SELECT GREATEST($limit - (busy - 1), 0) FROM counts)
), claimed AS (
    -- The first of them runs on this worker, at once, when it asked for one.
    UPDATE tasker_step_items i
       SET status = $in_progress::text, attempts = i.attempts + 1, lease_owner = $next_lease,
           lease_expires_at = $now + make_interval(secs => $timeout::float8 + $grace::float8),
           started_at = $now, completed_at = NULL, next_attempt_at = NULL, dispatched_at = $now,
           updated_at = $now
      FROM (SELECT id FROM next ORDER BY idx LIMIT 1) n
     WHERE i.id = n.id AND $next_lease::text IS NOT NULL
 RETURNING i.id, i.idx, i.item, i.attempts
), claimed_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT $task_id, $step_id, $step_name, $pending::text, $in_progress::text, $claimed_reason,
           jsonb_build_object('item', c.idx, 'attempt', c.attempts, 'worker', $next_lease::text),
           $now
      FROM claimed c
), sent AS (
    -- The others are sent to any worker.
    UPDATE tasker_step_items i SET dispatched_at = $now
      FROM next WHERE i.id = next.id AND i.id NOT IN (SELECT id FROM claimed)
 RETURNING i.id
)
SELECT (SELECT count(*) FROM done) AS done,
       (SELECT more FROM counts) AS more,
       EXISTS (SELECT 1 FROM open) AS open,
       (SELECT json_build_array(id, idx, item, attempts) FROM claimed) AS claimed,
       ARRAY(SELECT id FROM sent) AS sent
""".replace("$claimed_reason", _text(ITEM_CLAIMED)).replace(
        "$complete_reason", _text(ITEM_COMPLETE)
    ),
    args=(
        "item_id",
        "task_id",
        "step_id",
        "step_name",
        "items_lease",
        "lease",
        "results",
        "limit",
        "next_lease",
        "timeout",
        "grace",
        "now",
    ),
    moves={},
    states={
        "pending": _S.PENDING,
        "in_progress": _S.IN_PROGRESS,
        "error": _S.ERROR,
        "complete": _S.COMPLETE,
        "unfinished": [_S.PENDING, _S.IN_PROGRESS, _S.ERROR],
        "claimable_tasks": sorted(CLAIMABLE_TASK_STATES),
    },
)
