"""Task use cases: create (one transaction), read, list, update, cancel, retry, explain."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from server.db.models import Task
from server.db.rows import snapshots
from server.domain.errors import InvalidTransition, ValidationFailed
from server.domain.readiness import BACKING_OFF, QUEUED, WAITING_ON_PARENTS, explain
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.domain.views import (
    BlockedReason,
    CreateTask,
    DependencyAnalysis,
    StepView,
    TaskFilter,
    TaskPage,
    TaskView,
    TransitionEvent,
)
from server.engine.changes import StateChanges, TaskRef
from server.engine.progress import advance
from server.services import queries
from server.services.catalogue import Catalogue
from server.services.creation import TaskCreator
from server.services.registry import HandlerRegistry
from server.services.workers import WorkerRegistry

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
        self.workers = workers
        self.creator = TaskCreator(changes, registry, catalogue)

    async def create_task(self, req: CreateTask) -> tuple[TaskView, bool]:
        """Create a task with its steps and edges; returns (task, created). See `creation`."""
        return await self.creator.create(req)

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
        if first < 0:
            raise ValidationFailed("Invalid pagination", {"first": ["must be >= 0"]})
        return await queries.tasks_after(flt, first=min(first, MAX_PER_PAGE), after=after)

    async def update_task(
        self, task_id: UUID | str, *, reason: str | None = None, tags: list[str] | None = None
    ) -> TaskView:
        """Change a task's `reason` and/or `tags` (no state change)."""
        row = await queries.find_task(task_id)
        fields: dict[str, Any] = {}
        if reason is not None:
            fields["reason"] = reason
        if tags is not None:
            if not all(isinstance(t, str) for t in tags):
                raise ValidationFailed("Invalid tags", {"tags": ["must be a list of strings"]})
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

    async def analyze_dependencies(
        self, task_id: UUID | str, *, workers_alive: bool | None = None
    ) -> DependencyAnalysis:
        """Which steps are done, runnable (or running) and blocked, each blocked one with why.

        Unless told, whether any worker is alive comes from the heartbeats, so a ready step
        with nobody to run it says `no_live_worker` rather than `queued`.
        """
        task = await self.get_task(task_id)
        steps = (await queries.steps_by_task([task.id]))[task.id]
        if workers_alive is None:
            workers_alive = self.workers is None or bool(await self.workers.live())
        return self.analysis_of(task, steps, workers_alive=workers_alive)

    def explain_steps(
        self, task: TaskView, steps: Sequence[StepView], *, workers_alive: bool = True
    ) -> dict[str, BlockedReason | None]:
        """Why each step of `task` is not running, by name (None when running or done). No I/O."""
        return explain(
            snapshots(steps),
            task_status=task.status,
            now=self.changes.clock.now(),
            workers_alive=workers_alive,
        )

    def analysis_of(
        self, task: TaskView, steps: Sequence[StepView], *, workers_alive: bool = True
    ) -> DependencyAnalysis:
        """`analyze_dependencies` over already-loaded steps (batched readers use it). No I/O."""
        reasons = self.explain_steps(task, steps, workers_alive=workers_alive)
        completed = tuple(s.name for s in steps if s.status in DONE_STEP_STATES)
        ready = tuple(
            s.name
            for s in steps
            if s.status is StepState.IN_PROGRESS
            or ((r := reasons[s.name]) is not None and r.code == QUEUED)
        )
        blocked = tuple(
            (s.name, r) for s in steps if (r := reasons[s.name]) is not None and r.code != QUEUED
        )
        return DependencyAnalysis(_summary(task.status, blocked), ready, completed, blocked)


def _summary(status: TaskState, blocked: tuple[tuple[str, Any], ...]) -> str:
    if status is TaskState.COMPLETE:
        return "All steps are complete"
    if status is TaskState.CANCELLED:
        return "Task was cancelled"
    if status is TaskState.ERROR:
        return "Task failed: a step exhausted its retries or failed permanently"
    stuck = [name for name, r in blocked if r.code not in (WAITING_ON_PARENTS, BACKING_OFF)]
    if stuck:
        return f"Task is blocked at {', '.join(stuck)}"
    return "Task is progressing normally through dependency chain"
