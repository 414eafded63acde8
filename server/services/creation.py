"""Task creation: validate against the handler, then write the task, its steps, edges and
history in one transaction, dispatching the root steps after commit.

Idempotency: a repeated `idempotency_key` with the same request (same identity hash) returns
the original task; with a different request it is a Conflict. Concurrent duplicates are
settled by the key's unique index.
"""

import hashlib
import json
from typing import Any
from uuid import uuid4

from tortoise.exceptions import IntegrityError

from server.db.models import StepEdge, Task, Transition, WorkflowStep
from server.db.rows import task_view
from server.domain.errors import Conflict, ValidationFailed
from server.domain.states import StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask, TaskView
from server.engine.changes import StateChanges, TaskRef
from server.engine.progress import advance
from server.metrics import task_created
from server.services import queries
from server.services.catalogue import Catalogue
from server.services.registry import HandlerRegistry


def identity_hash(template: HandlerTemplate, context: Any) -> str:
    """A stable fingerprint of what a task would do: handler identity plus canonical context."""
    canonical = json.dumps(
        [template.namespace, template.name, template.version, context],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


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
        async with self.changes.transaction() as tx:
            now = tx.now
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
                identity_hash=fingerprint,
                requested_at=now,
                created_at=now,
                updated_at=now,
                # Counted down as steps become done, bypassed ones included: their moves to
                # resolved_manually below count them (`Transaction.move_step`).
                remaining=len(template.steps),
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
                        dispatched_at=now if s.name in ready else None,
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
            tx.nudge([ids[name] for name in ready])
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
