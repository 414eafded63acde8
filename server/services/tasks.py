"""Task use cases: create (one transaction), read, list, update, cancel, retry, explain."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from server.db.models import Task
from server.domain.errors import InvalidTransition, ValidationFailed
from server.domain.inputs import (
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TAGS,
    InputProblems,
    text_filter_problems,
)
from server.domain.readiness import QUEUED
from server.domain.states import StepState, TaskState
from server.domain.views import (
    CreateTask,
    StepView,
    TaskDependencies,
    TaskFilter,
    TaskPage,
    TaskView,
    TransitionEvent,
)
from server.engine.changes import StateChanges, TaskRef
from server.engine.progress import advance
from server.engine.workers import WorkerRegistry
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from server.services.creation import Outcome, TaskCreator
from server.services.dependencies import Liveness, analyse

MAX_PER_PAGE = 100
_OPEN_STEP_STATES = (StepState.PENDING, StepState.IN_PROGRESS, StepState.ERROR)
"""Steps a task's cancellation cancels with it."""


class TaskService:
    """Creates tasks and applies task-level commands through `StateChanges`."""

    def __init__(
        self,
        changes: StateChanges,
        registry: HandlerRegistry,
        catalogue: Catalogue,
        workers: WorkerRegistry | None = None,
    ) -> None:
        self.changes = changes
        self.registry = registry
        self.liveness = Liveness(workers)
        self.creator = TaskCreator(changes, registry, catalogue)

    async def create_task(self, req: CreateTask) -> tuple[TaskView, bool]:
        """Create a task with its steps and edges; returns (task, created). See `creation`."""
        return await self.creator.create(req)

    async def create_tasks(self, reqs: Sequence[CreateTask]) -> list[Outcome]:
        """Create many tasks: one outcome per request, in order (see `creation`)."""
        return await self.creator.create_many(reqs)

    async def get_task(self, task_id: UUID | str) -> TaskView:
        """The task, or TaskNotFound."""
        return await queries.find_task(task_id)

    async def history(self, task_id: UUID | str, *, after: int = 0) -> list[TransitionEvent]:
        """The task's transitions after cursor `after`, oldest first, as the hub publishes them.

        Lets a stream replay history and then continue live. TaskNotFound for an unknown task.
        """
        row = await queries.find_task(task_id)
        views = (await queries.transitions_by_task([row.id], after=after))[row.id]
        return [v.as_event(row.namespace) for v in views]

    async def list_tasks(self, flt: TaskFilter, *, page: int = 1, per_page: int = 25) -> TaskPage:
        """Offset pagination (REST): page >= 1, per_page capped at 100."""
        _check_filter(flt)
        errors: dict[str, list[str]] = {}
        if page < 1:
            errors["page"] = ["must be greater than or equal to 1"]
        if per_page < 1:
            errors["per_page"] = ["must be greater than or equal to 1"]
        if errors:
            raise ValidationFailed("Invalid pagination", errors)
        return await queries.list_tasks(flt, page=page, per_page=min(per_page, MAX_PER_PAGE))

    async def list_tasks_after(
        self, flt: TaskFilter, *, first: int = 25, after: str | None = None
    ) -> TaskPage:
        """Keyset pagination (GraphQL connections); `first` capped at 100."""
        _check_filter(flt)
        if first < 0:
            raise ValidationFailed("Invalid pagination", {"first": ["must be >= 0"]})
        return await queries.tasks_after(flt, first=min(first, MAX_PER_PAGE), after=after)

    async def update_task(
        self, task_id: UUID | str, *, reason: str | None = None, tags: list[str] | None = None
    ) -> TaskView:
        """Change a task's `reason` and/or `tags` (no state change)."""
        if tags is not None and not all(isinstance(t, str) for t in tags):
            raise ValidationFailed("Invalid tags", {"tags": ["must be a list of strings"]})
        problems = InputProblems()
        problems.text("reason", reason, MAX_REASON_LENGTH)
        problems.texts("tags", tags, MAX_KEY_LENGTH, MAX_TAGS)
        if problems:
            raise ValidationFailed("Invalid task update", problems.details)
        row = await queries.find_task(task_id)
        fields: dict[str, Any] = {}
        if reason is not None:
            fields["reason"] = reason
        if tags is not None:
            fields["tags"] = list(tags)
        if fields:
            await Task.filter(id=row.id).update(updated_at=self.changes.clock.now(), **fields)
        return await self.get_task(row.id)

    async def cancel_task(self, task_id: UUID | str) -> TaskView:
        """Cancel the task and every unfinished step. Idempotent; 409 once it has completed."""
        row = await queries.find_task(task_id)
        ref = TaskRef(row.id, row.namespace)
        async with self.changes.on_task(row.id) as (tx, current):
            if current is not TaskState.CANCELLED:
                if not await tx.move_task(
                    ref,
                    current,
                    TaskState.CANCELLED,
                    "cancelled",  # not a status: the history's reason
                    completed_at=tx.now,
                ):
                    raise InvalidTransition("task", current.value, TaskState.CANCELLED.value)
                for step_id, name, status in await tx.steps_in(row.id, _OPEN_STEP_STATES):
                    await tx.move_step(
                        ref,
                        step_id,
                        name,
                        status,
                        StepState.CANCELLED,
                        "task cancelled",
                        lease_owner=None,
                        lease_expires_at=None,
                    )
        return await self.get_task(row.id)

    async def retry_task(self, task_id: UUID | str) -> TaskView:
        """Re-run the failed steps of an errored task (attempts start again from zero)."""
        row = await queries.find_task(task_id)
        ref = TaskRef(row.id, row.namespace)
        async with self.changes.on_task(row.id) as (tx, current):
            if current is not TaskState.ERROR:
                raise InvalidTransition("task", current.value, TaskState.PENDING.value)
            for step_id, name, _ in await tx.steps_in(row.id, [StepState.ERROR]):
                await tx.move_step(
                    ref,
                    step_id,
                    name,
                    StepState.ERROR,
                    StepState.PENDING,
                    "retried",
                    attempts=0,
                    next_attempt_at=None,
                    dispatched_at=None,
                )
            await advance(tx, ref, current)
        return await self.get_task(row.id)

    async def dependencies(self, task_id: UUID | str) -> TaskDependencies:
        """The task, its steps, why each waiting step waits, and the summary. TaskNotFound for
        an unknown task. Whether any worker is alive is measured here, so a ready step with
        nobody to run it says `no_live_worker` rather than `queued`."""
        task = await self.get_task(task_id)
        steps = (await queries.steps_by_task([task.id]))[task.id]
        return (await self.dependencies_of([(task, steps)]))[0]

    async def dependencies_of(
        self, loaded: Sequence[tuple[TaskView, Sequence[StepView]]]
    ) -> list[TaskDependencies]:
        """`dependencies` of tasks whose steps the caller has already read (GraphQL batches
        a page of tasks): liveness is measured once for them all, and only when one of their
        steps is ready, the one answer it changes (`queued` or `no_live_worker`). Reads of
        finished or waiting tasks ask nobody."""
        now = self.changes.clock.now()
        found = [analyse(task, steps, now=now, workers_alive=True) for task, steps in loaded]
        ready = any(r.code == QUEUED for d in found for r in d.reasons.values())
        if ready and not await self.liveness.any_alive():
            found = [analyse(t, steps, now=now, workers_alive=False) for t, steps in loaded]
        return found


def _check_filter(flt: TaskFilter) -> None:
    problems = text_filter_problems(
        {"namespace": flt.namespace, "name": flt.name, "version": flt.version}
    )
    if problems:
        raise ValidationFailed("Invalid filter", problems)
