"""The one door for state changes.

Every status change of a task or step goes through `UnitOfWork.move_task` / `move_step`:
check the allowed-move table, compare-and-set the row (`UPDATE ... WHERE id=? AND status=?`,
row count 1 or it lost the race), append the history row, all in the caller's transaction.
Events are published and nudges dispatched only after the transaction commits.

Writers of an existing task take its row lock (`lock_task`, or the fast path's statements)
before they append its history, so the history ids they draw commit in order, task by task;
`server.services.follow` relies on it.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from server.db.models import Task, Transition, WorkflowStep
from server.domain.states import StepState, TaskState, check_step_move, check_task_move
from server.domain.views import TransitionEvent
from server.infra.ports import Clock, EventPublisher, StepDispatcher
from server.services.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskRef:
    """What the door needs to know about a task to record a move."""

    id: UUID
    namespace: str


@dataclass
class UnitOfWork:
    """One transaction: its connection, its clock reading, and what to do after commit."""

    conn: BaseDBAsyncClient
    now: datetime
    events: list[TransitionEvent] = field(default_factory=list)
    nudges: list[tuple[float, int]] = field(default_factory=list)

    async def lock_task(self, task_id: UUID) -> TaskState | None:
        """Lock the task row (FOR UPDATE) and return its status; None if it does not exist.

        Serialises writers of one task on PostgreSQL (SQLite serialises all writes anyway).
        Without it, two sibling steps completing at once each see the other still running and
        neither dispatches their common child nor finalizes the task.
        """
        # A model query, not values_list(): Tortoise drops FOR UPDATE from values queries.
        row = await (
            Task.filter(id=task_id)
            .select_for_update()
            .only("id", "status")
            .using_db(self.conn)
            .first()
        )
        return TaskState(row.status) if row else None

    async def move_task(
        self,
        task: TaskRef,
        current: TaskState,
        target: TaskState,
        reason: str,
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a task `current -> target`; False when another writer changed it first."""
        check_task_move(current, target)
        changed = await (
            Task.filter(id=task.id, status=current.value)
            .using_db(self.conn)
            .update(status=target.value, updated_at=self.now, **fields)
        )
        if changed != 1:
            return False
        await self._record(task, None, None, current.value, target.value, reason, metadata)
        return True

    async def move_step(
        self,
        task: TaskRef,
        step_id: int,
        step_name: str,
        current: StepState,
        target: StepState,
        reason: str,
        metadata: dict[str, Any] | None = None,
        held_by: str | None = None,
        **fields: Any,
    ) -> bool:
        """Move a step `current -> target`; False when it lost the race.

        With `held_by`, the move only applies while that worker still holds the lease, so a
        result arriving after cancellation or after the lease was reclaimed is discarded.
        """
        check_step_move(current, target)
        query = WorkflowStep.filter(id=step_id, status=current.value)
        if held_by is not None:
            query = query.filter(lease_owner=held_by)
        changed = await query.using_db(self.conn).update(
            status=target.value, updated_at=self.now, **fields
        )
        if changed != 1:
            return False
        await self._record(task, step_id, step_name, current.value, target.value, reason, metadata)
        return True

    async def _record(
        self,
        task: TaskRef,
        step_id: int | None,
        step_name: str | None,
        from_status: str | None,
        to_status: str,
        reason: str,
        metadata: dict[str, Any] | None,
    ) -> None:
        row = await Transition.create(
            using_db=self.conn,
            task_id=task.id,
            step_id=step_id,
            step_name=step_name,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            metadata=metadata or {},
            created_at=self.now,
        )
        self.note(task, step_id, step_name, from_status, to_status, reason, row.id)

    def note(
        self,
        task: TaskRef,
        step_id: int | None,
        step_name: str | None,
        from_status: str | None,
        to_status: str,
        reason: str,
        cursor: int,
    ) -> None:
        """Queue the event of a history row already written (by `_record` or the fast path)."""
        self.events.append(
            TransitionEvent(
                cursor=cursor,
                task_id=str(task.id),
                namespace=task.namespace,
                step_id=step_id,
                step_name=step_name,
                from_status=from_status,
                to_status=to_status,
                reason=reason,
                occurred_at=self.now,
            )
        )

    def nudge(self, step_ids: Sequence[int], delay_seconds: float = 0.0) -> None:
        """Dispatch these steps after commit."""
        self.nudges.extend((delay_seconds, i) for i in step_ids)


class Door:
    """Opens units of work and runs their after-commit effects."""

    def __init__(
        self,
        clock: Clock,
        dispatcher: StepDispatcher,
        publisher: EventPublisher,
        *,
        background: bool = False,
    ) -> None:
        self.clock = clock
        self.dispatcher = dispatcher
        self.publisher = publisher
        # With a network broker, sending must not block the event loop that every database
        # call of this process shares: effects then run, in order, on the outbox's thread.
        self.outbox = Outbox(self._effects) if background else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A transaction whose events and nudges take effect only if it commits."""
        async with in_transaction() as conn:
            uow = UnitOfWork(conn=conn, now=self.clock.now())
            yield uow
        self.after_commit(uow)

    def after_commit(self, uow: UnitOfWork) -> None:
        """Publish events and send nudges; failures are logged, the sweeper is the safety net."""
        self._submit(uow.events, uow.nudges)

    def send(self, step_ids: Sequence[int]) -> None:
        """Nudge steps outside any transaction (the sweeper), the same way as after a commit."""
        self._submit([], [(0.0, i) for i in step_ids])

    def _submit(
        self, events: Sequence[TransitionEvent], nudges: Sequence[tuple[float, int]]
    ) -> None:
        if not events and not nudges:
            return
        if self.outbox is not None:
            self.outbox.submit(list(events), list(nudges))
        else:
            self._effects(events, nudges)

    def close(self) -> None:
        """Send the effects still queued for the outbox, and stop it."""
        if self.outbox is not None:
            self.outbox.shutdown()

    def _effects(
        self, events: Sequence[TransitionEvent], nudges: Sequence[tuple[float, int]]
    ) -> None:
        if events:
            try:
                self.publisher.publish(events)
            except Exception:
                log.exception("publishing %d events failed", len(events))
        by_delay: dict[float, list[int]] = {}
        for delay, step_id in nudges:
            by_delay.setdefault(delay, []).append(step_id)
        for delay, ids in by_delay.items():
            try:
                self.dispatcher.dispatch(ids, delay)
            except Exception:
                log.warning(
                    "dispatching steps %s failed; the sweeper will retry", ids, exc_info=True
                )
