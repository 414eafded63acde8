"""The safety net for map items, as `server.engine.sweeper` is for steps: items of dead workers
or with expired leases go down the retry path, and items whose message was lost are sent again.

Only items of a step still waiting for them are re-sent: those of a cancelled or failed map
step stay where they are, and no message is spent on them.
"""

from datetime import datetime, timedelta

from tortoise.expressions import Q

from server.db.models import StepItem, WorkflowStep
from server.domain.states import StepState
from server.engine.awaiting import AWAITING_ITEMS
from server.engine.changes import StateChanges, TaskRef
from server.engine.map_items import ItemClaim, MapItems
from server.engine.map_slots import item_message
from server.engine.store import Claim, Outcome, lease_holder
from server.engine.workers import WorkerRegistry

_S = StepState


async def reap_items(
    items: MapItems, workers: WorkerRegistry, now: datetime, dead_after: timedelta, batch: int
) -> int:
    """Record a lost attempt for each running item whose lease expired or whose worker died."""
    running: list[tuple[int, str | None, datetime | None]] = await (
        StepItem.filter(status=_S.IN_PROGRESS.value)
        .limit(batch * 4)
        .values_list("id", "lease_owner", "lease_expires_at")
    )
    holders = {lease_holder(lease) for _, lease, _ in running if lease}
    dead = await workers.dead_among(holders, dead_after)
    lost = [
        i
        for i, lease, expires in running
        if (expires is not None and expires < now) or (lease and lease_holder(lease) in dead)
    ]
    taken = 0
    for row in await StepItem.filter(id__in=lost[:batch]).select_related("step__task"):
        step, task = row.step, row.step.task
        claim = Claim(
            step_id=step.id,
            step_name=step.name,
            task=TaskRef(task.id, task.namespace),
            handler_name=task.name,
            handler_version=task.version,
            handler_class=step.handler_class,
            attempt=row.attempts,
            retry_limit=step.retry_limit,
            retryable=step.retryable,
            timeout=step.timeout_seconds or 0,
            inputs=None,
            context=None,
            parent_results={},
            lease_owner=row.lease_owner or "",
        )
        limit = items.limit_of(task.namespace, task.name, task.version, step.name)
        held = ItemClaim(row.id, row.idx, None, claim, limit)
        result, next_id = await items.record(
            held, Outcome(error="worker lost", error_class="WorkerLost")
        )
        if result != "discarded":
            taken += 1
        if isinstance(next_id, int):
            items.changes.send([item_message(next_id)])
    return taken


async def resend_items(changes: StateChanges, cutoff: datetime, now: datetime, batch: int) -> int:
    """Send again the items sent a window ago and still not claimed, and the due retries."""
    waiting = Q(step__status=_S.IN_PROGRESS.value, dispatched_at__lt=cutoff)
    stale = Q(status=_S.PENDING.value) | Q(status=_S.ERROR.value, next_attempt_at__lt=cutoff)
    ids: list[int] = await (  # type: ignore[assignment]
        StepItem.filter(waiting, stale).limit(batch).values_list("id", flat=True)
    )
    if ids:
        await StepItem.filter(id__in=ids).update(dispatched_at=now)
        changes.send([item_message(i) for i in ids])
    return len(ids)


async def settle_idle_maps(items: MapItems, batch: int) -> int:
    """Waiting map steps with no item in flight (none running, sent or backing off): complete
    those whose items all are, send the next items of the others. A worker lost between an
    item's completion and that settling (`PgMapItems.record`) leaves such a step."""
    waiting = await (
        WorkflowStep.filter(
            status=_S.IN_PROGRESS.value, lease_owner__startswith=f"{AWAITING_ITEMS}/"
        )
        .limit(batch)
        .values_list("id", "name", "task_id", "task__namespace", "task__name", "task__version")
    )
    settled = 0
    for step_id, name, task_id, namespace, handler, version in waiting:
        in_flight = (
            Q(status=_S.IN_PROGRESS.value)
            | Q(status=_S.PENDING.value, dispatched_at__not_isnull=True)
            | Q(status=_S.ERROR.value, next_attempt_at__not_isnull=True)
        )
        if await StepItem.filter(in_flight, step_id=step_id).exists():
            continue
        limit = items.limit_of(namespace, handler, version, name)
        settled += await items.settle(TaskRef(task_id, namespace), step_id, name, limit)
    return settled
