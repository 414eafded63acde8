"""Steps that wait without a worker: a `task:` step (or `step.start_task`) waiting for its child
task, and a map step waiting for its items.

Such a step stays `in_progress` (no new status: DESIGN §7), but its lease is handed from the
worker to a marker, `<kind>/<what it waits for>`, with no expiry. No worker writes heartbeats
under those names, so neither the dead-worker sweep nor the lease reaper takes the step back,
and no worker thread is held. The step is completed or failed later through the one door
(`Transaction.move_step` with `held_by=` the marker), in the transaction that finishes what it
waits for.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from server.db.models import StepEdge, Task, WorkflowStep
from server.db.rows import json_text
from server.domain.states import StepState, TaskState
from server.engine.changes import TaskRef, Transaction
from server.engine.store import Claim

AWAITING_CHILD = "awaiting-child"
AWAITING_ITEMS = "awaiting-items"

CHILD_FAILED = "CHILD_TASK_FAILED"

Advance = Callable[[Transaction, TaskRef, TaskState], Awaitable[TaskState]]


def child_lease(child_id: UUID | str) -> str:
    """The lease a step holds while its child task runs."""
    return f"{AWAITING_CHILD}/{child_id}"


def is_waiting_lease(lease: str | None) -> bool:
    """True for a lease that no worker holds: the step waits for a child task or its items."""
    return bool(lease) and str(lease).split("/", 1)[0] in (AWAITING_CHILD, AWAITING_ITEMS)


async def hand_over(tx: Transaction, claim: Claim, lease: str) -> bool:
    """Move the worker's lease on the claimed step to `lease` (compare-and-set on the worker's
    lease; False when it was lost meanwhile). The step stays in_progress."""
    changed = await (
        WorkflowStep.filter(
            id=claim.step_id, status=StepState.IN_PROGRESS.value, lease_owner=claim.lease_owner
        )
        .using_db(tx.conn)
        .update(lease_owner=lease, lease_expires_at=None, updated_at=tx.now)
    )
    return changed == 1


async def leaf_results(tx: Transaction, task_id: UUID) -> dict[str, Any]:
    """The results of a task's leaf steps (no step depends on them), by step name."""
    rows = (
        await WorkflowStep.filter(task_id=task_id).using_db(tx.conn).values("id", "name", "results")
    )
    parents = set(
        await StepEdge.filter(task_id=task_id)
        .using_db(tx.conn)
        .values_list("from_step_id", flat=True)
    )
    return {r["name"]: r["results"] for r in rows if r["id"] not in parents}


async def settle_parent(
    tx: Transaction, child_id: UUID, outcome: TaskState, advance: Advance
) -> None:
    """A task just finished: if a step of another task waits for it, complete that step with
    the child's leaf results (or fail it), under the parent task's lock, in this transaction.

    A parent step that failed because the child had failed is reopened when the child, retried,
    completes: it runs again, finds the child complete and completes with its results.
    """
    rows = await (
        Task.filter(id=child_id).using_db(tx.conn).values_list("parent_task_id", "parent_step")
    )
    if not rows or rows[0][0] is None:
        return
    parent_id, step_name = rows[0]
    parent = await tx.locked_task_row(parent_id, "namespace")
    step = await (
        WorkflowStep.filter(task_id=parent_id, name=step_name)
        .using_db(tx.conn)
        .only("id", "name", "status", "lease_owner", "next_attempt_at")
        .first()
    )
    if parent is None or step is None:
        return
    ref, status = TaskRef(parent.id, parent.namespace), TaskState(parent.status)
    await settle_step(tx, ref, status, step, child_id, outcome, advance)


async def settle_step(
    tx: Transaction,
    ref: TaskRef,
    status: TaskState,
    step: WorkflowStep,
    child_id: UUID,
    outcome: TaskState,
    advance: Advance,
) -> None:
    """`settle_parent` once the parent is locked and its step read."""
    lease = child_lease(child_id)
    current = StepState(step.status)
    waiting = current is StepState.IN_PROGRESS and step.lease_owner == lease
    if outcome is TaskState.COMPLETE and waiting:
        results = await leaf_results(tx, child_id)
        moved = await tx.move_step(
            ref, step.id, step.name, current, StepState.COMPLETE, "child task complete",
            {"child_task_id": str(child_id)}, held_by=lease, results=json_text(results),
            completed_at=tx.now, lease_owner=None, lease_expires_at=None,
        )  # fmt: skip
    elif outcome is TaskState.COMPLETE and current is StepState.ERROR:
        moved = await tx.move_step(
            ref, step.id, step.name, current, StepState.PENDING, "child task retried",
            {"child_task_id": str(child_id)}, attempts=0, next_attempt_at=None,
            dispatched_at=None,
        )  # fmt: skip
    elif outcome is not TaskState.COMPLETE and waiting:
        moved = await fail_waiting(tx, ref, step, lease, child_id, outcome, tx.now)
    else:
        return
    if moved:
        await advance(tx, ref, status)


async def fail_waiting(
    tx: Transaction,
    ref: TaskRef,
    step: WorkflowStep,
    lease: str,
    child_id: UUID,
    outcome: TaskState,
    now: datetime,
) -> bool:
    """Fail, for good, a step waiting on a child task that ended in error or was cancelled."""
    error = f"child task {child_id} ended {outcome.value}"
    return await tx.move_step(
        ref, step.id, step.name, StepState.IN_PROGRESS, StepState.ERROR, "failed",
        {"child_task_id": str(child_id), "error": error, "error_class": CHILD_FAILED},
        held_by=lease, last_error=error, error_class=CHILD_FAILED, next_attempt_at=None,
        completed_at=now, lease_owner=None, lease_expires_at=None,
    )  # fmt: skip
