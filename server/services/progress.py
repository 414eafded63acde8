"""Incremental readiness and exactly-once finalization of one task.

`advance` runs inside the unit of work that just changed a step: it reads the task's steps once,
dispatches the pending steps whose parents are now all done, and moves the task to its final
state when nothing else can make progress. The task row is locked first (see `lock_task`), so
concurrent completions in one task are serialised and finalization happens exactly once.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from tortoise.expressions import F

from server.db.models import StepEdge, Task, WorkflowStep
from server.domain.readiness import StepSnapshot, doomed_steps, is_failed_for_good
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.services.transitions import TaskRef, UnitOfWork


@dataclass(frozen=True, slots=True)
class _Step:
    id: int
    snap: StepSnapshot
    dispatched_at: datetime | None


async def _load(uow: UnitOfWork, task_id: UUID) -> list[_Step]:
    rows = await (
        WorkflowStep.filter(task_id=task_id)
        .using_db(uow.conn)
        .values("id", "name", "status", "next_attempt_at", "dispatched_at", "last_error")
    )
    edges = (
        await StepEdge.filter(task_id=task_id)
        .using_db(uow.conn)
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


async def count_done(uow: UnitOfWork, task: TaskRef, step_id: int) -> None:
    """A step just became complete or resolved: its children wait on one parent fewer and the
    task needs one step fewer (the readiness counters the PostgreSQL fast path relies on)."""
    children = (
        await StepEdge.filter(from_step_id=step_id)
        .using_db(uow.conn)
        .values_list("to_step_id", flat=True)
    )
    if children:
        await (
            WorkflowStep.filter(id__in=list(children))
            .using_db(uow.conn)
            .update(waiting_on=F("waiting_on") - 1)
        )
    await Task.filter(id=task.id).using_db(uow.conn).update(remaining=F("remaining") - 1)


async def advance(uow: UnitOfWork, task: TaskRef, status: TaskState) -> TaskState:
    """Dispatch newly ready steps and finalize the task if it is done; returns its new status.

    `status` is the task's status as read under the lock (`UnitOfWork.lock_task`).
    """
    if status not in (TaskState.PENDING, TaskState.IN_PROGRESS, TaskState.ERROR):
        return status
    steps = await _load(uow, task.id)
    snaps = {s.snap.name: s.snap for s in steps}
    done = {n for n, s in snaps.items() if s.status in DONE_STEP_STATES}
    doomed = doomed_steps(snaps)

    ready = [
        s.id
        for s in steps
        if s.snap.status is StepState.PENDING
        and s.dispatched_at is None
        and all(p in done for p in s.snap.parents)
    ]
    if ready:
        await WorkflowStep.filter(id__in=ready).using_db(uow.conn).update(dispatched_at=uow.now)
        uow.nudge(ready)

    progressing = any(
        s.status is StepState.IN_PROGRESS
        or (s.status is StepState.PENDING and s.name not in doomed)
        or (s.status is StepState.ERROR and s.next_attempt_at is not None and s.name not in doomed)
        for s in snaps.values()
    )
    all_done = len(done) == len(snaps)
    if status is TaskState.ERROR and (progressing or all_done):
        await uow.move_task(task, status, TaskState.PENDING, "reopened")
        status = TaskState.PENDING
    if all_done:
        await uow.move_task(
            task, status, TaskState.COMPLETE, "all steps done", completed_at=uow.now
        )
        return TaskState.COMPLETE
    if progressing or status is TaskState.ERROR:
        return status
    failed = sorted(n for n, s in snaps.items() if is_failed_for_good(s))
    if failed:
        await uow.move_task(
            task,
            status,
            TaskState.ERROR,
            "step failed",
            {"failed_steps": failed},
            completed_at=uow.now,
        )
        return TaskState.ERROR
    cancelled = sorted(n for n, s in snaps.items() if s.status is StepState.CANCELLED)
    await uow.move_task(
        task,
        status,
        TaskState.CANCELLED,
        "step cancelled",
        {"cancelled_steps": cancelled},
        completed_at=uow.now,
    )
    return TaskState.CANCELLED
