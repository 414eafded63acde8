"""Task use cases: create (one transaction), read, list, update, cancel, retry, explain."""

import hashlib
import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from tortoise.exceptions import IntegrityError

from server.db.models import StepEdge, Task, Transition, WorkflowStep
from server.db.rows import snapshots, task_view
from server.domain.errors import Conflict, InvalidTransition, ValidationFailed
from server.domain.readiness import QUEUED, explain
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.domain.templates import HandlerTemplate
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
from server.metrics import task_created
from server.services import queries
from server.services.catalogue import Catalogue
from server.services.progress import advance
from server.services.registry import HandlerRegistry
from server.services.transitions import Door, TaskRef
from server.services.workers import WorkerRegistry

MAX_PER_PAGE = 100


def identity_hash(template: HandlerTemplate, context: Any) -> str:
    """A stable fingerprint of what a task would do: handler identity plus canonical context."""
    canonical = json.dumps(
        [template.namespace, template.name, template.version, context],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class TaskService:
    """Creates tasks and applies task-level commands through the door."""

    def __init__(
        self,
        door: Door,
        registry: HandlerRegistry,
        catalogue: Catalogue,
        workers: WorkerRegistry | None = None,
    ) -> None:
        self.door = door
        self.registry = registry
        self.catalogue = catalogue
        self.workers = workers

    async def create_task(self, req: CreateTask) -> tuple[TaskView, bool]:
        """Create a task with its steps and edges; returns (task, created).

        A repeated `idempotency_key` with the same request returns the original task
        (created=False); with a different request it raises Conflict. Raises
        NamespaceNotFound / HandlerNotFound / ValidationFailed; nothing is written then.
        """
        template = self.registry.get(req.namespace, req.name, req.version)
        self._validate(template, req)
        fingerprint = identity_hash(template, req.context)
        if req.idempotency_key:
            existing = await Task.get_or_none(idempotency_key=req.idempotency_key)
            if existing is not None:
                return self._same_request(existing, fingerprint), False
        try:
            view = await self._insert(template, req, fingerprint)
            task_created(view.namespace)  # metrics: creation publishes no transition event
            return view, True
        except IntegrityError:
            existing = await Task.get_or_none(idempotency_key=req.idempotency_key)
            if existing is None:
                raise
            return self._same_request(existing, fingerprint), False

    def _validate(self, template: HandlerTemplate, req: CreateTask) -> None:
        if not isinstance(req.context, dict):
            raise ValidationFailed("Invalid task context", {"context": ["must be a JSON object"]})
        self.registry.validate_context(template, req.context)
        problems = []
        for name in req.bypass_steps:
            try:
                if not template.step(name).skippable:
                    problems.append(f"step '{name}' is not skippable")
            except KeyError:
                problems.append(f"unknown step '{name}'")
        if problems:
            raise ValidationFailed("Invalid bypass_steps", {"bypass_steps": problems})

    @staticmethod
    def _same_request(existing: Task, fingerprint: str) -> TaskView:
        if existing.identity_hash != fingerprint:
            raise Conflict(
                "Idempotency-Key was already used with a different request",
                {"idempotency_key": ["already used with a different request"]},
            )
        return task_view(existing)

    async def _insert(
        self, template: HandlerTemplate, req: CreateTask, fingerprint: str
    ) -> TaskView:
        named_task_id = await self.catalogue.named_task_id(template)
        bypass = set(req.bypass_steps)
        waiting = {
            s.name: sum(p not in bypass for p in template.graph.parents(s.name))
            for s in template.steps
        }
        ready = [s.name for s in template.steps if waiting[s.name] == 0 and s.name not in bypass]
        async with self.door.transaction() as uow:
            now = uow.now
            task = await Task.create(
                using_db=uow.conn,
                id=uuid4(),
                named_task_id=named_task_id,
                namespace=template.namespace,
                name=template.name,
                version=template.version,
                status=TaskState.PENDING.value,
                context=req.context,
                initiator=req.initiator,
                source_system=req.source_system,
                reason=req.reason,
                tags=list(req.tags),
                bypass_steps=list(req.bypass_steps),
                idempotency_key=req.idempotency_key,
                identity_hash=fingerprint,
                requested_at=now,
                created_at=now,
                updated_at=now,
                remaining=len(template.steps) - len(bypass),
            )
            await WorkflowStep.bulk_create(
                [
                    WorkflowStep(
                        task_id=task.id,
                        name=s.name,
                        position=i,
                        handler_class=s.handler_class,
                        status=StepState.PENDING.value,
                        retry_limit=s.retry_limit,
                        retryable=s.retryable,
                        skippable=s.skippable,
                        timeout_seconds=s.timeout_seconds,
                        created_at=now,
                        updated_at=now,
                        waiting_on=waiting[s.name],
                        dispatched_at=now if s.name in ready else None,
                    )
                    for i, s in enumerate(template.steps)
                ],
                using_db=uow.conn,
            )
            ids = dict(
                await WorkflowStep.filter(task_id=task.id)
                .using_db(uow.conn)
                .values_list("name", "id")
            )
            if template.graph.edges:
                await StepEdge.bulk_create(
                    [
                        StepEdge(task_id=task.id, from_step_id=ids[p], to_step_id=ids[c])
                        for p, c in template.graph.edges
                    ],
                    using_db=uow.conn,
                )
            await Transition.bulk_create(
                [
                    Transition(
                        task_id=task.id,
                        to_status="pending",
                        reason="created",
                        metadata={},
                        created_at=now,
                    )
                ]
                + [
                    Transition(
                        task_id=task.id,
                        step_id=ids[s.name],
                        step_name=s.name,
                        to_status="pending",
                        reason="created",
                        metadata={},
                        created_at=now,
                    )
                    for s in template.steps
                ],
                using_db=uow.conn,
            )
            ref = TaskRef(task.id, task.namespace)
            uow.nudge([ids[name] for name in ready])
            if bypass:
                for name in template.graph.execution_order:
                    if name in bypass:
                        await uow.move_step(
                            ref,
                            ids[name],
                            name,
                            StepState.PENDING,
                            StepState.RESOLVED_MANUALLY,
                            "bypassed",
                            completed_at=now,
                        )
                await advance(uow, ref, TaskState.PENDING)
        if bypass:
            return await self.get_task(task.id)
        return task_view(task)

    async def get_task(self, task_id: UUID | str) -> TaskView:
        """The task, or TaskNotFound."""
        return task_view(await queries.task_row(task_id))

    async def history(self, task_id: UUID | str, *, after: int = 0) -> list[TransitionEvent]:
        """The task's transitions after cursor `after`, oldest first, as the hub publishes them.

        Lets a stream replay history and then continue live. TaskNotFound for an unknown task.
        """
        row = await queries.task_row(task_id)
        views = (await queries.transitions_by_task([row.id], after=after))[row.id]
        return [
            TransitionEvent(
                cursor=v.id,
                task_id=str(v.task_id),
                namespace=row.namespace,
                step_id=v.step_id,
                step_name=v.step_name,
                from_status=v.from_status,
                to_status=v.to_status,
                reason=v.reason,
                occurred_at=v.occurred_at,
            )
            for v in views
        ]

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
        row = await queries.task_row(task_id)
        fields: dict[str, Any] = {}
        if reason is not None:
            fields["reason"] = reason
        if tags is not None:
            if not all(isinstance(t, str) for t in tags):
                raise ValidationFailed("Invalid tags", {"tags": ["must be a list of strings"]})
            fields["tags"] = list(tags)
        if fields:
            await Task.filter(id=row.id).update(updated_at=self.door.clock.now(), **fields)
        return await self.get_task(row.id)

    async def cancel_task(self, task_id: UUID | str) -> TaskView:
        """Cancel the task and every unfinished step. Idempotent; 409 once it has completed."""
        row = await queries.task_row(task_id)
        ref = TaskRef(row.id, row.namespace)
        async with self.door.transaction() as uow:
            current = await uow.lock_task(row.id)
            assert current is not None  # tasks are never deleted while addressed
            if current is not TaskState.CANCELLED:
                if not await uow.move_task(
                    ref, current, TaskState.CANCELLED, "cancelled", completed_at=uow.now
                ):
                    raise InvalidTransition("task", current.value, TaskState.CANCELLED.value)
                open_steps = (
                    await WorkflowStep.filter(
                        task_id=row.id, status__in=["pending", "in_progress", "error"]
                    )
                    .using_db(uow.conn)
                    .values_list("id", "name", "status")
                )
                for step_id, name, status in open_steps:
                    await uow.move_step(
                        ref,
                        step_id,
                        name,
                        StepState(status),
                        StepState.CANCELLED,
                        "task cancelled",
                        lease_owner=None,
                        lease_expires_at=None,
                    )
        return await self.get_task(row.id)

    async def retry_task(self, task_id: UUID | str) -> TaskView:
        """Re-run the failed steps of an errored task (attempts start again from zero)."""
        row = await queries.task_row(task_id)
        ref = TaskRef(row.id, row.namespace)
        async with self.door.transaction() as uow:
            current = await uow.lock_task(row.id)
            assert current is not None  # tasks are never deleted while addressed
            if current is not TaskState.ERROR:
                raise InvalidTransition("task", current.value, TaskState.PENDING.value)
            failed = (
                await WorkflowStep.filter(task_id=row.id, status="error")
                .using_db(uow.conn)
                .values_list("id", "name")
            )
            for step_id, name in failed:
                await uow.move_step(
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
            await advance(uow, ref, current)
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
            now=self.door.clock.now(),
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
    stuck = [name for name, r in blocked if r.code not in ("waiting_on_parents", "backing_off")]
    if stuck:
        return f"Task is blocked at {', '.join(stuck)}"
    return "Task is progressing normally through dependency chain"
