"""The cancel strategies of a handler's concurrency limit, applied when a task is created.

- `cancel_in_progress` (newest wins): the new task cancels the oldest active tasks of its key
  until at most `limit` remain, itself included;
- `cancel_newest` (oldest win): when `limit` tasks of the key are already active, the new task
  is cancelled at once, and the creation answers with it cancelled.

Either way the cancelled task and its open steps move to `cancelled` with history reason
`superseded` and metadata naming the task that won (`superseded_by`). The decision is taken
under the key's lock (an advisory lock on PostgreSQL), so two creations at once cannot both
see room; the freed slots go to the key's waiting steps in the same transaction.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

from server.db.models import Task
from server.domain.states import ACTIVE_TASK_STATES, StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import TaskView
from server.engine import limits
from server.engine.changes import StateChanges, TaskRef, Transaction
from server.services import queries

SUPERSEDED = "superseded"
"""The history reason of a task (and its steps) cancelled by a concurrency strategy."""
_OPEN_STEPS = (StepState.PENDING, StepState.IN_PROGRESS, StepState.ERROR)


AfterCancel = Callable[[Sequence[UUID]], Awaitable[None]]
"""What follows a committed cancellation (its unfinished children are cancelled too)."""


async def supersede(
    changes: StateChanges,
    template: HandlerTemplate,
    task: TaskView,
    after_cancel: AfterCancel | None = None,
) -> TaskView:
    """Apply the handler's cancel strategy to the new `task`; returns it as it now stands."""
    spec = template.concurrency
    assert spec is not None
    key = limits.handler_key(template, task.context) or ""
    scope = f"task:{template.namespace}/{template.name}"
    new = TaskRef(task.id, task.namespace)
    # Locks in the claim's order (the task row, then the key): no deadlock with a claim.
    async with changes.transaction() as tx:
        await tx.lock_task(task.id)
        await limits.lock_keys(tx, [f"{scope}|{key}"])
        others = await _active_others(tx, template, key, task.id)
        if spec.strategy == "cancel_newest" and len(others) >= spec.limit:
            await _cancel(tx, new, {"superseded_by": str(others[0][0])})
    if spec.strategy == "cancel_newest":
        return await queries.find_task(task.id) if tx.events else task
    # cancel_in_progress: the newest win. Each loser in a transaction of its own, as a cancel.
    surplus = len(others) + 1 - spec.limit
    for task_id, namespace in others[: max(surplus, 0)]:
        async with changes.transaction() as tx:
            cancelled = await _cancel(
                tx, TaskRef(task_id, namespace), {"superseded_by": str(task.id)}
            )
        if cancelled and after_cancel is not None:
            # As after any cancel: its unfinished children are cancelled, and a parent step
            # waiting for it (it was a child) fails.
            await after_cancel([task_id])
    if surplus > 0:
        async with changes.transaction() as tx:
            await limits.lock_keys(tx, [f"{scope}|{key}"])
            await limits.offer(tx, scope, key)
    return task


async def _active_others(
    tx: Transaction, template: HandlerTemplate, key: str, new_id: UUID
) -> list[tuple[UUID, str]]:
    """The other active tasks of the key, oldest first."""
    rows: list[tuple[UUID, str]] = await (
        Task.filter(
            namespace=template.namespace,
            name=template.name,
            concurrency_key=key,
            status__in=[s.value for s in ACTIVE_TASK_STATES],
        )
        .exclude(id=new_id)
        .using_db(tx.conn)
        .order_by("created_at", "id")
        .values_list("id", "namespace")
    )
    return rows


async def _cancel(tx: Transaction, task: TaskRef, metadata: dict[str, Any]) -> bool:
    """Cancel an active task and its open steps; False when it was not active any more."""
    current = await tx.lock_task(task.id)
    if current is None or current not in ACTIVE_TASK_STATES:
        return False
    moved = await tx.move_task(
        task, current, TaskState.CANCELLED, SUPERSEDED, metadata, completed_at=tx.now
    )
    if not moved:
        return False
    for step_id, name, status in await tx.steps_in(task.id, _OPEN_STEPS):
        await tx.move_step(
            task,
            step_id,
            name,
            status,
            StepState.CANCELLED,
            SUPERSEDED,
            metadata,
            lease_owner=None,
            lease_expires_at=None,
        )
    return True
