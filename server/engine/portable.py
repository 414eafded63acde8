"""The portable step store: each claim and each recorded attempt is one ORM transaction.

Runs on every database Tortoise supports (SQLite in development and tests, PostgreSQL too).
The claim applies `readiness.is_runnable` to the step and its parents as read under the task's
row lock; recording compare-and-sets the step on the lease it holds, then `advance`s the task.
"""

from collections.abc import Sequence
from datetime import timedelta

from tortoise.expressions import F

from server.db.models import WorkflowStep
from server.domain.readiness import (
    CLAIMABLE_TASK_STATES,
    StepSnapshot,
    has_started,
    is_due,
    is_runnable,
)
from server.domain.retry import BackoffPolicy, decide_retry
from server.domain.states import StepState, TaskState
from server.engine import limits
from server.engine.changes import StateChanges, TaskRef
from server.engine.progress import advance
from server.engine.store import Claim, ClaimRequest, Outcome, Recorded

_TASK_FIELDS = (
    "namespace",
    "name",
    "version",
    "context",
    "created_at",
    "run_at",
    "paused_at",
    "handler_paused_at",
    "priority",
)


class PortableStore:
    """`StepStore` through the ORM."""

    def __init__(self, changes: StateChanges, backoff: BackoffPolicy) -> None:
        self.changes = changes
        self.backoff = backoff

    async def claim(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """One transaction per claim."""
        return [await self._claim(r) for r in requests]

    async def complete(self, attempts: Sequence[tuple[Claim, Outcome]]) -> list[Recorded]:
        """One transaction per attempt."""
        return [Recorded(await self._record(c, o)) for c, o in attempts]

    async def fail(self, attempts: Sequence[tuple[Claim, Outcome]]) -> list[Recorded]:
        """One transaction per attempt."""
        return [Recorded(await self._record(c, o)) for c, o in attempts]

    async def _claim(self, req: ClaimRequest) -> Claim | None:
        async with self.changes.transaction() as tx:
            step = await WorkflowStep.filter(id=req.step_id).using_db(tx.conn).first()
            if step is None or not is_due(StepState(step.status), step.next_attempt_at, tx.now):
                return None
            if step.wake_at is not None and step.wake_at > tx.now:  # a parked sleep or wait
                return None
            # Under the task's lock, as every writer of the task: a claim cannot slip between
            # a cancel's read of the open steps and its commit.
            task_id = step.task_id  # type: ignore[attr-defined]  # the foreign key's column
            task_row = await tx.locked_task_row(task_id, *_TASK_FIELDS)
            if task_row is None or TaskState(task_row.status) not in CLAIMABLE_TASK_STATES:
                return None
            if not has_started(task_row.run_at, tx.now):
                return None
            if task_row.paused_at is not None or task_row.handler_paused_at is not None:
                return None  # paused (the task or its handler): resuming re-sends it
            parents = await (
                WorkflowStep.filter(child_edges__to_step_id=step.id)
                .using_db(tx.conn)
                .values("name", "status", "results", "completed_at")
            )
            status = StepState(step.status)
            snap = StepSnapshot(
                step.name, status, step.next_attempt_at, tuple(p["name"] for p in parents)
            )
            if not is_runnable(snap, {p["name"]: StepState(p["status"]) for p in parents}, tx.now):
                return None
            task = TaskRef(task_row.id, task_row.namespace, task_row.priority)
            if step.flow and await limits.admit(tx, step.id, task.id, step.flow, req.lease_owner):
                return None  # recorded as waiting for a slot or the rate window
            if status is StepState.ERROR:
                moved = await tx.move_step(
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
            timeout = step.timeout_seconds or req.default_timeout
            claimed = await tx.move_step(
                task,
                step.id,
                step.name,
                StepState.PENDING,
                StepState.IN_PROGRESS,
                "claimed",
                {"attempt": step.attempts + 1, "worker": req.worker_id},
                attempts=F("attempts") + 1,
                lease_owner=req.lease_owner,
                lease_expires_at=tx.now + timedelta(seconds=timeout + req.lease_grace),
                started_at=tx.now,
                completed_at=None,
                next_attempt_at=None,
            )
            if not claimed:
                return None
            if TaskState(task_row.status) is TaskState.PENDING:
                await tx.move_task(task, TaskState.PENDING, TaskState.IN_PROGRESS, "step started")
            return Claim(
                step_id=step.id,
                step_name=step.name,
                task=task,
                handler_name=task_row.name,
                handler_version=task_row.version,
                handler_class=step.handler_class,
                attempt=step.attempts + 1,
                retry_limit=step.retry_limit,
                retryable=step.retryable,
                timeout=timeout,
                inputs=step.inputs,
                context=task_row.context,
                parent_results={p["name"]: p["results"] for p in parents},
                lease_owner=req.lease_owner,
                task_created_at=task_row.run_at or task_row.created_at,
                parents_done_at=max(
                    (p["completed_at"] for p in parents if p["completed_at"]), default=None
                ),
                limited=bool(step.flow),
            )

    async def _record(self, claim: Claim, outcome: Outcome) -> str:
        """Lock the task, compare-and-set on the lease, then `advance` under the lock."""
        async with self.changes.transaction() as tx:
            status = await tx.lock_task(claim.task.id)
            if status is None:
                return "discarded"
            if outcome.ok:
                moved = await tx.move_step(
                    claim.task,
                    claim.step_id,
                    claim.step_name,
                    StepState.IN_PROGRESS,
                    StepState.COMPLETE,
                    "completed",
                    {"attempt": claim.attempt},
                    held_by=claim.lease_owner,
                    results=outcome.encoded,  # JSON text: see server.db.rows.json_text
                    completed_at=tx.now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                if not moved:
                    return "discarded"
                status = await advance(tx, claim.task, status)
                if claim.limited:
                    await limits.release(tx, claim.step_id, claim.task.id, _active(status))
                return "complete"
            decision = decide_retry(
                attempts=claim.attempt,
                retry_limit=claim.retry_limit,
                retryable=claim.retryable,
                permanent=outcome.permanent,
                retry_after=outcome.retry_after,
                now=tx.now,
                policy=self.backoff,
            )
            moved = await tx.move_step(
                claim.task,
                claim.step_id,
                claim.step_name,
                StepState.IN_PROGRESS,
                StepState.ERROR,
                "retry scheduled" if decision else "failed",
                {
                    "attempt": claim.attempt,
                    "error": outcome.error,
                    "error_class": outcome.error_class,
                    "retry_at": decision.next_attempt_at.isoformat() if decision else None,
                },
                held_by=claim.lease_owner,
                last_error=outcome.error,
                error_class=outcome.error_class,
                next_attempt_at=decision.next_attempt_at if decision else None,
                dispatched_at=tx.now,
                completed_at=tx.now,
                lease_owner=None,
                lease_expires_at=None,
            )
            if not moved:
                return "discarded"
            if decision:
                tx.dispatch_after_commit(
                    [claim.step_id], decision.delay_seconds, await claim.task.lane(tx.conn)
                )
                if claim.limited:
                    await limits.release(tx, claim.step_id, claim.task.id, True)
                return "retrying"
            status = await advance(tx, claim.task, status)
            if claim.limited:
                await limits.release(tx, claim.step_id, claim.task.id, _active(status))
            return "failed"


def _active(status: TaskState) -> bool:
    return status in CLAIMABLE_TASK_STATES
