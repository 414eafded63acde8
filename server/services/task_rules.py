"""The rules of cancelling and retrying a task, applied inside a transaction that holds the
task's lock: one place for the single commands (`tasks`) and the bulk ones (`bulk`)."""

from server.domain.errors import InvalidTransition
from server.domain.states import StepState, TaskState
from server.engine.changes import TaskRef, Transaction
from server.engine.progress import advance

_OPEN_STEP_STATES = (StepState.PENDING, StepState.IN_PROGRESS, StepState.ERROR)
"""Steps a task's cancellation cancels with it."""


async def cancel_in(tx: Transaction, ref: TaskRef, current: TaskState) -> bool:
    """The cancel rule, inside a transaction holding the task's lock (single and bulk cancel):
    the task and every unfinished step. False when it was cancelled already (idempotent);
    InvalidTransition once it has completed."""
    if current is TaskState.CANCELLED:
        return False
    if not await tx.move_task(
        ref,
        current,
        TaskState.CANCELLED,
        "cancelled",  # not a status: the history's reason
        completed_at=tx.now,
    ):
        raise InvalidTransition("task", current.value, TaskState.CANCELLED.value)
    for step_id, name, status in await tx.steps_in(ref.id, _OPEN_STEP_STATES):
        await tx.move_step(
            ref,
            step_id,
            name,
            status,
            StepState.CANCELLED,
            "task cancelled",
            lease_owner=None,
            lease_expires_at=None,
        )
    return True


async def retry_in(tx: Transaction, ref: TaskRef, current: TaskState) -> None:
    """The retry rule, inside a transaction holding the task's lock (single and bulk retry):
    the failed steps of an errored task run again; InvalidTransition for any other task."""
    if current is not TaskState.ERROR:
        raise InvalidTransition("task", current.value, TaskState.PENDING.value)
    for step_id, name, _ in await tx.steps_in(ref.id, [StepState.ERROR]):
        await tx.move_step(
            ref,
            step_id,
            name,
            StepState.ERROR,
            StepState.PENDING,
            "retried",
            attempts=0,
            next_attempt_at=None,
            dispatched_at=None,
        )
    await advance(tx, ref, current)
