"""Map steps: a step with `map_over` runs its handler once per item of a list.

The step's claim resolves the list (`map_expand`), writes one `tasker_step_items` row per item
(once: a re-run finds them) and hands the step's lease to `awaiting-items/<step id>`
(`server.engine.awaiting`), so no worker is held while the items run. Items are claimed and
recorded like steps, each under its own lease and compare-and-set, each retried on its own.

At most `max_parallel` items of a step are in progress: an item's claim counts them under the
task's row lock (every item claim and record of a task takes it), and a slot is refilled by the
record that frees it. The record that completes the last item completes the step with the
items' results in input order; one that fails an item for good fails the step, and the items
not started then never start (an item is claimed only while its step waits for items). A
cancelled step stops them the same way.

Messages carry ids only: an item's message is minus its id on the step queue
(`item_message`), so losing or repeating one is as harmless as for a step.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from tortoise.expressions import F

from server.db.models import StepItem, WorkflowStep
from server.domain.item_moves import ITEM_CLAIMED, ITEM_COMPLETE, ITEM_FAILED, ITEM_RETRYING
from server.domain.readiness import CLAIMABLE_TASK_STATES
from server.domain.retry import BackoffPolicy, decide_retry
from server.domain.states import StepState, TaskState
from server.engine.changes import StateChanges, TaskRef, Transaction
from server.engine.map_slots import (
    fill_slots,
    finish_if_done,
    item_message,
    item_moved,
    items_lease,
    send_after_commit,
    waits_for_items,
)
from server.engine.progress import advance
from server.engine.store import Claim, ClaimRequest, Outcome

ITEM_FAILED_CODE = "ITEM_FAILED"
_PAUSE = ("paused_at", "handler_paused_at")
_S = StepState
LimitOf = Callable[[str, str, str, str], int]
"""The `max_parallel` of (namespace, handler name, version, step name)."""


@dataclass(frozen=True, slots=True)
class ItemClaim:
    """An item this worker holds the lease on, with the step claim its handler runs under."""

    item_id: int
    index: int
    item: Any
    claim: Claim
    limit: int


class MapItems:
    """Claims and records items; `server.engine.runner` runs their handler in between."""

    def __init__(self, changes: StateChanges, backoff: BackoffPolicy, limit_of: LimitOf) -> None:
        self.changes = changes
        self.backoff = backoff
        self.limit_of = limit_of

    async def claim(self, item_id: int, req: ClaimRequest) -> ItemClaim | None:
        """Compare-and-set the item to in_progress under a lease; None if it may not run now
        (not due, its step not waiting for items, its task not active, no free slot)."""
        async with self.changes.transaction() as tx:
            row = await StepItem.filter(id=item_id).using_db(tx.conn).first()
            if row is None:
                return None
            due = row.status == _S.PENDING.value or (
                row.status == _S.ERROR.value
                and row.next_attempt_at is not None
                and row.next_attempt_at <= tx.now
            )
            if not due:
                return None
            step = await WorkflowStep.filter(id=row.step_id).using_db(tx.conn).first()  # type: ignore[attr-defined]
            if step is None:
                return None
            fields = ("namespace", "name", "version", "context", "created_at", "run_at", *_PAUSE)
            task = await tx.locked_task_row(step.task_id, *fields)  # type: ignore[attr-defined]
            if task is None or TaskState(task.status) not in CLAIMABLE_TASK_STATES:
                return None
            if task.paused_at is not None or task.handler_paused_at is not None:
                return None  # a paused task starts no item; resuming sends them again
            if step.status != _S.IN_PROGRESS.value or step.lease_owner != items_lease(step.id):
                return None
            limit = self.limit_of(task.namespace, task.name, task.version, step.name)
            running = await (
                StepItem.filter(step_id=step.id, status=_S.IN_PROGRESS.value)
                .using_db(tx.conn)
                .count()
            )
            if running >= limit:
                return None  # the sweeper sends it again once a slot is free
            timeout = step.timeout_seconds or req.default_timeout
            changed = await (
                StepItem.filter(id=item_id, status=row.status)
                .using_db(tx.conn)
                .update(
                    status=_S.IN_PROGRESS.value,
                    attempts=F("attempts") + 1,
                    lease_owner=req.lease_owner,
                    lease_expires_at=tx.now + timedelta(seconds=timeout + req.lease_grace),
                    started_at=tx.now,
                    completed_at=None,
                    next_attempt_at=None,
                    updated_at=tx.now,
                )
            )
            if changed != 1:
                return None
            ref = TaskRef(task.id, task.namespace)
            move = (row.idx, row.attempts + 1, row.status, _S.IN_PROGRESS.value, ITEM_CLAIMED)
            await item_moved(tx, ref, (step.id, step.name), [move])
            parents = await (
                WorkflowStep.filter(child_edges__to_step_id=step.id)
                .using_db(tx.conn)
                .values_list("name", "results")
            )
            claim = Claim(
                step_id=step.id,
                step_name=step.name,
                task=ref,
                handler_name=task.name,
                handler_version=task.version,
                handler_class=step.handler_class,
                attempt=row.attempts + 1,
                retry_limit=step.retry_limit,
                retryable=step.retryable,
                timeout=timeout,
                inputs=step.inputs,
                context=task.context,
                parent_results=dict(parents),
                lease_owner=req.lease_owner,
            )
            return ItemClaim(item_id, row.idx, row.item, claim, limit)

    async def record(
        self, item: ItemClaim, outcome: Outcome, then: ClaimRequest | None = None
    ) -> tuple[str, int | ItemClaim | None]:
        """Record the item's attempt (compare-and-set on its lease): `complete`, `retrying`,
        `failed` or `discarded`, and the next item for this worker: with `then`, already
        claimed under that lease in the same transaction (one round of reads fewer per item),
        else its id."""
        claim = item.claim
        async with self.changes.transaction() as tx:
            task = await tx.locked_task_row(claim.task.id, *_PAUSE)
            if task is None:
                return "discarded", None
            status = TaskState(task.status)
            mine = StepItem.filter(
                id=item.item_id, status=_S.IN_PROGRESS.value, lease_owner=claim.lease_owner
            ).using_db(tx.conn)
            decision = None
            if outcome.ok:
                result = "complete"
                changed = await mine.update(
                    status=_S.COMPLETE.value, results=outcome.encoded, completed_at=tx.now,
                    lease_owner=None, lease_expires_at=None, updated_at=tx.now,
                )  # fmt: skip
            else:
                decision = decide_retry(
                    attempts=claim.attempt, retry_limit=claim.retry_limit,
                    retryable=claim.retryable, permanent=outcome.permanent,
                    retry_after=outcome.retry_after, now=tx.now, policy=self.backoff,
                )  # fmt: skip
                result = "retrying" if decision else "failed"
                changed = await mine.update(
                    status=_S.ERROR.value, last_error=outcome.error,
                    error_class=outcome.error_class,
                    next_attempt_at=decision.next_attempt_at if decision else None,
                    dispatched_at=tx.now, completed_at=tx.now, lease_owner=None,
                    lease_expires_at=None, updated_at=tx.now,
                )  # fmt: skip
            if changed != 1:
                return "discarded", None
            reason = {"complete": ITEM_COMPLETE, "retrying": ITEM_RETRYING}.get(result, ITEM_FAILED)
            to = _S.COMPLETE.value if outcome.ok else _S.ERROR.value
            move = (item.index, claim.attempt, _S.IN_PROGRESS.value, to, reason)
            failure = {} if outcome.ok else {"error_class": outcome.error_class}
            await item_moved(tx, claim.task, (claim.step_id, claim.step_name), [move], **failure)
            if decision:
                tx.dispatch_after_commit([item_message(item.item_id)], decision.delay_seconds)
            step = await (
                WorkflowStep.filter(id=claim.step_id)
                .using_db(tx.conn)
                .only("id", "name", "status", "lease_owner")
                .first()
            )
            waiting = (
                step is not None
                and step.status == _S.IN_PROGRESS.value
                and step.lease_owner == items_lease(step.id)
            )
            if not waiting:
                return result, None  # cancelled or failed meanwhile: nothing more starts
            if result == "failed":
                await self._fail_step(tx, claim, status, item, outcome)
                return result, None
            if result == "complete" and await finish_if_done(tx, claim.task, status, step):
                return result, None
            if task.paused_at is not None or task.handler_paused_at is not None:
                return result, None  # no new item while paused: resuming fills the slots
            ids = await fill_slots(tx, claim.step_id, item.limit)
            send_after_commit(tx, ids[1:])
            if not ids:
                return result, None
            if then is not None:
                claimed = await self._claim_next(tx, item, ids[0], then)
                if claimed is not None:
                    return result, claimed
            send_after_commit(tx, ids[:1])
            return result, None

    async def settle(self, task: TaskRef, step_id: int, step_name: str, limit: int) -> bool:
        """Under the task's lock: complete a waiting map step whose items all are, else send
        its free slots' items (none while paused); True when it did either."""
        async with self.changes.transaction() as tx:
            row = await tx.locked_task_row(task.id, *_PAUSE)
            if row is None or TaskState(row.status) not in CLAIMABLE_TASK_STATES:
                return False
            if not await waits_for_items(tx, step_id):
                return False
            step = _WaitingStep(step_id, step_name, _S.IN_PROGRESS.value)
            if await finish_if_done(tx, task, TaskState(row.status), step):
                return True
            if row.paused_at is not None or row.handler_paused_at is not None:
                return False
            ids = await fill_slots(tx, step_id, limit)
            send_after_commit(tx, ids)
            return bool(ids)

    async def _claim_next(
        self, tx: Transaction, done: ItemClaim, item_id: int, req: ClaimRequest
    ) -> ItemClaim | None:
        """Claim a sibling of `done` in `done`'s record, under the task lock it holds: the
        step's and task's facts are those `done` was claimed with (a waiting step's do not
        change), only the item's own are read."""
        running = await (
            StepItem.filter(step_id=done.claim.step_id, status=_S.IN_PROGRESS.value)
            .using_db(tx.conn)
            .count()
        )
        row = await StepItem.filter(id=item_id, status=_S.PENDING.value).using_db(tx.conn).first()
        if row is None or running >= done.limit:
            return None
        timeout = done.claim.timeout
        changed = await (
            StepItem.filter(id=item_id, status=_S.PENDING.value)
            .using_db(tx.conn)
            .update(
                status=_S.IN_PROGRESS.value,
                attempts=F("attempts") + 1,
                lease_owner=req.lease_owner,
                lease_expires_at=tx.now + timedelta(seconds=timeout + req.lease_grace),
                started_at=tx.now,
                completed_at=None,
                next_attempt_at=None,
                updated_at=tx.now,
            )
        )
        if changed != 1:
            return None
        move = (row.idx, row.attempts + 1, _S.PENDING.value, _S.IN_PROGRESS.value, ITEM_CLAIMED)
        await item_moved(tx, done.claim.task, (done.claim.step_id, done.claim.step_name), [move])
        claim = replace(done.claim, attempt=row.attempts + 1, lease_owner=req.lease_owner)
        return ItemClaim(item_id, row.idx, row.item, claim, done.limit)

    async def _fail_step(
        self, tx: Transaction, claim: Claim, status: TaskState, item: ItemClaim, outcome: Outcome
    ) -> None:
        error = f"item {item.index} failed: {outcome.error}"
        moved = await tx.move_step(
            claim.task, claim.step_id, claim.step_name, _S.IN_PROGRESS, _S.ERROR, "failed",
            {"item": item.index, "error": outcome.error, "error_class": outcome.error_class},
            held_by=items_lease(claim.step_id), last_error=error, error_class=ITEM_FAILED_CODE,
            next_attempt_at=None, completed_at=tx.now, lease_owner=None, lease_expires_at=None,
        )  # fmt: skip
        if moved:
            await advance(tx, claim.task, status)


@dataclass(frozen=True, slots=True)
class _WaitingStep:
    """A map step as `finish_if_done` reads it."""

    id: int
    name: str
    status: str
