"""The same moves as `Transaction.move_task` / `move_step`, for many rows in a few statements.

A cancel of one four-step task was about 24 statements (lock, the task's move and history row,
then per step its move, history row and readiness counters); a bulk cancel of 1,000 tasks
took over 10 s. Here a chunk of tasks is locked in one statement, and each kind of write
(status, history, counters) is one statement for the whole chunk. The rules are the
single-row ones: the allowed-move table is checked, every move has its history row and event,
a step that becomes done is counted in its children's `waiting_on` and its task's `remaining`.

Callers hold the tasks' row locks (`lock_tasks`), so the statuses they read stay true until
commit: every writer of a task's steps takes the task's lock first.
"""

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tortoise.expressions import F

from server.db.bulk import insert_rows
from server.db.models import StepEdge, Task, Transition, WorkflowStep
from server.domain.states import (
    DONE_STEP_STATES,
    StepState,
    TaskState,
    check_step_move,
    check_task_move,
)
from server.engine.changes import TaskRef, Transaction


@dataclass(frozen=True, slots=True)
class StepRow:
    """An open step of a locked task, as read under its lock."""

    task: TaskRef
    id: int
    name: str
    status: StepState


async def lock_tasks(tx: Transaction, task_ids: Sequence[UUID]) -> dict[UUID, TaskState]:
    """Lock these tasks' rows in id order (one statement) and return their statuses; a task
    that does not exist is left out. Id order: two bulk actions never wait on each other in
    a cycle."""
    rows = (
        await Task.filter(id__in=list(task_ids))
        .select_for_update()
        .order_by("id")
        .using_db(tx.conn)
        .only("id", "status")
    )
    return {row.id: TaskState(row.status) for row in rows}


async def open_steps(
    tx: Transaction, tasks: Sequence[TaskRef], states: Sequence[StepState]
) -> list[StepRow]:
    """The steps of these tasks in these states (one statement)."""
    by_id = {t.id: t for t in tasks}
    rows = (
        await WorkflowStep.filter(task_id__in=list(by_id), status__in=[s.value for s in states])
        .using_db(tx.conn)
        .order_by("id")
        .values_list("task_id", "id", "name", "status")
    )
    return [
        StepRow(by_id[_uuid(task_id)], step_id, name, StepState(status))
        for task_id, step_id, name, status in rows
    ]


async def move_tasks(
    tx: Transaction,
    tasks: Sequence[tuple[TaskRef, TaskState]],
    target: TaskState,
    reason: str,
    **fields: Any,
) -> None:
    """Move each task from its (locked) status to `target`, with its history row."""
    by_status: dict[TaskState, list[UUID]] = defaultdict(list)
    for ref, current in tasks:
        check_task_move(current, target)
        by_status[current].append(ref.id)
    for current, ids in by_status.items():
        await (
            Task.filter(id__in=ids, status=current.value)
            .using_db(tx.conn)
            .update(status=target.value, updated_at=tx.now, **fields)
        )
    await _history(tx, [(ref, None, None, current.value) for ref, current in tasks], target, reason)


async def move_steps(
    tx: Transaction, steps: Sequence[StepRow], target: StepState, reason: str, **fields: Any
) -> None:
    """Move each step from its status to `target`, with its history row; a step that becomes
    done is counted (its children wait on one parent fewer, its task needs one step fewer)."""
    by_status: dict[StepState, list[int]] = defaultdict(list)
    for step in steps:
        check_step_move(step.status, target)
        by_status[step.status].append(step.id)
    for current, ids in by_status.items():
        await (
            WorkflowStep.filter(id__in=ids, status=current.value)
            .using_db(tx.conn)
            .update(status=target.value, updated_at=tx.now, **fields)
        )
    await _history(tx, [(s.task, s.id, s.name, s.status.value) for s in steps], target, reason)
    if target in DONE_STEP_STATES:
        await _count_done(tx, steps)


async def _count_done(tx: Transaction, steps: Sequence[StepRow]) -> None:
    """`Transaction._count_done` for many steps: one decrement statement per distinct amount."""
    children = Counter(
        await StepEdge.filter(from_step_id__in=[s.id for s in steps])
        .using_db(tx.conn)
        .values_list("to_step_id", flat=True)
    )
    for amount, ids in _by_amount(children).items():
        await (
            WorkflowStep.filter(id__in=ids)
            .using_db(tx.conn)
            .update(waiting_on=F("waiting_on") - amount)
        )
    per_task = Counter(s.task.id for s in steps)
    for amount, task_ids in _by_amount(per_task).items():
        await (
            Task.filter(id__in=task_ids).using_db(tx.conn).update(remaining=F("remaining") - amount)
        )


async def _history(
    tx: Transaction,
    moves: Sequence[tuple[TaskRef, int | None, str | None, str]],
    target: TaskState | StepState,
    reason: str,
) -> None:
    """One history row per move (one statement), each queued as an event in cursor order."""
    rows: list[dict[str, Any]] = [
        {
            "task_id": ref.id,
            "step_id": step_id,
            "step_name": name,
            "from_status": source,
            "to_status": target.value,
            "reason": reason,
            "metadata": {},
            "created_at": tx.now,
        }
        for ref, step_id, name, source in moves
    ]
    written = await insert_rows(tx.conn, Transition, rows, ("id", "task_id", "step_id"))
    cursor = {(_uuid(r["task_id"]), r["step_id"]): int(r["id"]) for r in written}
    noted = sorted(((cursor[(ref.id, step_id)], ref, step_id, name, source)
                    for ref, step_id, name, source in moves), key=lambda m: m[0])  # fmt: skip
    for at, ref, step_id, name, source in noted:
        tx.note(ref, step_id, name, source, target.value, reason, at)


def _by_amount(counts: Counter[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for key, amount in counts.items():
        grouped[amount].append(key)
    return grouped


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
