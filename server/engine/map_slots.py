"""Slots of a map step: which items to send next (never past `max_parallel`, in input order)
and completing the step once every item is complete. Every function runs in a transaction
that holds the task's row lock (`server.engine.map_items`)."""

from collections.abc import Callable
from typing import Any

from tortoise.expressions import Q

from server.db.models import StepItem, Transition, WorkflowStep
from server.db.rows import json_text
from server.domain.states import StepState, TaskState
from server.engine.awaiting import AWAITING_ITEMS
from server.engine.changes import TaskRef, Transaction
from server.engine.progress import advance

_S = StepState


def items_lease(step_id: int) -> str:
    """The lease a map step holds while its items run."""
    return f"{AWAITING_ITEMS}/{step_id}"


def item_message(item_id: int) -> int:
    """The id an item's message carries on the step queue (minus the item's id)."""
    return -item_id


async def item_moved(
    tx: Transaction,
    task: TaskRef,
    step: tuple[int, str],
    moves: list[tuple[int, int, str, str, str]],
    **metadata: Any,
) -> None:
    """Append the history rows of item moves of one map step (its (id, name)): each
    (index, attempt, from, to, reason), with `metadata` besides the index and attempt. No
    event is published for them: subscribers follow the task's own moves
    (`server.domain.item_moves`)."""
    await Transition.bulk_create(
        [
            Transition(
                task_id=task.id,
                step_id=step[0],
                step_name=step[1],
                from_status=source,
                to_status=target,
                reason=reason,
                metadata={"item": index, "attempt": attempt, **metadata},
                created_at=tx.now,
            )
            for index, attempt, source, target, reason in moves
        ],
        using_db=tx.conn,
    )


def send_after_commit(tx: Transaction, ids: list[int]) -> None:
    """Send these items' messages once the transaction commits."""
    tx.dispatch_after_commit([item_message(i) for i in ids])


_UNFINISHED = [_S.PENDING.value, _S.IN_PROGRESS.value, _S.ERROR.value]
"""Item states short of complete, named so that lookups stay on the (step_id, status) index
(`status <> 'complete'` would read every complete item of a long map, on every record)."""


async def _busy(tx: Transaction, step_id: int) -> int:
    """Slots taken: items in progress, sent and not yet claimed, or backing off."""
    taken = (
        Q(status=_S.IN_PROGRESS.value)
        | Q(status=_S.PENDING.value, dispatched_at__not_isnull=True)
        | Q(status=_S.ERROR.value, next_attempt_at__not_isnull=True)
    )
    return await StepItem.filter(taken, step_id=step_id).using_db(tx.conn).count()


async def fill_slots(tx: Transaction, step_id: int, limit: int) -> list[int]:
    """Stamp and return the next items to send, in input order, up to the free slots."""
    free = limit - await _busy(tx, step_id)
    if free <= 0:
        return []
    ids: list[int] = await (  # type: ignore[assignment]
        StepItem.filter(step_id=step_id, status=_S.PENDING.value, dispatched_at__isnull=True)
        .using_db(tx.conn)
        # The (step_id, status, dispatched_at, idx) index's own order (the same as by idx
        # here): on a table not analyzed yet PostgreSQL otherwise took the status index and
        # sorted every pending item of every map step.
        .order_by("status", "dispatched_at", "idx")
        .limit(free)
        .values_list("id", flat=True)
    )
    if ids:
        await StepItem.filter(id__in=ids).using_db(tx.conn).update(dispatched_at=tx.now)
    return ids


async def waits_for_items(tx: Transaction, step_id: int) -> bool:
    """Whether the map step still waits for its items (not failed, cancelled or complete)."""
    return await (
        WorkflowStep.filter(
            id=step_id, status=_S.IN_PROGRESS.value, lease_owner=items_lease(step_id)
        )
        .using_db(tx.conn)
        .exists()
    )


async def finish_if_done(tx: Transaction, task: TaskRef, status: TaskState, step: Any) -> bool:
    """Complete the map step with its items' results in input order once every item is
    complete; True when it did."""
    if (
        await StepItem.filter(step_id=step.id)
        .using_db(tx.conn)
        .filter(status__not=_S.COMPLETE.value)
        .exists()
    ):
        return False
    results = await (
        StepItem.filter(step_id=step.id)
        .using_db(tx.conn)
        .order_by("idx")
        .values_list("results", flat=True)
    )
    moved = await tx.move_step(
        task, step.id, step.name, _S.IN_PROGRESS, _S.COMPLETE, "items complete",
        {"items": len(results)}, held_by=items_lease(step.id), results=json_text(list(results)),
        completed_at=tx.now, lease_owner=None, lease_expires_at=None,
    )  # fmt: skip
    if moved:
        await advance(tx, task, status)
    return moved


async def resume_items(
    tx: Transaction, task_ids: list[Any], limit_of: Callable[[str, str, str, str], int]
) -> int:
    """Send again the items of these tasks' waiting map steps once they are no longer paused:
    those sent and refused while paused, the due retries, then the free slots' next items (no
    item started while paused, so no record refilled them)."""
    steps = await (
        WorkflowStep.filter(
            task_id__in=task_ids,
            status=_S.IN_PROGRESS.value,
            lease_owner__startswith=f"{AWAITING_ITEMS}/",
            task__paused_at__isnull=True,
            task__handler_paused_at__isnull=True,
        )
        .using_db(tx.conn)
        .values_list("id", "name", "task__namespace", "task__name", "task__version")
    )
    sent = 0
    for step_id, name, namespace, handler, version in steps:
        again = Q(status=_S.PENDING.value, dispatched_at__not_isnull=True) | Q(
            status=_S.ERROR.value, next_attempt_at__lte=tx.now
        )
        ids: list[int] = await (  # type: ignore[assignment]
            StepItem.filter(again, step_id=step_id).using_db(tx.conn).values_list("id", flat=True)
        )
        ids += await fill_slots(tx, step_id, limit_of(namespace, handler, version, name))
        send_after_commit(tx, ids)
        sent += len(ids)
    return sent
