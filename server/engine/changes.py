"""State changes: the only way a task or step changes status.

`StateChanges.transaction()` opens a `Transaction`; its `move_task` / `move_step` check the
allowed-move table, compare-and-set the row (`UPDATE ... WHERE id=? AND status=?`, row count 1
or it lost the race), append the history row and, when a step becomes done, count it in the
readiness counters (its children wait on one parent fewer, its task needs one step fewer), all
in the caller's transaction. Events are published and steps dispatched only after it commits.

The PostgreSQL store writes the same moves in single statements; it records what they wrote in
an `Effects` and hands it to `after_commit`, so both stores publish the same events.

Writers of an existing task take its row lock (`lock_task`, or the PostgreSQL store's
statements) before they append its history, so the history ids they draw commit in order, task
by task; `server.services.follow` relies on it.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from server.db.models import StepEdge, Task, Transition, WorkflowStep
from server.db.sql import connection
from server.domain.errors import TaskNotFound
from server.domain.flow import DEFAULT_PRIORITY
from server.domain.states import (
    DONE_STEP_STATES,
    StepState,
    TaskState,
    check_step_move,
    check_task_move,
)
from server.domain.views import TransitionEvent
from server.engine.outbox import Dispatch, Outbox
from server.infra import round_trips
from server.infra.ports import Clock, EventPublisher, StepDispatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskRef:
    """What a state change needs to know about a task to record a move."""

    id: UUID
    namespace: str
    priority: int | None = None
    """The lane its steps are dispatched in (1 low .. 3 high); None: not read yet (`lane`)."""

    async def lane(self, conn: BaseDBAsyncClient) -> int:
        """Its priority, read from its row when this reference was made without it."""
        if self.priority is not None:
            return self.priority
        rows: list[int] = await (  # type: ignore[assignment]
            Task.filter(id=self.id).using_db(conn).values_list("priority", flat=True)
        )
        return int(rows[0]) if rows else DEFAULT_PRIORITY


@dataclass
class Effects:
    """What one commit publishes and dispatches once it has committed."""

    now: datetime
    events: list[TransitionEvent] = field(default_factory=list)
    dispatches: list[Dispatch] = field(default_factory=list)

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
        """Queue the event of a history row already written (by a move, or a store statement)."""
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

    def dispatch_after_commit(
        self,
        step_ids: Sequence[int],
        delay_seconds: float = 0.0,
        priority: int = DEFAULT_PRIORITY,
        limited: Collection[int] = (),
    ) -> None:
        """Dispatch these steps after commit, in the lane of their task's `priority`; those in
        `limited` have limits, and their messages say so (`StepDispatcher.dispatch`)."""
        self.dispatches.extend((delay_seconds, i, priority, i in limited) for i in step_ids)


@dataclass
class Transaction(Effects):
    """One database transaction: its connection, its clock reading, its after-commit effects."""

    conn: BaseDBAsyncClient = field(kw_only=True)

    async def lock_task(self, task_id: UUID) -> TaskState | None:
        """Lock the task row (FOR UPDATE) and return its status; None if it does not exist.

        Serialises writers of one task on PostgreSQL (SQLite serialises all writes anyway).
        Without it, two sibling steps completing at once each see the other still running and
        neither dispatches their common child nor finalizes the task.
        """
        row = await self.locked_task_row(task_id)
        return TaskState(row.status) if row else None

    async def locked_task_row(self, task_id: UUID, *fields: str) -> Task | None:
        """`lock_task`, returning the row (with `fields`, or only its status)."""
        # A model query, not values_list(): Tortoise drops FOR UPDATE from values queries.
        query = Task.filter(id=task_id).select_for_update().using_db(self.conn)
        return await query.only("id", "status", *fields).first()

    async def step_status(self, step_id: int) -> StepState | None:
        """A step's status as this transaction sees it."""
        rows = (
            await WorkflowStep.filter(id=step_id)
            .using_db(self.conn)
            .values_list("status", flat=True)
        )
        return StepState(str(rows[0])) if rows else None

    async def steps_in(
        self, task_id: UUID, states: Iterable[StepState]
    ) -> list[tuple[int, str, StepState]]:
        """The task's steps in these states: (id, name, status)."""
        rows = (
            await WorkflowStep.filter(task_id=task_id, status__in=[s.value for s in states])
            .using_db(self.conn)
            .values_list("id", "name", "status")
        )
        return [(i, name, StepState(status)) for i, name, status in rows]

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
        if target in DONE_STEP_STATES:  # done states are terminal: this counts a step once
            await self._count_done(task, step_id)
        return True

    async def record_task_event(
        self, task: TaskRef, status: TaskState, reason: str, metadata: dict[str, Any] | None = None
    ) -> None:
        """A history row for a task that changes no status (paused, resumed): the row shows
        the status it stays in, the reason says what happened. The caller holds the lock."""
        await self._record(task, None, None, status.value, status.value, reason, metadata)

    async def _count_done(self, task: TaskRef, step_id: int) -> None:
        """A step just became done: its children wait on one parent fewer and the task needs
        one step fewer (the readiness counters the PostgreSQL store's statements rely on)."""
        children = (
            await StepEdge.filter(from_step_id=step_id)
            .using_db(self.conn)
            .values_list("to_step_id", flat=True)
        )
        if children:
            await (
                WorkflowStep.filter(id__in=list(children))
                .using_db(self.conn)
                .update(waiting_on=F("waiting_on") - 1)
            )
        await Task.filter(id=task.id).using_db(self.conn).update(remaining=F("remaining") - 1)

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


class StateChanges:
    """Opens transactions and runs their after-commit effects."""

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
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction whose events and dispatches take effect only if it commits."""
        async with in_transaction() as conn:
            tx = Transaction(now=self.clock.now(), conn=conn)
            yield tx
        self.after_commit(tx)

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[Transaction]:
        """For work whose writes are one statement (atomic on its own, after any reads): no
        BEGIN and COMMIT; its events and dispatches take effect once the block ends."""
        tx = Transaction(now=self.clock.now(), conn=connection())
        yield tx
        self.after_commit(tx)

    @contextlib.asynccontextmanager
    async def on_task(self, task_id: UUID) -> AsyncIterator[tuple[Transaction, TaskState]]:
        """A transaction holding the task's row lock, with its status read under the lock."""
        async with self.transaction() as tx:
            status = await tx.lock_task(task_id)
            if status is None:
                raise TaskNotFound(task_id)
            yield tx, status

    def after_commit(self, effects: Effects) -> None:
        """Publish events and dispatch steps; failures are logged, the sweeper is the safety net."""
        self._submit(effects.events, effects.dispatches)

    def send(self, step_ids: Sequence[int], priority: int = DEFAULT_PRIORITY) -> None:
        """Nudge steps outside any transaction (the sweeper), the same way as after a commit."""
        self._submit([], [(0.0, i, priority, False) for i in step_ids])

    def _submit(self, events: Sequence[TransitionEvent], dispatches: Sequence[Dispatch]) -> None:
        if not events and not dispatches:
            return
        if self.outbox is not None:
            self.outbox.submit(list(events), list(dispatches))
        else:
            self._effects(events, dispatches)

    def close(self) -> None:
        """Send the effects still queued for the outbox, and stop it."""
        if self.outbox is not None:
            self.outbox.shutdown()

    def _effects(self, events: Sequence[TransitionEvent], dispatches: Sequence[Dispatch]) -> None:
        # With Redis, the events and every lane's messages go in one round trip (sent when
        # `together` ends, so its failures surface there).
        try:
            with round_trips.together():
                self._send(events, dispatches)
        except Exception:
            log.warning(
                "sending %d events and %d steps failed; the sweeper will re-send the steps",
                len(events),
                len(dispatches),
                exc_info=True,
            )

    def _send(self, events: Sequence[TransitionEvent], dispatches: Sequence[Dispatch]) -> None:
        if events:
            try:
                self.publisher.publish(events)
            except Exception:
                log.exception("publishing %d events failed", len(events))
        # Higher lanes first: with a slow broker, a high-priority nudge does not queue behind
        # a batch of low ones on this thread either.
        batches: dict[tuple[int, float, bool], list[int]] = {}
        for delay, step_id, priority, limited in dispatches:
            batches.setdefault((-priority, delay, limited), []).append(step_id)
        for (lane, delay, limited), ids in sorted(batches.items(), key=lambda b: b[0][0]):
            try:
                self.dispatcher.dispatch(ids, delay, -lane, limited)
            except Exception:
                log.warning(
                    "dispatching steps %s failed; the sweeper will retry", ids, exc_info=True
                )
