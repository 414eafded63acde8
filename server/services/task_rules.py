"""The rules of cancelling and retrying a task, applied inside a transaction that holds the
task's lock: one place for the single commands (`tasks`) and the bulk ones (`bulk`)."""

from collections.abc import Sequence

from server.domain.errors import InvalidTransition
from server.domain.states import StepState, TaskState, can_move_task
from server.engine import bulk_moves
from server.engine.changes import TaskRef, Transaction
from server.engine.progress import advance

_OPEN_STEP_STATES = (StepState.PENDING, StepState.IN_PROGRESS, StepState.ERROR)
"""Steps a task's cancellation cancels with it."""
CANCELLABLE = frozenset(s for s in TaskState if can_move_task(s, TaskState.CANCELLED))
"""Task states a cancel may move from (the allowed-move table's)."""


async def cancel_in(tx: Transaction, ref: TaskRef, current: TaskState) -> bool:
    """The cancel rule, inside a transaction holding the task's lock (single and bulk cancel):
    the task and every unfinished step. False when it was cancelled already (idempotent);
    InvalidTransition once it has completed."""
    if current is TaskState.CANCELLED:
        return False
    if current not in CANCELLABLE:
        raise InvalidTransition("task", current.value, TaskState.CANCELLED.value)
    await cancel_many(tx, [(ref, current)])
    return True


async def cancel_many(tx: Transaction, tasks: Sequence[tuple[TaskRef, TaskState]]) -> None:
    """Cancel these locked, cancellable tasks and their unfinished steps: a few statements for
    all of them (`bulk_moves`), whatever their number."""
    if not tasks:
        return
    await bulk_moves.move_tasks(
        tx,
        tasks,
        TaskState.CANCELLED,
        "cancelled",  # not a status: the history's reason
        completed_at=tx.now,
    )
    steps = await bulk_moves.open_steps(tx, [ref for ref, _ in tasks], _OPEN_STEP_STATES)
    await bulk_moves.move_steps(
        tx, steps, StepState.CANCELLED, "task cancelled", lease_owner=None, lease_expires_at=None
    )


async def retry_in(tx: Transaction, ref: TaskRef, current: TaskState) -> None:
    """The retry rule, inside a transaction holding the task's lock (single and bulk retry):
    the failed steps of an errored task run again; InvalidTransition for any other task."""
    if current is not TaskState.ERROR:
        raise InvalidTransition("task", current.value, TaskState.PENDING.value)
    failed = await bulk_moves.open_steps(tx, [ref], [StepState.ERROR])
    await bulk_moves.move_steps(
        tx,
        failed,
        StepState.PENDING,
        "retried",
        attempts=0,
        next_attempt_at=None,
        dispatched_at=None,
    )
    await advance(tx, ref, current)
