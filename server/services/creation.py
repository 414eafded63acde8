"""Task creation: validate against the handler, then write the task, its steps, edges and
history in one transaction, dispatching the root steps after commit.

Every input rule (`server.domain.inputs`, the handler's context schema, bypassable steps) is
checked first; any breach is one InvalidTaskConfig, whichever surface asked.

Idempotency: a repeated `idempotency_key` with the same request (same identity hash) returns
the original task; with a different request it is a Conflict. Keys are scoped to the caller
(`CreateTask.subject`): another caller's key is just a new key. Concurrent duplicates are
settled by the (scope, key) unique index.
"""

import hashlib
import json
from datetime import datetime
from typing import Any
from uuid import uuid4

from tortoise.exceptions import IntegrityError

from server.db.models import StepEdge, Task, Transition, WorkflowStep
from server.db.rows import task_view
from server.domain.errors import Conflict, InvalidTaskConfig, ValidationFailed
from server.domain.inputs import (
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TAGS,
    MAX_VERSION_LENGTH,
    InputProblems,
    start_time,
)
from server.domain.states import StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask, TaskView
from server.engine.changes import StateChanges, TaskRef
from server.engine.progress import advance
from server.infra.metrics import task_created
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services import queries


def identity_hash(template: HandlerTemplate, context: Any) -> str:
    """A stable fingerprint of what a task would do: handler identity plus canonical context."""
    canonical = json.dumps(
        [template.namespace, template.name, template.version, context],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_scope(subject: str | None) -> str:
    """Whose idempotency keys: a digest of the token subject (fixed width for the index),
    '' when there is no caller (open mode: one scope for everybody)."""
    if subject is None:
        return ""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


def input_problems(req: CreateTask) -> dict[str, list[str]]:
    """What breaks the shared input rules (NUL, lengths, JSON numbers, depth, size)."""
    problems = InputProblems()
    problems.text("namespace", req.namespace, MAX_NAME_LENGTH)
    problems.text("name", req.name, MAX_NAME_LENGTH)
    problems.text("version", req.version, MAX_VERSION_LENGTH)
    problems.text("idempotency_key", req.idempotency_key, MAX_KEY_LENGTH)
    problems.text("initiator", req.initiator, MAX_KEY_LENGTH)
    problems.text("source_system", req.source_system, MAX_KEY_LENGTH)
    problems.text("reason", req.reason, MAX_REASON_LENGTH)
    problems.texts("tags", req.tags, MAX_KEY_LENGTH, MAX_TAGS)
    problems.texts("bypass_steps", req.bypass_steps, MAX_NAME_LENGTH)
    problems.json("context", req.context)
    return problems.details


class TaskCreator:
    """Turns a validated request into a task, in one transaction."""

    def __init__(
        self, changes: StateChanges, registry: HandlerRegistry, catalogue: Catalogue
    ) -> None:
        self.changes = changes
        self.registry = registry
        self.catalogue = catalogue

    async def create(self, req: CreateTask) -> tuple[TaskView, bool]:
        """Create a task with its steps and edges; returns (task, created).

        A repeated `idempotency_key` with the same request returns the original task
        (created=False); with a different request it raises Conflict. Raises
        NamespaceNotFound / HandlerNotFound / ValidationFailed; nothing is written then.
        """
        try:
            template, start = self._validated(req)
        except ValidationFailed as exc:
            if isinstance(exc, InvalidTaskConfig):
                raise
            raise InvalidTaskConfig.of(exc.details or {}) from exc
        fingerprint = identity_hash(template, req.context)
        scope = idempotency_scope(req.subject)
        if req.idempotency_key:
            existing = await self._keyed(scope, req.idempotency_key)
            if existing is not None:
                return self._same_request(existing, fingerprint), False
        try:
            view = await self._insert(template, req, fingerprint, scope, start)
            task_created(view.namespace)  # metrics: counting events skips creations
            return view, True
        except IntegrityError:
            existing = await self._keyed(scope, req.idempotency_key)
            if existing is None:
                raise
            return self._same_request(existing, fingerprint), False

    @staticmethod
    async def _keyed(scope: str, key: str | None) -> Task | None:
        if not key:
            return None
        return await Task.get_or_none(idempotency_scope=scope, idempotency_key=key)

    def _validated(self, req: CreateTask) -> tuple[HandlerTemplate, datetime | None]:
        """The template to run and the start time (None: at once), once every input rule
        holds (ValidationFailed otherwise)."""
        if not isinstance(req.context, dict):
            raise InvalidTaskConfig.of({"context": ["must be a JSON object"]})
        problems = input_problems(req)
        timing = InputProblems()
        start = start_time(timing, req.run_at, req.delay_seconds, self.changes.clock.now())
        problems.update(timing.details)
        if problems:
            raise InvalidTaskConfig.of(problems)
        template = self.registry.get(req.namespace, req.name, req.version)
        self.registry.validate_context(template, req.context)
        problems = {}
        for name in req.bypass_steps:
            try:
                if not template.step(name).skippable:
                    problems.setdefault("bypass_steps", []).append(
                        f"step '{name}' is not skippable"
                    )
            except KeyError:
                problems.setdefault("bypass_steps", []).append(f"unknown step '{name}'")
        if problems:
            raise InvalidTaskConfig.of(problems)
        return template, start

    @staticmethod
    def _same_request(existing: Task, fingerprint: str) -> TaskView:
        if existing.identity_hash != fingerprint:
            raise Conflict(
                "Idempotency-Key was already used with a different request",
                {"idempotency_key": ["already used with a different request"]},
            )
        return task_view(existing)

    async def _insert(
        self,
        template: HandlerTemplate,
        req: CreateTask,
        fingerprint: str,
        scope: str,
        start: datetime | None,
    ) -> TaskView:
        named_task_id = await self.catalogue.named_task_id(template)
        bypass = set(req.bypass_steps)
        waiting = {
            s.name: sum(p not in bypass for p in template.graph.parents(s.name))
            for s in template.steps
        }
        ready = [s.name for s in template.steps if waiting[s.name] == 0 and s.name not in bypass]
        async with self.changes.transaction() as tx:
            now = tx.now
            # A delayed task's root steps are sent once, as messages delayed until `start`,
            # and stamped `dispatched_at = start`: the sweeper re-sends a step only when its
            # stamp is a window old, so it leaves them alone until then (the claim would
            # refuse them anyway) and re-sends them if that message was lost.
            sent_at = start if start is not None and start > now else now
            task = await Task.create(
                using_db=tx.conn,
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
                idempotency_scope=scope,
                identity_hash=fingerprint,
                requested_at=now,
                created_at=now,
                updated_at=now,
                # Counted down as steps become done, bypassed ones included: their moves to
                # resolved_manually below count them (`Transaction.move_step`).
                remaining=len(template.steps),
                run_at=start,
                parent_task_id=req.parent_task_id,
                parent_step=req.parent_step,
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
                        waiting_on=len(template.graph.parents(s.name)),
                        dispatched_at=sent_at if s.name in ready else None,
                    )
                    for i, s in enumerate(template.steps)
                ],
                using_db=tx.conn,
            )
            ids = dict(
                await WorkflowStep.filter(task_id=task.id)
                .using_db(tx.conn)
                .values_list("name", "id")
            )
            if template.graph.edges:
                await StepEdge.bulk_create(
                    [
                        StepEdge(task_id=task.id, from_step_id=ids[p], to_step_id=ids[c])
                        for p, c in template.graph.edges
                    ],
                    using_db=tx.conn,
                )
            await Transition.bulk_create(
                [
                    Transition(
                        task_id=task.id,
                        to_status=TaskState.PENDING.value,
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
                        to_status=StepState.PENDING.value,
                        reason="created",
                        metadata={},
                        created_at=now,
                    )
                    for s in template.steps
                ],
                using_db=tx.conn,
            )
            ref = TaskRef(task.id, task.namespace)
            # Followers of a namespace see a task from its creation: its "created" rows are
            # published like any other transition (a bulk insert returns no ids: read back).
            created = (
                await Transition.filter(task_id=task.id)
                .using_db(tx.conn)
                .order_by("id")
                .values_list("id", "step_id", "step_name")
            )
            for cursor, step_id, step_name in created:
                tx.note(ref, step_id, step_name, None, StepState.PENDING.value, "created", cursor)
            tx.dispatch_after_commit([ids[name] for name in ready], (sent_at - now).total_seconds())
            if bypass:
                for name in template.graph.execution_order:
                    if name in bypass:
                        await tx.move_step(
                            ref,
                            ids[name],
                            name,
                            StepState.PENDING,
                            StepState.RESOLVED_MANUALLY,
                            "bypassed",
                            completed_at=now,
                        )
                await advance(tx, ref, TaskState.PENDING)
        if bypass:
            return await queries.find_task(task.id)
        return task_view(task)
