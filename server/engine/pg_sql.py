"""The PostgreSQL store's statements, with statuses as parameters named after their moves.

A `Statement` turns `$name` placeholders into positional ones; a move `m` is written through
`$m_from` / `$m_to`, whose values come from the domain's enums. `Move` checks itself against
the allowed-move tables, so a statement cannot be built with a move the tables refuse.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from server.domain.states import StepState, TaskState, check_step_move, check_task_move


@dataclass(frozen=True, slots=True)
class Move:
    """One status change a statement writes."""

    entity: Literal["step", "task"]
    source_state: StrEnum
    target_state: StrEnum

    def __post_init__(self) -> None:
        if self.entity == "step":
            check_step_move(StepState(self.source_state), StepState(self.target_state))
        else:
            check_task_move(TaskState(self.source_state), TaskState(self.target_state))

    @property
    def source(self) -> str:
        """The state moved from, as stored."""
        return self.source_state.value

    @property
    def target(self) -> str:
        """The state moved to, as stored."""
        return self.target_state.value


_NAMED = re.compile(r"\$([a-z_][a-z0-9_]*)")


class Statement:
    """SQL with named parameters: the call's arguments, then the moves' and other states."""

    def __init__(
        self,
        text: str,
        *,
        args: Sequence[str],
        moves: Mapping[str, Move],
        states: Mapping[str, StrEnum | Sequence[StrEnum]],
    ) -> None:
        self.text = text
        self.args = tuple(args)
        self.moves = dict(moves)
        fixed: dict[str, Any] = {}
        for name, move in moves.items():
            fixed[f"{name}_from"] = move.source
            fixed[f"{name}_to"] = move.target
        for name, state in states.items():
            fixed[name] = state.value if isinstance(state, StrEnum) else [s.value for s in state]
        self.fixed = fixed
        index = {n: i + 1 for i, n in enumerate([*self.args, *fixed])}
        unknown = set(_NAMED.findall(text)) - set(index)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self.sql = _NAMED.sub(lambda m: f"${index[m[1]]}", text)
        self._fixed_values = list(fixed.values())

    def values(self, *args: Any) -> list[Any]:
        """The positional parameters for these call arguments."""
        return [*args, *self._fixed_values]


QUICK_COMMIT = "set_config('synchronous_commit', 'off', true) AS quick_commit"
"""A claim's select-list column that commits its statement without waiting for the WAL flush.

A claim is safe to lose in a database crash: the step is back where it was before (pending or
retrying, with the claim's history, slots and rate starts gone with it), as if the worker had
died before claiming, and it runs again, as a step lost with a killed worker does. Nothing that
depends on a claim can outlive it: the step's completion is a synchronous commit, and the WAL is
flushed in order, so a durable completion makes its claim durable too (a completion whose claim
was lost finds no lease and is discarded). Completions, failures, creations and every other
change stay synchronous. Set for the statement's own transaction only (`is_local`), read when it
commits; under PgBouncer's transaction mode too. Skipping one flush per claim halves the commits
that wait for the disk on the hot path."""

# Fragments the limited claim and completion (`pg_flow_sql`) share with the statements below:
# a step is claimed, its history written and its task started the same way with or without
# limits, and a completion counts the step done the same way before limits free its slots.

CLAIMABLE_STEP = """
       -- IS TRUE: no plan may serve this from a status index. Given this statement's values and
       -- no statistics (a table never analyzed), the planner read every active task that way.
       AND (t.status = ANY($claimable_tasks::text[])) IS TRUE
       -- A delayed task's steps wait for its start (`readiness.has_started`).
       AND (t.run_at IS NULL OR t.run_at <= $now)
       -- A paused task (or handler) starts no step; a claim waiting on the pause's lock
       -- re-reads these columns, so none starts once the pause has committed.
       AND t.paused_at IS NULL AND t.handler_paused_at IS NULL
       -- A parked sleep or signal wait is not claimed before its wake time.
       AND (ws.wake_at IS NULL OR ws.wake_at <= $now)
       AND (ws.status = $claim_from::text
            OR (ws.status = $retry_from::text AND ws.next_attempt_at <= $now))"""
"""The `target` conditions of a claim after its own."""

STEP_LOCKS = """
       -- Locks the task row (as cancel/resolve/finalize do, exclusively): a claim cannot slip
       -- between a cancel's read of the open steps and its commit, and sibling claims of a
       -- pending task serialise, so exactly one of them starts the task. The step row is
       -- locked too: a racing claim waits, then finds it no longer runnable.
       FOR NO KEY UPDATE OF t, ws"""
"""The locks a claim's `target` takes, last in its query."""

CLAIM_STEP = """
    UPDATE tasker_workflow_steps ws
       SET status = $claim_to::text, attempts = ws.attempts + 1, lease_owner = target.lease,
           lease_expires_at = $now + make_interval(
               secs => COALESCE(ws.timeout_seconds, target.default_timeout) + target.grace),
           started_at = $now, completed_at = NULL, next_attempt_at = NULL, updated_at = $now"""
"""The `claimed` update, up to its FROM clause: each `target` row says its claim's lease,
default timeout and grace."""

CLAIMED_COLUMNS = """
 RETURNING ws.id, ws.task_id, ws.name, ws.attempts, ws.retry_limit, ws.retryable,
           ws.timeout_seconds, ws.inputs, ws.handler_class, ws.lease_owner, target.old_status"""
"""What the `claimed` update returns."""

CLAIM_HISTORY = """history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT c.task_id, c.id, c.name, m.from_status, m.to_status, m.reason,
           jsonb_build_object('attempt', c.attempts, 'worker', c.lease_owner), $now
      FROM claimed c,
           (VALUES (1, $retry_from::text, $retry_to::text, 'retry due'),
                   (2, $claim_from::text, $claim_to::text, 'claimed'))
               AS m(ord, from_status, to_status, reason)
     WHERE m.ord = 2 OR c.old_status = $retry_from::text
 RETURNING id, step_id, from_status, to_status, reason
), started AS (
    UPDATE tasker_tasks t SET status = $start_to::text, updated_at = $now
      FROM target, claimed c
     WHERE t.ctid = target.task_row AND target.task_id = c.task_id
       AND t.status = $start_from::text
 RETURNING t.id
), started_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT id, NULL, NULL, $start_from::text, $start_to::text, 'step started', '{}'::jsonb, $now
      FROM started
 RETURNING id, task_id
)"""
"""The claim's history rows, and the start of its task when it was pending (with history)."""

CLAIM_ROW = """
SELECT c.id, c.task_id, c.name, c.attempts, c.retry_limit, c.retryable, c.timeout_seconds,
       c.inputs, c.handler_class, t.namespace, t.priority, t.name AS handler_name, t.version,
       t.status AS task_status, t.context,
       -- `p.task_id` bounds the parents to this task's steps whatever plan is chosen.
       (SELECT json_object_agg(p.name, p.results)
          FROM tasker_step_edges e JOIN tasker_workflow_steps p ON p.id = e.from_step_id
         WHERE e.to_step_id = c.id AND p.task_id = c.task_id) AS parent_results,
       COALESCE(t.run_at, t.created_at) AS task_created_at,
       (SELECT MAX(p.completed_at)
          FROM tasker_step_edges e JOIN tasker_workflow_steps p ON p.id = e.from_step_id
         WHERE e.to_step_id = c.id AND p.task_id = c.task_id) AS parents_done_at,
       (SELECT json_agg(json_build_array(h.id, h.from_status, h.to_status, h.reason)
                        ORDER BY h.id) FROM history h WHERE h.step_id = c.id) AS history,
       -- A task's start belongs to its first step claimed here (one start, one event).
       (SELECT s.id FROM started_history s
         WHERE s.task_id = c.task_id
           AND c.id = (SELECT min(o.id) FROM claimed o WHERE o.task_id = c.task_id))
           AS started_cursor,
       c.lease_owner, $quick_commit
  FROM claimed c JOIN tasker_tasks t ON t.id = c.task_id
""".replace("$quick_commit", QUICK_COMMIT)
"""A claimed step's row (`pg_claims.claim_from_row` reads it), named by its lease."""

CLAIM = f"""
WITH asked AS (
    -- A step asked for twice is claimed once, for its first request.
    SELECT DISTINCT ON (i.step_id) i.*
      FROM unnest($step_ids::bigint[], $leases::text[], $default_timeouts::float8[],
                  $graces::float8[])
           WITH ORDINALITY AS i(step_id, lease, default_timeout, grace, ord)
     ORDER BY i.step_id, i.ord
), target AS (
    SELECT ws.ctid AS step_row, t.ctid AS task_row, ws.status AS old_status, ws.task_id,
           i.lease, i.default_timeout, i.grace
      FROM tasker_workflow_steps ws JOIN tasker_tasks t ON t.id = ws.task_id
      JOIN asked i ON i.step_id = ws.id
     WHERE ws.id = ANY($step_ids::bigint[]) AND ws.waiting_on = 0
       -- A step with limits is claimed by the portable claim (`server.engine.limits`).
       AND ws.flow IS NULL{CLAIMABLE_STEP}
     -- Locked in task order, as every statement that locks several tasks locks them: two
     -- batches of claims cannot each hold a task the other waits for.
     ORDER BY t.id, ws.id{STEP_LOCKS}
), claimed AS ({CLAIM_STEP}
      FROM target
     WHERE ws.ctid = target.step_row{CLAIMED_COLUMNS}
), {CLAIM_HISTORY}{CLAIM_ROW}"""
"""Claims of steps without limits, one row per step claimed: each request a step id, its lease,
default timeout and grace (arrays of one for a claim alone)."""

TASK_LOCK = """
    SELECT t.id FROM tasker_tasks t
     WHERE t.id = (SELECT task_id FROM tasker_workflow_steps WHERE id = $step_id)
       FOR NO KEY UPDATE"""
"""The `task_lock` of a completion: the step's task row, locked before anything else."""

COMPLETE_STEP = """done AS (
    -- A concurrent change to the row (cancel, lease reaped) moves it to a new ctid, and the
    -- re-check then skips it: the result is discarded, as it must be in those cases.
    UPDATE tasker_workflow_steps
       SET status = $done_to::text, results = $results::jsonb, completed_at = $now,
           updated_at = $now, lease_owner = NULL, lease_expires_at = NULL
     WHERE ctid = (SELECT ctid FROM tasker_workflow_steps WHERE id = $step_id)
       AND status = $done_from::text AND lease_owner = $lease
       AND EXISTS (SELECT 1 FROM task_lock)
 RETURNING id, task_id, name
), children AS (
    UPDATE tasker_workflow_steps c
       SET waiting_on = c.waiting_on - 1,
           dispatched_at = CASE WHEN c.waiting_on = 1 AND c.status = $ready_state::text
                                THEN $now ELSE c.dispatched_at END
      FROM tasker_step_edges e, done
     WHERE e.from_step_id = done.id AND c.id = e.to_step_id
 RETURNING c.id, c.waiting_on, c.status, c.flow IS NOT NULL AS limited
), task AS (
    -- One UPDATE (a statement may change a row only once): count the step done and, when it
    -- was the last one of a running task, finish the task. A child task is finished by the
    -- general path instead (`PgStore._settle`), which also settles the parent step waiting.
    UPDATE tasker_tasks t
       SET remaining = t.remaining - 1,
           status = CASE WHEN t.remaining = 1 AND t.parent_task_id IS NULL
                         AND t.status = $finish_from::text
                         THEN $finish_to::text ELSE t.status END,
           completed_at = CASE WHEN t.remaining = 1 AND t.parent_task_id IS NULL
                         AND t.status = $finish_from::text
                               THEN $now ELSE t.completed_at END,
           updated_at = CASE WHEN t.remaining = 1 AND t.parent_task_id IS NULL
                         AND t.status = $finish_from::text
                             THEN $now ELSE t.updated_at END
      FROM done WHERE t.id = done.task_id
 RETURNING t.id, t.remaining, t.status
), history AS (
    -- After `task`, whose UPDATE takes the task's row lock: ids are drawn under that lock, as
    -- every writer of a task's history draws them, so one task's cursors commit in order
    -- (`server.services.follow` depends on it).
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT d.task_id, d.id, d.name, $done_from::text, $done_to::text, 'completed',
           $metadata::jsonb, $now
      FROM done d, task
 RETURNING id
), finished_history AS (
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT id, NULL, NULL, $finish_from::text, $finish_to::text, 'all steps done', '{}'::jsonb,
           $now
      FROM task WHERE remaining = 0 AND status = $finish_to::text
 RETURNING id
)"""
"""A completion's step, its children's counters, its task (finished by its last step) and the
history of both."""

COMPLETED_ROW = """
SELECT (SELECT id FROM history) AS cursor,
       (SELECT remaining FROM task) AS remaining,
       (SELECT id FROM finished_history) AS finished_cursor,
       ARRAY(SELECT id FROM children WHERE waiting_on = 0 AND status = $ready_state::text)
           AS ready,
       ARRAY(SELECT id FROM children WHERE waiting_on = 0 AND status = $ready_state::text
                                       AND limited) AS ready_limited"""
"""A completion's result columns (`pg_complete.completion_effects` reads them)."""

COMPLETE = f"""
WITH task_lock AS (
    -- The task row first, then its steps: the order every writer of a task takes them (the
    -- claim above, cancel and the portable transaction lock the task, then write steps). A
    -- completion that locked its step first and the task last deadlocked with a cancel of
    -- the same task: each held the row the other wanted.{TASK_LOCK}
), {COMPLETE_STEP}{COMPLETED_ROW}
"""
