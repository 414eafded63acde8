"""Child tasks: the `ChildStarter` the engine calls for `task:` steps and `step.start_task`,
and the cascade of a parent's cancellation to its unfinished children.

A child is keyed on (parent task, parent step) by a unique index: the step's first run creates
it, any later run (a retry after a lost worker) finds it. The nesting depth is capped at run
time (`MAX_CHILD_DEPTH`): a loop that load-time checks cannot see (a Python handler starting
its own handler) ends with a clear error instead of running for ever.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError

from server.db.models import Task
from server.domain.errors import DomainError, PermanentError
from server.domain.states import TERMINAL_TASK_STATES, TaskState
from server.domain.views import CreateTask, TaskView
from server.engine.awaiting import settle_parent
from server.engine.changes import StateChanges
from server.engine.progress import advance
from server.engine.store import Claim
from server.engine.waits import MAX_CHILD_DEPTH, ChildRequest
from server.services import queries
from server.services.creation import TaskCreator

log = logging.getLogger(__name__)

CHILD_DEPTH_EXCEEDED = "CHILD_DEPTH_EXCEEDED"


class ChildTasks:
    """Finds or creates child tasks; `__call__` is the engine's `ChildStarter`."""

    def __init__(self, creator: TaskCreator, changes: StateChanges) -> None:
        self.creator = creator
        self.changes = changes

    async def __call__(self, claim: Claim, request: ChildRequest) -> UUID:
        """The child of (claim's task, claim's step), created on the first call."""
        existing = await self._existing(claim.task.id, claim.step_name)
        if existing is not None:
            return existing
        depth = await depth_of(claim.task.id)
        if depth >= MAX_CHILD_DEPTH:
            raise PermanentError(
                f"child task not started: tasks nest {depth + 1} deep, over the limit of "
                f"{MAX_CHILD_DEPTH} (do handlers start each other in a loop?)",
                code=CHILD_DEPTH_EXCEEDED,
            )
        req = CreateTask(
            namespace=request.namespace,
            name=request.name,
            version=request.version,
            context=request.context,
            initiator=f"task {claim.task.id}",
            reason=f"started by step {claim.step_name}",
            parent_task_id=claim.task.id,
            parent_step=claim.step_name,
        )
        try:
            view, _ = await self.creator.create(req)
        except IntegrityError:  # a concurrent run of the step created it first
            existing = await self._existing(claim.task.id, claim.step_name)
            if existing is None:
                raise
            return existing
        except DomainError as exc:  # unknown handler, a context the child refuses
            raise PermanentError(f"child task not started: {exc}", code=exc.code) from exc
        return UUID(str(view.id))

    @staticmethod
    async def _existing(parent_id: UUID, step: str) -> UUID | None:
        rows = await Task.filter(parent_task_id=parent_id, parent_step=step).values_list(
            "id", flat=True
        )
        return UUID(str(rows[0])) if rows else None

    async def after_cancel(
        self, task_ids: Sequence[UUID], cancel: Callable[[UUID], Awaitable[object]]
    ) -> None:
        """Once the cancellation of these tasks has committed (a single or a bulk cancel):
        cancel their unfinished children (and theirs, through `cancel`), and fail the parent
        steps that waited for them. Each in its own transaction: no transaction holds a
        parent's lock while it takes a child's. Two reads cover a whole bulk chunk."""
        if not task_ids:
            return
        await _cancel_unfinished(cancel, parent_task_id__in=list(task_ids))
        awaited = await Task.filter(
            id__in=list(task_ids), parent_task_id__isnull=False
        ).values_list("id", flat=True)
        for task_id in awaited:
            async with self.changes.transaction() as tx:
                await settle_parent(tx, UUID(str(task_id)), TaskState.CANCELLED, advance)

    async def cancel_child_of_step(
        self, task_id: UUID, step: str, cancel: Callable[[UUID], Awaitable[object]]
    ) -> None:
        """A step was cancelled by hand: cancel the child it started, when unfinished (nothing
        waits for it any more). After the step's transaction committed, as every cascade."""
        await _cancel_unfinished(cancel, parent_task_id=task_id, parent_step=step)


async def _cancel_unfinished(cancel: Callable[[UUID], Awaitable[object]], **match: Any) -> None:
    """Cancel the unfinished tasks `match` selects, each through `cancel` (its own
    transaction, and its own cascade)."""
    rows = await Task.filter(
        status__not_in=[s.value for s in TERMINAL_TASK_STATES], **match
    ).values_list("id", flat=True)
    for child_id in rows:
        try:
            await cancel(UUID(str(child_id)))
        except DomainError:  # finished meanwhile
            log.info("child task %s was not cancelled: it finished", child_id)


async def depth_of(task_id: UUID) -> int:
    """How many ancestors the task has (0 for a top-level task), counted up to the cap."""
    depth, current = 0, task_id
    while depth <= MAX_CHILD_DEPTH:
        rows = await Task.filter(id=current).values_list("parent_task_id", flat=True)
        if not rows or rows[0] is None:
            return depth
        current, depth = UUID(str(rows[0])), depth + 1
    return depth


async def children_of(task_id: UUID) -> list[TaskView]:
    """The child tasks a task's steps started, in creation order."""
    ids = (
        await Task.filter(parent_task_id=task_id)
        .order_by("created_at")
        .values_list("id", flat=True)
    )
    found = await queries.tasks_by_ids([UUID(str(i)) for i in ids])
    return [found[UUID(str(i))] for i in ids if UUID(str(i)) in found]
