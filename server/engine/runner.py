"""Running one step: claim (compare-and-set + lease), call the handler, record the outcome.

Claims and records go through the step store chosen when the process was built. The store
refuses a step that is not runnable (wrong state, not due, a parent not done, its task not
active: `server.domain.readiness`).

`run_step` is what the worker actor calls with a step id. A message is only a hint ("this step
may be runnable"): if the step is not runnable any more (already claimed, completed, cancelled,
not yet due) the call does nothing, so duplicated or stale messages are harmless and a completed
step never re-runs.
"""

import asyncio
import functools
import inspect
import itertools
import json
import logging
from typing import Any

from server.domain.errors import PermanentError, RetryableError
from server.domain.flow import DEFAULT_PRIORITY
from server.engine.awaiting import AWAITING_ITEMS
from server.engine.builtin_steps import BuiltinSteps
from server.engine.changes import StateChanges
from server.engine.conditions import Conditions
from server.engine.map_expand import expand, map_outcome
from server.engine.map_items import ItemClaim, MapItems
from server.engine.store import Claim, ClaimRequest, Outcome, Recorded, StepStore
from server.engine.upstream import upstream_results
from server.engine.waits import ChildRequest, ChildStarter, park, request_from_template, start_child
from server.handlers.base import StartChildTask, StepContext
from server.infra.logging import bind
from server.infra.metrics import StepTimer
from server.registry.handler_registry import HandlerRegistry

log = logging.getLogger(__name__)


class Claimer:
    """Claims steps for one worker identity, each under a lease of its own."""

    def __init__(
        self, store: StepStore, *, worker_id: str, default_timeout: float, lease_grace: float
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.default_timeout = default_timeout
        self.lease_grace = lease_grace
        self._leases = itertools.count(1)

    async def claim(self, step_id: int, *, limited: bool = False) -> Claim | None:
        """Compare-and-set the step to in_progress with a lease, or None if not runnable
        (`limited`: a hint that it has limits, `ClaimRequest.limited`)."""
        (claim,) = await self.store.claim([self.request(step_id, limited=limited)])
        return claim

    def request(self, step_id: int, *, limited: bool = False) -> ClaimRequest:
        """A claim of this step under a new lease of this worker."""
        return ClaimRequest(
            step_id,
            self._new_lease(),
            self.worker_id,
            self.default_timeout,
            self.lease_grace,
            limited,
        )

    def _new_lease(self) -> str:
        # Unique per claim: a late result from an earlier claim by this same process must not
        # match a newer lease on the same step. The worker id is unique per process start, so
        # a counter suffices (uuid4 reads os.urandom: 4 % of a worker's CPU under load).
        # The prefix names the claiming worker: the sweeper reclaims the steps of a worker
        # whose heartbeats stopped (`store.lease_holder`).
        return f"{self.worker_id}/{next(self._leases)}"


class StepRunner:
    """Claims, executes and records steps for one worker identity."""

    def __init__(
        self,
        changes: StateChanges,
        store: StepStore,
        registry: HandlerRegistry,
        *,
        worker_id: str,
        default_timeout: float,
        lease_grace: float,
    ) -> None:
        self.changes = changes
        self.store = store
        self.registry = registry
        self.worker_id = worker_id
        self.default_timeout = default_timeout
        self.builtins = BuiltinSteps(changes, registry)
        self.claimer = Claimer(
            store, worker_id=worker_id, default_timeout=default_timeout, lease_grace=lease_grace
        )
        self.conditions = Conditions(changes, registry)
        self.children: ChildStarter | None = None
        """Starts child tasks (`task:` steps, `step.start_task`); set by the container."""
        self.items: MapItems | None = None
        """Claims and records the items of map steps; set by the container."""

    async def run_step(self, step_id: int, *, limited: bool = False) -> str:
        """Run the step if it is runnable; returns what happened to it (for logs and tests).

        When its completion makes children ready, this worker goes on with one of them itself
        (claimed through the same compare-and-set) and dispatches the others: a chain hands off in
        microseconds instead of a broker round trip, and siblings still fan out to other
        workers. If this worker dies first, the sweeper re-dispatches the child.
        """
        if step_id < 0:  # a map item's message carries minus the item's id
            return await self.run_items(-step_id)
        first: str | None = None
        next_id: int | None = step_id
        while next_id is not None:
            settled = await self.conditions.settle(next_id)  # a false run_if: skipped, not run
            if settled is not None:
                return first or settled
            claim = await self.claim(next_id, limited=limited)
            if claim is None:
                return first or "skipped"
            if self.builtins.handles(claim):  # sleep / wait_for: no handler, no thread held
                done = await self.builtins.run(claim)
                return first or done
            timer = StepTimer(claim, self.changes.clock.now())  # duration and hand-off metrics
            with bind(task_id=str(claim.task.id), step=claim.step_name):  # log correlation
                result = await self.execute(claim)
                timer.executed()
                recorded = await self._record(claim, result)
            outcome, next_id, limited = recorded.result, recorded.run_next, recorded.next_limited
            timer.recorded(outcome)
            first = first or outcome
        return first or "skipped"

    async def run_items(self, item_id: int) -> str:
        """Run a map item if it may run now, then the next ones its records hand back."""
        if self.items is None:
            return "skipped"
        first: str | None = None
        item: ItemClaim | int | None = await self.items.claim(item_id, self.claimer.request(0))
        while isinstance(item, ItemClaim):
            with bind(task_id=str(item.claim.task.id), step=item.claim.step_name):
                outcome = await self.execute(item.claim, mapped=(item.index, item.item))
                result, item = await self.items.record(item, outcome, self.claimer.request(0))
            first = first or result
            if isinstance(item, int):
                item = await self.items.claim(item, self.claimer.request(0))
        return first or "skipped"

    async def claim(self, step_id: int, *, limited: bool = False) -> Claim | None:
        """Compare-and-set the step to in_progress with a lease, or None if not runnable
        (`limited`: a hint that it has limits, `ClaimRequest.limited`)."""
        return await self.claimer.claim(step_id, limited=limited)

    async def execute(self, claim: Claim, mapped: tuple[int, Any] | None = None) -> Outcome:
        """Call the step handler with its timeout and classify what happened."""
        try:
            template = self.registry.get(
                claim.task.namespace, claim.handler_name, claim.handler_version
            )
            step_template = template.step(claim.step_name)
            config = step_template.handler_config
            if step_template.child_task is not None:
                return await self._child_of_template(claim, step_template.child_task)
            if step_template.map_over is not None and mapped is None:
                return map_outcome(step_template, claim)
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
            read_upstream=functools.partial(upstream_results, claim.task.id, claim.step_name),
            loop=asyncio.get_running_loop(),
            item=None if mapped is None else mapped[1],
            index=None if mapped is None else mapped[0],
        )
        try:
            # asyncio.timeout rather than wait_for: no extra Task per step.
            async with asyncio.timeout(claim.timeout):
                results = await _call(handler.process, ctx)
            encoded = json.dumps(results)
        except TimeoutError:
            return Outcome(error=f"timed out after {claim.timeout:g}s", error_class="StepTimeout")
        except StartChildTask as ask:
            if mapped is not None:
                return Outcome(
                    error="start_task is not available to a map item",
                    error_class="StartTaskInMap",
                    permanent=True,
                )
            request = ChildRequest(ask.namespace, ask.name, ask.context, ask.version)
            return await start_child(self.children, claim, request)
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

    async def _child_of_template(self, claim: Claim, spec: Any) -> Outcome:
        try:
            request = request_from_template(spec, claim)
        except PermanentError as exc:
            return Outcome(error=exc.message, error_class=exc.code, permanent=True)
        return await start_child(self.children, claim, request)

    async def record(self, claim: Claim, outcome: Outcome) -> str:
        """Record the attempt's outcome unless the lease was lost (then it is discarded)."""
        recorded = await self._record(claim, outcome)
        if recorded.run_next is not None:
            self.changes.dispatcher.dispatch(
                [recorded.run_next],
                priority=claim.task.priority or DEFAULT_PRIORITY,
                limited=recorded.next_limited,
            )
        return recorded.result

    async def _record(self, claim: Claim, outcome: Outcome) -> Recorded:
        """`record`, also saying which ready child this worker may run next."""
        if outcome.awaiting is not None:  # the step now waits holding no worker
            if outcome.awaiting.startswith(AWAITING_ITEMS) and self.items is not None:
                limit = self.items.limit_of(
                    claim.task.namespace, claim.handler_name, claim.handler_version, claim.step_name
                )
                return Recorded(await expand(self.changes, claim, outcome.results, limit))
            return Recorded(await park(self.changes, claim, outcome.awaiting))
        write = self.store.complete if outcome.ok else self.store.fail
        (recorded,) = await write([(claim, outcome)])
        if not outcome.ok and recorded.result != "discarded":
            # Operators read failures in the log, not only in the API.
            log.warning(
                "step failed: task %s step %s attempt %d error %s (%s): %s",
                claim.task.id,
                claim.step_name,
                claim.attempt,
                outcome.error_class,
                "retrying" if recorded.result == "retrying" else "failed for good",
                outcome.error,
                extra={
                    "task_id": str(claim.task.id),
                    "step": claim.step_name,
                    "attempt": claim.attempt,
                    "error_class": outcome.error_class,
                },
            )
        return recorded


async def _call(process: Any, ctx: StepContext) -> Any:
    """Await async handlers on the loop; run sync ones in a thread so the loop stays free."""
    if inspect.iscoroutinefunction(process):
        return await process(ctx)
    result = await asyncio.to_thread(process, ctx)
    if inspect.isawaitable(result):
        result = await result
    return result
