"""Built-in steps (`sleep`, `wait_for`): run in-process by the runner, without a handler.

A claimed built-in step either ends at once or is parked: moved back to `pending` with a wake
time (`wake_at`, which both step stores' claims respect), stamped `dispatched_at = wake_at` so
the sweeper leaves it alone until then, and sent ONE message delayed until then. No worker
thread waits and nothing polls: 10,000 sleeping tasks are 10,000 rows and delayed messages.

Signals (`deliver_signal`) and the steps' own runs take the task's row lock, so a signal is
either seen by the step's run (kept, then consumed) or finds the step parked and completes it.
`finish_without_handler` is the one place a step completes without a handler.
"""

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.expressions import F

from server.db.models import Signal, WorkflowStep
from server.domain.states import StepState, TaskState
from server.domain.waits import (
    BAD_PATH,
    NO_DEADLINE,
    REASON_SIGNAL,
    REASON_SLEEPING,
    REASON_TIMEOUT,
    REASON_WAITING,
    SIGNAL_TIMEOUT,
    SLEEP,
    builtin_kind,
    deadline,
    wake_time,
)
from server.engine.changes import StateChanges, TaskRef, Transaction
from server.engine.progress import advance
from server.engine.store import Claim
from server.registry.handler_registry import HandlerRegistry


async def finish_without_handler(
    tx: Transaction,
    task: TaskRef,
    task_status: TaskState,
    step_id: int,
    step_name: str,
    current: StepState,
    results: Any,
    reason: str,
    metadata: dict[str, Any] | None = None,
    held_by: str | None = None,
    skipped: bool = False,
) -> bool:
    """Complete a step that ran no handler (a sleep, a signal, a skip), then advance its task.

    `skipped` marks a step that ends without doing its work (a signal wait timing out with
    `on_timeout: skip`): like a false `run_if`, it completes with no results.

    `current` is `in_progress` (a claimed built-in step: `held_by` its lease) or `pending` (a
    parked one a signal completes: it moves through `in_progress`, two history rows, and
    counts as an attempt, as every move to `in_progress` does). False
    when the step was not in `current` any more."""
    if current is StepState.PENDING:
        moved = await tx.move_step(
            task, step_id, step_name, current, StepState.IN_PROGRESS, reason, metadata,
            started_at=tx.now, wake_at=None, attempts=F("attempts") + 1,
        )  # fmt: skip
        if not moved:
            return False
        current = StepState.IN_PROGRESS
    moved = await tx.move_step(
        task, step_id, step_name, current, StepState.COMPLETE, reason, metadata,
        held_by=held_by, results=None if skipped else json.dumps(results), completed_at=tx.now,
        wake_at=None, lease_owner=None, lease_expires_at=None, skipped=skipped,
    )  # fmt: skip
    if moved:
        await advance(tx, task, task_status)
    return moved


async def take_signal(tx: Transaction, task_id: UUID, name: str, step_id: int) -> Signal | None:
    """The oldest signal `name` of the task no step consumed yet, now consumed by `step_id`."""
    kept = (
        await Signal.filter(task_id=task_id, name=name, consumed_by_id=None)
        .using_db(tx.conn)
        .order_by("id")
        .first()
    )
    if kept is None:
        return None
    taken = await (
        Signal.filter(id=kept.id, consumed_by_id=None)
        .using_db(tx.conn)
        .update(consumed_by_id=step_id, consumed_at=tx.now)
    )
    return kept if taken == 1 else None


class BuiltinSteps:
    """Runs claimed `sleep` and `wait_for` steps for the runner."""

    def __init__(self, changes: StateChanges, registry: HandlerRegistry) -> None:
        self.changes = changes
        self.registry = registry

    @staticmethod
    def handles(claim: Claim) -> bool:
        """True for a built-in step (its stored handler class names a kind)."""
        return builtin_kind(claim.handler_class) is not None

    async def run(self, claim: Claim) -> str:
        """End, park or fail the claimed step; returns what happened (as `record` does)."""
        try:
            step = self.registry.get(
                claim.task.namespace, claim.handler_name, claim.handler_version
            ).step(claim.step_name)
        except Exception as exc:  # a worker without this handler version: retried elsewhere
            return await self._fail(claim, f"handler unavailable: {exc}", "HandlerUnavailable")
        async with self.changes.transaction() as tx:
            status = await tx.lock_task(claim.task.id)
            rows = await (
                WorkflowStep.filter(
                    id=claim.step_id,
                    status=StepState.IN_PROGRESS.value,
                    lease_owner=claim.lease_owner,
                )
                .using_db(tx.conn)
                .values_list("wake_at", flat=True)
            )
            if status is None or not rows:
                return "discarded"
            woke: datetime | None = rows[0]  # type: ignore[assignment]
            if builtin_kind(claim.handler_class) == SLEEP:
                assert step.sleep is not None
                return await self._sleep(tx, status, claim, woke, step.sleep)
            assert step.wait_for is not None
            return await self._wait(tx, status, claim, woke, step.wait_for)

    async def _sleep(
        self, tx: Transaction, status: TaskState, claim: Claim, woke: Any, spec: Any
    ) -> str:
        if woke is None:
            wake = wake_time(spec, tx.now, claim.context, claim.parent_results)
            if isinstance(wake, str):
                return await self._error(tx, status, claim, wake, BAD_PATH, "failed")
            if wake > tx.now:
                return await self._park(tx, claim, wake, REASON_SLEEPING)
            woke = wake
        meta = {"attempt": claim.attempt, "slept_until": woke.isoformat()}
        done = await finish_without_handler(
            tx, claim.task, status, claim.step_id, claim.step_name, StepState.IN_PROGRESS,
            None, "completed", meta, held_by=claim.lease_owner,
        )  # fmt: skip
        return "complete" if done else "discarded"

    async def _wait(
        self, tx: Transaction, status: TaskState, claim: Claim, woke: Any, spec: Any
    ) -> str:
        signal = await take_signal(tx, claim.task.id, spec.signal, claim.step_id)
        if signal is not None:
            meta = {"signal": spec.signal, "signal_id": signal.signal_id}
            done = await finish_without_handler(
                tx, claim.task, status, claim.step_id, claim.step_name, StepState.IN_PROGRESS,
                signal.payload, REASON_SIGNAL, meta, held_by=claim.lease_owner,
            )  # fmt: skip
            return "complete" if done else "discarded"
        due = woke if woke is not None else deadline(spec, tx.now)
        if due > tx.now:
            return await self._park(tx, claim, due, REASON_WAITING)
        if spec.on_timeout == "skip":
            meta = {"signal": spec.signal, "skipped": True}
            done = await finish_without_handler(
                tx, claim.task, status, claim.step_id, claim.step_name, StepState.IN_PROGRESS,
                None, REASON_TIMEOUT, meta, held_by=claim.lease_owner, skipped=True,
            )  # fmt: skip
            return "complete" if done else "discarded"
        problem = f"no signal '{spec.signal}' before the deadline {due.isoformat()}"
        return await self._error(tx, status, claim, problem, SIGNAL_TIMEOUT, REASON_TIMEOUT)

    async def _park(self, tx: Transaction, claim: Claim, wake: datetime, reason: str) -> str:
        """Back to pending until `wake`: the claim refuses it before then, one message wakes it.

        The claim stays counted as an attempt (attempts = moves to in_progress, everywhere)."""
        moved = await tx.move_step(
            claim.task, claim.step_id, claim.step_name, StepState.IN_PROGRESS, StepState.PENDING,
            reason, {"until": None if wake >= NO_DEADLINE else wake.isoformat()},
            held_by=claim.lease_owner, wake_at=wake, dispatched_at=wake,
            lease_owner=None, lease_expires_at=None,
        )  # fmt: skip
        if not moved:
            return "discarded"
        if wake < NO_DEADLINE:  # without a deadline only a signal ends the wait
            tx.dispatch_after_commit(
                [claim.step_id], (wake - tx.now).total_seconds(), await claim.task.lane(tx.conn)
            )
        return "parked"

    async def _error(
        self, tx: Transaction, status: TaskState, claim: Claim, error: str, code: str, reason: str
    ) -> str:
        """Fail the step for good (a bad path, a signal timeout): no retry would change it."""
        meta = {"attempt": claim.attempt, "error": error, "error_class": code, "retry_at": None}
        moved = await tx.move_step(
            claim.task, claim.step_id, claim.step_name, StepState.IN_PROGRESS, StepState.ERROR,
            reason, meta,
            held_by=claim.lease_owner, last_error=error, error_class=code, next_attempt_at=None,
            dispatched_at=tx.now, completed_at=tx.now, wake_at=None, lease_owner=None,
            lease_expires_at=None,
        )  # fmt: skip
        if not moved:
            return "discarded"
        await advance(tx, claim.task, status)
        return "failed"

    async def _fail(self, claim: Claim, error: str, code: str) -> str:
        async with self.changes.transaction() as tx:
            status = await tx.lock_task(claim.task.id)
            if status is None:
                return "discarded"
            return await self._error(tx, status, claim, error, code, "failed")
