"""Completions in bulk on PostgreSQL: many successful attempts, ONE statement.

`PgStore` feeds it through a `GroupCommit`: completions that arrive while one is being written
are written together next. The statement does what the one-step COMPLETE does (pg_sql.py), for
arrays of steps, leases and results:

- it locks every task of the batch first, in id order, then writes their steps: the order
  every writer of a task takes (a completion that locked its step before its task deadlocked
  with a cancel), and two batches that share tasks take their locks in the same order;
- a statement may change a row only once, so the counters are aggregated: a task loses as
  many `remaining` as it has steps in the batch, a child as many `waiting_on` as it has
  parents in it (a diamond's two middle steps completing together make the last one ready,
  once);
- a ready child is handed to one completion only (its parent in the batch with the lowest id):
  that caller may run it itself, the others are dispatched after commit.

A step whose lease was lost (cancelled, reaped) is left out and answered `discarded`.
"""

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from tortoise import Tortoise

from server.domain.flow import DEFAULT_PRIORITY
from server.domain.states import StepState, TaskState
from server.engine.changes import Effects, StateChanges, TaskRef
from server.engine.pg_sql import Move, Statement
from server.engine.store import Claim, Recorded

_S, _T = StepState, TaskState

DONE = Move("step", _S.IN_PROGRESS, _S.COMPLETE)
FINISH = Move("task", _T.IN_PROGRESS, _T.COMPLETE)
COMPLETE_MOVES = {"done": DONE, "finish": FINISH}
"""The moves every completion statement writes: the step done and, by the task's last step, the
task finished."""

MANY_STEPS = """
WITH input AS (
    SELECT * FROM unnest($step_ids::bigint[], $leases::text[], $results::text[],
                         $metadata::text[]) AS i(step_id, lease, results, metadata)
), task_lock AS (
    -- Every task of the batch, in id order, before any step row.
    SELECT t.id FROM tasker_tasks t
     WHERE t.id = ANY(ARRAY(SELECT ws.task_id FROM tasker_workflow_steps ws
                             WHERE ws.id = ANY($step_ids::bigint[])))
     ORDER BY t.id
       FOR NO KEY UPDATE
), done AS (
    -- Addressed by ctid, as the one-step COMPLETE: a row changed concurrently (cancel, lease
    -- reaped) has a new ctid, fails the re-check and is discarded. `ARRAY(... task_lock)` reads
    -- the whole CTE, so every task is locked (EXISTS would stop at the first). The status
    -- test is wrapped in IS TRUE so that no plan can serve it from a status index (which
    -- walks every running step: pg_store.py's docstring); the rows come by ctid or key.
    UPDATE tasker_workflow_steps ws
       SET status = $done_to::text, results = i.results::jsonb, completed_at = $now,
           updated_at = $now, lease_owner = NULL, lease_expires_at = NULL
      FROM input i
     WHERE ws.ctid = ANY(ARRAY(SELECT ctid FROM tasker_workflow_steps
                                WHERE id = ANY($step_ids::bigint[])))
       AND ws.id = i.step_id AND (ws.status = $done_from::text) IS TRUE
       AND ws.lease_owner = i.lease
       AND ws.task_id = ANY(ARRAY(SELECT id FROM task_lock))
 RETURNING ws.id, ws.task_id, ws.name, i.metadata
), hits AS (
    SELECT e.to_step_id AS id, count(*)::int AS n, min(e.from_step_id) AS first_parent
      FROM tasker_step_edges e JOIN done d ON e.from_step_id = d.id
     GROUP BY e.to_step_id
), children AS (
    UPDATE tasker_workflow_steps c
       SET waiting_on = c.waiting_on - h.n,
           dispatched_at = CASE WHEN c.waiting_on = h.n AND c.status = $ready_state::text
                                THEN $now ELSE c.dispatched_at END
      FROM hits h
     WHERE c.id = h.id
 RETURNING c.id, c.waiting_on, c.status, h.first_parent, c.flow IS NOT NULL AS limited
), per_task AS (
    SELECT task_id AS id, count(*)::int AS n FROM done GROUP BY task_id
), task AS (
    -- A child task is finished by the general path instead (`PgStore._settle`).
    UPDATE tasker_tasks t
       SET remaining = t.remaining - p.n,
           status = CASE WHEN t.remaining = p.n AND t.parent_task_id IS NULL
                         AND t.status = $finish_from::text
                         THEN $finish_to::text ELSE t.status END,
           completed_at = CASE WHEN t.remaining = p.n AND t.parent_task_id IS NULL
                         AND t.status = $finish_from::text
                               THEN $now ELSE t.completed_at END,
           updated_at = CASE WHEN t.remaining = p.n AND t.parent_task_id IS NULL
                         AND t.status = $finish_from::text
                             THEN $now ELSE t.updated_at END
      FROM per_task p
     WHERE t.id = p.id
 RETURNING t.id, t.remaining, t.status
), history AS (
    -- Joined to `task`: ids are drawn once the task rows are written (under their locks).
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT d.task_id, d.id, d.name, $done_from::text, $done_to::text, 'completed',
           d.metadata::jsonb, $now
      FROM done d JOIN task t ON t.id = d.task_id
     ORDER BY d.task_id, d.id
 RETURNING id, step_id
), finished_history AS (
    -- After every `completed` row (the count reads all of `history`): a task's last event
    -- is the one that finishes it.
    INSERT INTO tasker_transitions
           (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
    SELECT id, NULL, NULL, $finish_from::text, $finish_to::text, 'all steps done', '{}'::jsonb,
           $now
      FROM task WHERE remaining = 0 AND status = $finish_to::text
       AND (SELECT count(*) FROM history) > 0
 RETURNING id, task_id
)"""
"""The bulk completion's CTEs: `done` (the steps), `children`, `task` (each task's row after
the batch), their history."""

MANY_COLUMNS = """
SELECT d.id AS step_id, h.id AS cursor, t.remaining, f.id AS finished_cursor,
       ARRAY(SELECT c.id FROM children c
              WHERE c.first_parent = d.id AND c.waiting_on = 0
                AND c.status = $ready_state::text ORDER BY c.id) AS ready,
       ARRAY(SELECT c.id FROM children c
              WHERE c.first_parent = d.id AND c.waiting_on = 0 AND c.limited
                AND c.status = $ready_state::text) AS ready_limited"""
"""One row per completed step (`write_many` reads them), up to its FROM clause."""

MANY_FROM = """
  FROM done d JOIN history h ON h.step_id = d.id JOIN task t ON t.id = d.task_id
  LEFT JOIN finished_history f ON f.task_id = d.task_id
"""

COMPLETE_MANY = MANY_STEPS + MANY_COLUMNS + MANY_FROM

COMPLETE_MANY_STATEMENT = Statement(
    COMPLETE_MANY,
    args=("step_ids", "leases", "results", "metadata", "now"),
    moves=COMPLETE_MOVES,
    states={"ready_state": _S.PENDING},
)


def next_to_run(ready: Sequence[int], limited: Collection[int] | None) -> Recorded:
    """A completion that made `ready` ready (those of `limited` have limits): the first one
    is the caller's to run next."""
    if not ready:
        return Recorded("complete")
    return Recorded("complete", ready[0], next_limited=ready[0] in (limited or ()))


async def complete_many(
    changes: StateChanges, attempts: Sequence[tuple[Claim, str]]
) -> tuple[list[Recorded], list[TaskRef]]:
    """Complete these steps (results already JSON) in one statement; one answer per attempt,
    and the tasks whose steps are all done but which the statement did not finish (the
    caller settles them under the task lock)."""
    recorded, unsettled, _ = await write_many(changes, attempts, COMPLETE_MANY_STATEMENT)
    return recorded, unsettled


async def write_many(
    changes: StateChanges,
    attempts: Sequence[tuple[Claim, str]],
    statement: Statement,
    *extra: Any,
) -> tuple[list[Recorded], list[TaskRef], list[dict[str, Any]]]:
    """`complete_many` with a statement made of its parts (`extra`: the values of its
    arguments after the bulk completion's), also returning the statement's rows."""
    now = changes.clock.now()
    rows = await Tortoise.get_connection("default").execute_query_dict(
        statement.sql,
        statement.values(
            [c.step_id for c, _ in attempts],
            [c.lease_owner for c, _ in attempts],
            [encoded for _, encoded in attempts],
            [json.dumps({"attempt": c.attempt}) for c, _ in attempts],
            now,
            *extra,
        ),
    )
    by_step: dict[int, dict[str, Any]] = {int(r["step_id"]): r for r in rows}
    notes: list[Note] = []
    recorded: list[Recorded] = []
    unsettled: dict[Any, TaskRef] = {}
    finished: set[int] = set()
    effects = Effects(now)
    for claim, _ in attempts:
        row = by_step.get(claim.step_id)
        if row is None:
            recorded.append(Recorded("discarded"))
            continue
        cursor = row["finished_cursor"]
        # The batch's steps of one task share the task's finish: it is noted once.
        notes += completion_notes(claim, int(row["cursor"]), None if cursor in finished else cursor)
        if cursor is not None:  # the batch finished the task
            finished.add(cursor)
        elif int(row["remaining"]) == 0:
            # All steps done but the task was not running (e.g. reopened from error).
            unsettled[claim.task.id] = claim.task
        ready: list[int] = list(row["ready"] or [])
        effects.dispatch_after_commit(
            ready[1:],
            priority=claim.task.priority or DEFAULT_PRIORITY,
            limited=row["ready_limited"],
        )
        recorded.append(next_to_run(ready, row["ready_limited"]))
    for note in sorted(notes, key=_cursor):
        note.write(effects)
    changes.after_commit(effects)
    return recorded, list(unsettled.values()), rows


class Note(NamedTuple):
    """A history row a completion wrote, to be noted after commit."""

    cursor: int
    task: TaskRef
    step_id: int | None
    step_name: str | None
    source: str
    target: str
    reason: str

    def write(self, effects: Effects) -> None:
        """Note it in these effects."""
        effects.note(
            self.task, self.step_id, self.step_name, self.source, self.target, self.reason,
            self.cursor,
        )  # fmt: skip


def completion_notes(claim: Claim, cursor: int, finished_cursor: int | None) -> list[Note]:
    """The history of a completion: the step's move and, when it finished the task (a
    `finished_cursor`), the task's."""
    notes = [
        Note(cursor, claim.task, claim.step_id, claim.step_name, DONE.source, DONE.target,
             "completed"),
    ]  # fmt: skip
    if finished_cursor is not None:
        notes.append(
            Note(finished_cursor, claim.task, None, None, FINISH.source, FINISH.target,
                 "all steps done"),
        )  # fmt: skip
    return notes


def completion_effects(claim: Claim, row: Mapping[str, Any], now: datetime) -> Effects:
    """The effects of one step's completion row (`pg_sql.COMPLETED_ROW`): its history, in the
    order it was written; the caller adds the dispatches."""
    effects = Effects(now)
    for note in completion_notes(claim, int(row["cursor"]), row["finished_cursor"]):
        note.write(effects)
    return effects


def _cursor(note: Note) -> int:
    return note.cursor
