"""Starting a child task from a step, and handing the step over to wait for it.

The runner meets a `task:` step, or a handler that called `step.start_task(...)`: it asks the
`ChildStarter` (the creation service, wired in by the container) for the child, keyed on
(parent task, parent step) so that a step run twice never makes two children, then `park`s the
step under the child's lease (`server.engine.awaiting`). The worker is free at once; the
child's finalization completes or fails the step.

Parking takes the parent task's lock and then reads the child's status: a child that finished
before the step was parked (it finalizes under the same lock, and found no step waiting) is
settled right here, so no outcome is missed whichever commits first.
"""

from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from server.db.models import Task, WorkflowStep
from server.domain.errors import PermanentError
from server.domain.states import TaskState
from server.domain.templates import ChildTaskSpec
from server.domain.value_paths import BadPath, resolve
from server.engine.awaiting import AWAITING_CHILD, hand_over, settle_step
from server.engine.changes import StateChanges
from server.engine.progress import advance
from server.engine.store import Claim, Outcome

MAX_CHILD_DEPTH = 8
"""Tasks nested deeper than this (a child of a child of ...) are refused at run time."""


@dataclass(frozen=True, slots=True)
class ChildRequest:
    """The child task a step asks for."""

    namespace: str
    name: str
    context: Any
    version: str | None = None


class ChildStarter(Protocol):
    """Finds or creates the child task of (claim's task, claim's step); its id.

    Raises PermanentError when the child cannot be made (unknown handler, invalid context,
    too deep); any other exception is retried like a failed attempt.
    """

    async def __call__(self, claim: Claim, request: ChildRequest) -> UUID: ...


def request_from_template(spec: ChildTaskSpec, claim: Claim) -> ChildRequest:
    """The child a `task:` step asks for; PermanentError `BAD_PATH` when its context path
    resolves to nothing."""
    try:
        context = resolve(spec.context_from, claim.context, claim.parent_results)
    except BadPath as exc:
        raise PermanentError(str(exc), code="BAD_PATH") from exc
    return ChildRequest(spec.namespace, spec.name, context, spec.version)


async def start_child(starter: ChildStarter | None, claim: Claim, request: ChildRequest) -> Outcome:
    """Find or create the child: an outcome that parks the step on it, or the failure."""
    if starter is None:
        return Outcome(error="this process cannot start child tasks", error_class="NoChildStarter")
    try:
        child_id = await starter(claim, request)
    except PermanentError as exc:
        return Outcome(
            error=exc.message, error_class=exc.code or type(exc).__name__, permanent=True
        )
    except Exception as exc:  # the database hiccuped: retried like any failed attempt
        return Outcome(error=str(exc) or repr(exc), error_class=type(exc).__name__)
    return Outcome(awaiting=f"{AWAITING_CHILD}/{child_id}")


async def park(changes: StateChanges, claim: Claim, lease: str) -> str:
    """Hand the step to `lease` and settle it at once if its child already finished:
    `awaiting`, `complete`/`failed` (settled now) or `discarded` (the lease was lost)."""
    child_id = UUID(lease.split("/", 1)[1])
    async with changes.transaction() as tx:
        status = await tx.lock_task(claim.task.id)
        if status is None or not await hand_over(tx, claim, lease):
            return "discarded"
        rows = await Task.filter(id=child_id).using_db(tx.conn).values_list("status", flat=True)
        child = TaskState(str(rows[0])) if rows else None
        if child in (TaskState.COMPLETE, TaskState.RESOLVED_MANUALLY):
            child = TaskState.COMPLETE
        elif child not in (TaskState.ERROR, TaskState.CANCELLED):
            return "awaiting"
        step = await WorkflowStep.get(id=claim.step_id, using_db=tx.conn)
        await settle_step(tx, claim.task, status, step, child_id, child, advance)
        return "complete" if child is TaskState.COMPLETE else "failed"
