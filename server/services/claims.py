"""Claiming a step: compare-and-set it to in_progress under a fresh lease.

Two implementations of one operation: a portable ORM transaction, and on PostgreSQL one
statement (`server.db.fastpath`). Both refuse a step that is not runnable (wrong state, not
due, a parent not done, its task not active), so stale or duplicated nudges are harmless.
"""

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F

from server.db import fastpath
from server.db.models import WorkflowStep
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.services.transitions import Door, TaskRef, UnitOfWork


def lease_holder(lease_owner: str) -> str:
    """The worker id a lease was issued to (leases are `<worker id>/<claim number>`)."""
    return lease_owner.rpartition("/")[0]


@dataclass(frozen=True, slots=True)
class Claim:
    """A step this worker now holds the lease on."""

    step_id: int
    step_name: str
    task: TaskRef
    handler_name: str
    handler_version: str
    handler_class: str
    attempt: int
    retry_limit: int
    retryable: bool
    timeout: float
    inputs: Any
    context: Any
    parent_results: dict[str, Any]
    lease_owner: str
    # For metrics only: task duration and step hand-off latency (issue 6).
    task_created_at: datetime | None = None
    parents_done_at: datetime | None = None


class Claimer:
    """Claims steps for one worker identity."""

    def __init__(
        self, door: Door, *, worker_id: str, default_timeout: float, lease_grace: float
    ) -> None:
        self.door = door
        self.worker_id = worker_id
        self.default_timeout = default_timeout
        self.lease_grace = lease_grace
        self._leases = itertools.count(1)

    async def claim(self, step_id: int) -> Claim | None:
        """Compare-and-set the step to in_progress with a lease, or None if not runnable."""
        if fastpath.available():
            return await self._claim_fast(step_id)
        return await self._claim_portable(step_id)

    async def _claim_portable(self, step_id: int) -> Claim | None:
        """The claim through the ORM, in one transaction (SQLite, and any other database)."""
        async with self.door.transaction() as uow:
            row = await WorkflowStep.filter(id=step_id).using_db(uow.conn).select_related("task")
            if not row:
                return None
            step, task_row = row[0], row[0].task
            status = StepState(step.status)
            if TaskState(task_row.status) not in (TaskState.PENDING, TaskState.IN_PROGRESS):
                return None
            due = step.next_attempt_at is None or step.next_attempt_at <= uow.now
            if status is StepState.ERROR and not (step.next_attempt_at is not None and due):
                return None
            if status not in (StepState.PENDING, StepState.ERROR):
                return None
            parents = await (
                WorkflowStep.filter(child_edges__to_step_id=step_id)
                .using_db(uow.conn)
                .values("name", "status", "results", "completed_at")
            )
            if any(StepState(p["status"]) not in DONE_STEP_STATES for p in parents):
                return None
            task = TaskRef(task_row.id, task_row.namespace)
            if status is StepState.ERROR:
                moved = await uow.move_step(
                    task,
                    step.id,
                    step.name,
                    status,
                    StepState.PENDING,
                    "retry due",
                    {"attempts": step.attempts},
                )
                if not moved:
                    return None
            timeout = step.timeout_seconds or self.default_timeout
            lease = self._new_lease()
            claimed = await uow.move_step(
                task,
                step.id,
                step.name,
                StepState.PENDING,
                StepState.IN_PROGRESS,
                "claimed",
                {"attempt": step.attempts + 1, "worker": self.worker_id},
                attempts=F("attempts") + 1,
                lease_owner=lease,
                lease_expires_at=uow.now + timedelta(seconds=timeout + self.lease_grace),
                started_at=uow.now,
                completed_at=None,
                next_attempt_at=None,
            )
            if not claimed:
                return None
            if TaskState(task_row.status) is TaskState.PENDING:
                await uow.move_task(task, TaskState.PENDING, TaskState.IN_PROGRESS, "step started")
            return self._claim_of(
                fastpath.ClaimedRow(
                    step_id=step.id,
                    task_id=task_row.id,
                    step_name=step.name,
                    attempt=step.attempts + 1,
                    retry_limit=step.retry_limit,
                    retryable=step.retryable,
                    timeout_seconds=step.timeout_seconds,
                    inputs=step.inputs,
                    handler_class=step.handler_class,
                    namespace=task_row.namespace,
                    handler_name=task_row.name,
                    version=task_row.version,
                    task_status=task_row.status,
                    context=task_row.context,
                    parent_results={p["name"]: p["results"] for p in parents},
                    history=[],
                    task_created_at=task_row.created_at,
                    parents_done_at=max(
                        (p["completed_at"] for p in parents if p["completed_at"]), default=None
                    ),
                ),
                lease,
            )

    async def _claim_fast(self, step_id: int) -> Claim | None:
        """The same claim as one PostgreSQL statement (server.db.fastpath)."""
        now = self.door.clock.now()
        lease = self._new_lease()
        row = await fastpath.claim(step_id, now, lease, self.default_timeout, self.lease_grace)
        if row is None:
            return None
        task = TaskRef(row.task_id, row.namespace)
        uow = UnitOfWork(conn=fastpath.connection(), now=now)
        for cursor, from_status, to_status, reason in row.history:
            uow.note(task, row.step_id, row.step_name, from_status, to_status, reason, cursor)
        if row.started_cursor is not None:  # this claim started the task, in the same statement
            uow.note(
                task,
                None,
                None,
                TaskState.PENDING.value,
                TaskState.IN_PROGRESS.value,
                "step started",
                row.started_cursor,
            )
        self.door.after_commit(uow)
        return self._claim_of(row, lease)

    def _new_lease(self) -> str:
        # Unique per claim: a late result from an earlier claim by this same process must not
        # match a newer lease on the same step. The worker id is unique per process start, so
        # a counter suffices (uuid4 reads os.urandom: 4 % of a worker's CPU under load).
        # The prefix names the claiming worker: the sweeper reclaims the steps of a worker
        # whose heartbeats stopped (`lease_holder`).
        return f"{self.worker_id}/{next(self._leases)}"

    def _claim_of(self, row: fastpath.ClaimedRow, lease: str) -> Claim:
        return Claim(
            step_id=row.step_id,
            step_name=row.step_name,
            task=TaskRef(row.task_id, row.namespace),
            handler_name=row.handler_name,
            handler_version=row.version,
            handler_class=row.handler_class,
            attempt=row.attempt,
            retry_limit=row.retry_limit,
            retryable=row.retryable,
            timeout=row.timeout_seconds or self.default_timeout,
            inputs=row.inputs,
            context=row.context,
            parent_results=row.parent_results,
            lease_owner=lease,
            task_created_at=row.task_created_at,
            parents_done_at=row.parents_done_at,
        )
