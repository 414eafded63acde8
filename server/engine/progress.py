"""Incremental readiness and exactly-once finalization of one task.

`advance` runs inside the transaction that just changed a step: it reads the task's steps once,
dispatches the pending steps whose parents are now all done (`readiness.is_ready`), and moves
the task as `readiness.task_moves` says when nothing else can make progress. The task row is
locked first (`Transaction.lock_task`), so concurrent completions in one task are serialised
and finalization happens exactly once.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from server.db.models import StepEdge, Task, WorkflowStep
from server.domain.readiness import StepSnapshot, has_started, is_ready, task_moves
from server.domain.states import StepState, TaskState
from server.engine.awaiting import settle_parent
from server.engine.changes import TaskRef, Transaction


@dataclass(frozen=True, slots=True)
class _Step:
    id: int
    snap: StepSnapshot
    dispatched_at: datetime | None


async def _load(tx: Transaction, task_id: UUID) -> list[_Step]:
    rows = await (
        WorkflowStep.filter(task_id=task_id)
        .using_db(tx.conn)
        .values("id", "name", "status", "next_attempt_at", "dispatched_at", "last_error")
    )
    edges = (
        await StepEdge.filter(task_id=task_id)
        .using_db(tx.conn)
        .values_list("from_step_id", "to_step_id")
    )
    names = {r["id"]: r["name"] for r in rows}
    parents: dict[int, list[str]] = {}
    for parent_id, child_id in edges:
        parents.setdefault(child_id, []).append(names[parent_id])
    return [
        _Step(
            r["id"],
            StepSnapshot(
                r["name"],
                StepState(r["status"]),
                r["next_attempt_at"],
                tuple(parents.get(r["id"], ())),
                r["last_error"],
            ),
            r["dispatched_at"],
        )
        for r in rows
    ]


async def advance(tx: Transaction, task: TaskRef, status: TaskState) -> TaskState:
    """Dispatch newly ready steps and finalize the task if it is done; returns its new status.

    `status` is the task's status as read under the lock (`Transaction.lock_task`).
    """
    if status not in (TaskState.PENDING, TaskState.IN_PROGRESS, TaskState.ERROR):
        return status
    steps = await _load(tx, task.id)
    status_of = {s.snap.name: s.snap.status for s in steps}
    ready = [s.id for s in steps if s.dispatched_at is None and is_ready(s.snap, status_of)]
    if ready:
        sent_at = tx.now
        if status is TaskState.PENDING:
            # Perhaps not started yet (a step resolved by hand before a delayed start): send
            # once, delayed until the start, stamped so that the sweeper waits too. Completions
            # in a running task (the hot path) skip this read.
            rows: list[datetime | None] = await (  # type: ignore[assignment]
                Task.filter(id=task.id).using_db(tx.conn).values_list("run_at", flat=True)
            )
            start = rows[0] if rows else None
            if start is not None and not has_started(start, tx.now):
                sent_at = start
        await WorkflowStep.filter(id__in=ready).using_db(tx.conn).update(dispatched_at=sent_at)
        delay = (sent_at - tx.now).total_seconds()
        tx.dispatch_after_commit(ready, delay, await task.lane(tx.conn))
    for move in task_moves(status, {s.snap.name: s.snap for s in steps}):
        stamp = {"completed_at": tx.now} if move.finishes else {}
        await tx.move_task(task, status, move.target, move.reason, move.metadata, **stamp)
        status = move.target
        if move.finishes:  # a step of a parent task may be waiting for this one
            await settle_parent(tx, task.id, status, advance)
    return status
