"""Task use cases: create (one transaction), read, list, update, cancel, retry, explain."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from server.db.models import Task
from server.domain.errors import DomainError, ValidationFailed
from server.domain.inputs import (
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TAGS,
    InputProblems,
    text_filter_problems,
)
from server.domain.readiness import NO_LIVE_WORKER, QUEUED
from server.domain.views import (
    CreateTask,
    Rerun,
    StepView,
    TaskDependencies,
    TaskFilter,
    TaskPage,
    TaskSlice,
    TaskView,
    TransitionEvent,
)
from server.engine.changes import StateChanges, TaskRef
from server.engine.workers import WorkerRegistry
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services import forks, queries
from server.services.bulk import BulkActions
from server.services.children import ChildTasks
from server.services.creation import Outcome, TaskCreator
from server.services.dependencies import Liveness, analyse
from server.services.flow_status import limit_reasons
from server.services.task_rules import cancel_in, retry_in

READY = (QUEUED, NO_LIVE_WORKER)
"""Codes of a ready step: one with limits may be waiting for a slot or a window instead."""

MAX_PER_PAGE = 100


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
        self.children = ChildTasks(self.creator, changes)
        self.creator.after_cancel = self._after_cancel
        self.bulk = BulkActions(changes, self.creator, self._after_cancel)

    async def create_task(self, req: CreateTask) -> tuple[TaskView, bool]:
        """Create a task with its steps and edges; returns (task, created). See `creation`."""
        return await self.creator.create(req)

    async def rerun_task(self, task_id: UUID | str, req: Rerun) -> TaskView:
        """Fork a finished task from a step with new input (`server.services.forks`)."""
        return await forks.rerun(self.creator, task_id, req)

    async def create_tasks(self, reqs: Sequence[CreateTask]) -> list[Outcome]:
        """Create many tasks: one outcome per request, in order (see `creation`)."""
        return await self.creator.create_many(reqs)

    async def get_task(self, task_id: UUID | str) -> TaskView:
        """The task, or TaskNotFound."""
        return await queries.find_task(task_id)

    async def get_task_with_steps(
        self, task_id: UUID | str, *, with_edges: bool = True
    ) -> tuple[TaskView, list[StepView]]:
        """The task and its steps in position order (read together), or TaskNotFound;
        without `with_edges`, the steps' parents and children are left empty."""
        return await queries.find_task_with_steps(task_id, with_edges=with_edges)

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
        self, flt: TaskFilter, *, first: int = 25, after: str | None = None, count: bool = True
    ) -> TaskSlice:
        """Keyset pagination (GraphQL connections); `first` capped at 100; the total only
        with `count`."""
        _check_filter(flt)
        if first < 0:
            raise ValidationFailed("Invalid pagination", {"first": ["must be >= 0"]})
        return await queries.tasks_after(
            flt, first=min(first, MAX_PER_PAGE), after=after, count=count
        )

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
        async with self.changes.on_task(row.id) as (tx, current):
            cancelled = await cancel_in(tx, TaskRef(row.id, row.namespace), current)
        if cancelled:  # after the commit: children are cancelled each in its own transaction
            await self._after_cancel([row.id])
        return await self.get_task(row.id)

    async def step_cancelled(self, task_id: UUID, step: str) -> None:
        """A step was cancelled by hand: the child task it started, if any, is cancelled."""
        await self.children.cancel_child_of_step(task_id, step, self.cancel_task)

    async def _after_cancel(self, task_ids: Sequence[UUID]) -> None:
        """What follows a committed cancellation, single or bulk: the children, the parent."""
        await self.children.after_cancel(task_ids, self.cancel_task)

    async def retry_task(self, task_id: UUID | str) -> TaskView:
        """Re-run the failed steps of an errored task (attempts start again from zero)."""
        row = await queries.find_task(task_id)
        async with self.changes.on_task(row.id) as (tx, current):
            await retry_in(tx, TaskRef(row.id, row.namespace), current)
        return await self.get_task(row.id)

    async def dependencies(self, task_id: UUID | str) -> TaskDependencies:
        """The task, its steps, why each waiting step waits, and the summary. TaskNotFound for
        an unknown task. Whether any worker is alive is measured here, so a ready step with
        nobody to run it says `no_live_worker` rather than `queued`."""
        return (await self.dependencies_of([await queries.find_task_with_steps(task_id)]))[0]

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
        alive = True
        if ready and not await self.liveness.any_alive():
            alive = False
            found = [analyse(t, steps, now=now, workers_alive=False) for t, steps in loaded]
        # A ready step with limits may be waiting for a slot or a rate window instead.
        waiting = [
            d.task.id
            for d in found
            if any(r.code in READY for r in d.reasons.values()) and self._declares_limits(d.task)
        ]
        limited = await limit_reasons(waiting, now) if waiting else {}
        if limited:
            found = [
                analyse(t, s, now=now, workers_alive=alive, limited=limited.get(t.id))
                if t.id in limited
                else d
                for (t, s), d in zip(loaded, found, strict=True)
            ]
        return found

    def _declares_limits(self, task: TaskView) -> bool:
        """True when the task's handler declares a concurrency or rate limit: only then can a
        ready step of it be waiting for a slot (the others cost no limit query)."""
        try:
            template = self.registry.get(task.namespace, task.name, task.version)
        except DomainError:
            return True  # a handler this process does not know: ask the database
        return template.concurrency is not None or any(
            s.concurrency is not None or s.rate_limit is not None for s in template.steps
        )


def _check_filter(flt: TaskFilter) -> None:
    problems = text_filter_problems(
        {"namespace": flt.namespace, "name": flt.name, "version": flt.version}
    )
    if problems:
        raise ValidationFailed("Invalid filter", problems)
