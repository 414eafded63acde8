"""Running one step: claim (compare-and-set + lease), call the handler, record the outcome.

`run_step` is what the worker actor calls with a step id. A message is only a nudge: if the
step is not runnable any more (already claimed, completed, cancelled, not yet due) the call does
nothing, so duplicated or stale messages are harmless and a completed step never re-runs.
"""

import asyncio
import inspect
import json
import logging
from dataclasses import dataclass
from typing import Any

from server.db import fastpath
from server.domain.errors import PermanentError, RetryableError
from server.domain.retry import BackoffPolicy, decide_retry
from server.domain.states import StepState, TaskState
from server.handlers.base import StepContext
from server.infra.logging import bind
from server.infra.metrics import StepTimer
from server.registry.handler_registry import HandlerRegistry
from server.services.claims import Claim, Claimer
from server.services.progress import advance, count_done
from server.services.transitions import Door, UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt produced: results, or an error and how to treat it."""

    results: Any = None
    encoded: str = "null"
    """`results` as JSON, encoded once (which also proves they are JSON)."""
    error: str | None = None
    error_class: str | None = None
    permanent: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """True when the attempt succeeded."""
        return self.error is None


class StepRunner:
    """Claims, executes and records steps for one worker identity."""

    def __init__(
        self,
        door: Door,
        registry: HandlerRegistry,
        *,
        worker_id: str,
        backoff: BackoffPolicy,
        default_timeout: float,
        lease_grace: float,
    ) -> None:
        self.door = door
        self.registry = registry
        self.worker_id = worker_id
        self.backoff = backoff
        self.default_timeout = default_timeout
        self.claimer = Claimer(
            door, worker_id=worker_id, default_timeout=default_timeout, lease_grace=lease_grace
        )

    async def run_step(self, step_id: int) -> str:
        """Run the step if it is runnable; returns what happened to it (for logs and tests).

        When its completion makes children ready, this worker goes on with one of them itself
        (claimed through the same compare-and-set) and nudges the others: a chain hands off in
        microseconds instead of a broker round trip, and siblings still fan out to other
        workers. If this worker dies first, the sweeper re-dispatches the child.
        """
        first: str | None = None
        next_id: int | None = step_id
        while next_id is not None:
            claim = await self.claim(next_id)
            if claim is None:
                return first or "skipped"
            timer = StepTimer(claim, self.door.clock.now())  # metrics (issue 6)
            with bind(task_id=str(claim.task.id), step=claim.step_name):  # log correlation
                result = await self.execute(claim)
                timer.executed()
                outcome, next_id = await self._record(claim, result)
            timer.recorded(outcome)
            first = first or outcome
        return first or "skipped"

    async def claim(self, step_id: int) -> Claim | None:
        """Compare-and-set the step to in_progress with a lease, or None if not runnable."""
        return await self.claimer.claim(step_id)

    async def _complete_fast(self, claim: Claim, encoded: str) -> tuple[str, int | None]:
        """Complete as one PostgreSQL statement; finalize when it was the task's last step."""
        now = self.door.clock.now()
        done = await fastpath.complete(
            claim.step_id, claim.lease_owner, encoded, now, {"attempt": claim.attempt}
        )
        if done is None:
            return "discarded", None
        uow = UnitOfWork(conn=fastpath.connection(), now=now)
        uow.note(
            claim.task,
            claim.step_id,
            claim.step_name,
            StepState.IN_PROGRESS.value,
            StepState.COMPLETE.value,
            "completed",
            done.cursor,
        )
        if done.finished_cursor is not None:  # the last step finished the task, same statement
            uow.note(
                claim.task,
                None,
                None,
                TaskState.IN_PROGRESS.value,
                TaskState.COMPLETE.value,
                "all steps done",
                done.finished_cursor,
            )
        uow.nudge(done.ready[1:])
        self.door.after_commit(uow)
        if done.remaining == 0 and done.finished_cursor is None:
            # All steps done but the task was not running (e.g. reopened from error): the
            # general path under the task lock decides.
            async with self.door.transaction() as tx:
                status = await tx.lock_task(claim.task.id)
                if status is not None:
                    await advance(tx, claim.task, status)
        return "complete", (done.ready[0] if done.ready else None)

    async def execute(self, claim: Claim) -> Outcome:
        """Call the step handler with its timeout and classify what happened."""
        try:
            template = self.registry.get(
                claim.task.namespace, claim.handler_name, claim.handler_version
            )
            config = template.step(claim.step_name).handler_config
            handler = self.registry.step_handler(claim.handler_class)
        except Exception as exc:  # a worker without this handler: another worker may have it
            return Outcome(error=f"handler unavailable: {exc}", error_class="HandlerUnavailable")
        ctx = StepContext(
            task_id=claim.task.id,
            name=claim.step_name,
            attempt=claim.attempt,
            context=claim.context,
            inputs=claim.inputs,
            config=config,
            parent_results=claim.parent_results,
            namespace=claim.task.namespace,
            handler_name=claim.handler_name,
            handler_version=claim.handler_version,
            timeout_seconds=claim.timeout,
        )
        try:
            # asyncio.timeout rather than wait_for: no extra Task per step.
            async with asyncio.timeout(claim.timeout):
                results = await _call(handler.process, ctx)
            encoded = json.dumps(results)
        except TimeoutError:
            return Outcome(error=f"timed out after {claim.timeout:g}s", error_class="StepTimeout")
        except RetryableError as exc:
            return Outcome(
                error=exc.message, error_class=type(exc).__name__, retry_after=exc.retry_after
            )
        except PermanentError as exc:
            return Outcome(
                error=exc.message, error_class=exc.code or type(exc).__name__, permanent=True
            )
        except (TypeError, ValueError) as exc:
            return Outcome(error=str(exc), error_class=type(exc).__name__)
        except Exception as exc:
            log.info("step %s attempt %d raised", claim.step_id, claim.attempt, exc_info=True)
            return Outcome(error=str(exc) or repr(exc), error_class=type(exc).__name__)
        return Outcome(results=results, encoded=encoded)

    async def record(self, claim: Claim, outcome: Outcome) -> str:
        """Record the attempt's outcome unless the lease was lost (then it is discarded)."""
        result, local = await self._record(claim, outcome)
        if local is not None:
            self.door.dispatcher.dispatch([local])
        return result

    async def _record(self, claim: Claim, outcome: Outcome) -> tuple[str, int | None]:
        """`record`, also returning a ready child this worker may run next (fast path only)."""
        if outcome.ok and fastpath.available():
            return await self._complete_fast(claim, outcome.encoded)
        return await self._record_portable(claim, outcome), None

    async def _record_portable(self, claim: Claim, outcome: Outcome) -> str:
        """The portable path: lock the task, compare-and-set, then `advance` under the lock."""
        async with self.door.transaction() as uow:
            status = await uow.lock_task(claim.task.id)
            if status is None:
                return "discarded"
            if outcome.ok:
                moved = await uow.move_step(
                    claim.task,
                    claim.step_id,
                    claim.step_name,
                    StepState.IN_PROGRESS,
                    StepState.COMPLETE,
                    "completed",
                    {"attempt": claim.attempt},
                    held_by=claim.lease_owner,
                    results=outcome.encoded,  # JSON text: see server.db.rows.json_text
                    completed_at=uow.now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                if not moved:
                    return "discarded"
                await count_done(uow, claim.task, claim.step_id)
                await advance(uow, claim.task, status)
                return "complete"
            decision = decide_retry(
                attempts=claim.attempt,
                retry_limit=claim.retry_limit,
                retryable=claim.retryable,
                permanent=outcome.permanent,
                retry_after=outcome.retry_after,
                now=uow.now,
                policy=self.backoff,
            )
            moved = await uow.move_step(
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
                dispatched_at=uow.now,
                completed_at=uow.now,
                lease_owner=None,
                lease_expires_at=None,
            )
            if not moved:
                return "discarded"
            if decision:
                uow.nudge([claim.step_id], decision.delay_seconds)
                return "retrying"
            await advance(uow, claim.task, status)
            return "failed"


async def _call(process: Any, ctx: StepContext) -> Any:
    """Await async handlers on the loop; run sync ones in a thread so the loop stays free."""
    if inspect.iscoroutinefunction(process):
        return await process(ctx)
    result = await asyncio.to_thread(process, ctx)
    if inspect.isawaitable(result):
        result = await result
    return result
