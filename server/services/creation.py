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
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from tortoise.exceptions import IntegrityError

from server.db.models import ScheduleFire, StepEdge, Task, Transition, WorkflowStep
from server.db.rows import json_text, task_view
from server.domain.errors import Conflict, DomainError, InvalidTaskConfig, ValidationFailed
from server.domain.flow import KeyMissing, priority_problem
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
from server.domain.waits import context_problems
from server.engine.changes import StateChanges, TaskRef
from server.engine.limits import handler_key, step_flow
from server.engine.progress import advance
from server.infra.metrics import task_created
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from server.services.debounce import Debouncer, debounce_of
from server.services.forks import keep_steps
from server.services.pausing import handler_paused
from server.services.supersede import supersede

MAX_BATCH = 1000
"""Most tasks one batch request (REST, GraphQL) may create."""

Created = tuple[TaskView, bool]
Outcome = Created | DomainError
"""One request's result in a batch: (task, created) or the error that refused it."""


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
    details = problems.details
    if (problem := priority_problem(req.priority)) is not None:
        details.setdefault("priority", []).append(problem)
    return details


class TaskCreator:
    """Turns a validated request into a task, in one transaction."""

    def __init__(
        self, changes: StateChanges, registry: HandlerRegistry, catalogue: Catalogue
    ) -> None:
        self.changes = changes
        self.registry = registry
        self.catalogue = catalogue
        self.debouncer = Debouncer(changes)

    async def create_many(self, reqs: Sequence[CreateTask]) -> list[Outcome]:
        """Create many tasks: one outcome per request, in order. Each goes through `create`
        (every rule of single creation holds: idempotency, debounce, limits, schedules), so a
        refused request refuses only itself and a key repeated within the batch is settled
        like a repeated request."""
        outcomes: list[Outcome] = []
        for req in reqs:
            try:
                outcomes.append(await self.create(req))
            except DomainError as exc:
                outcomes.append(exc)
        return outcomes

    async def create(self, req: CreateTask) -> tuple[TaskView, bool]:
        """Create a task with its steps and edges; returns (task, created).

        A repeated `idempotency_key` with the same request returns the original task
        (created=False); with a different request it raises Conflict. Raises
        NamespaceNotFound / HandlerNotFound / ValidationFailed; nothing is written then.
        """
        try:
            template, start = self._validated(req)
            debounce = debounce_of(template, req)
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
        if debounce is not None:  # join the key's open window, or open it (`debounce`)
            view, created = await self.debouncer.create_or_join(
                template,
                req,
                debounce,
                lambda at: self._insert(template, req, fingerprint, scope, at, debounce.key),
            )
            if created:
                task_created(view.namespace)
            return view, created
        try:
            view = await self._insert(template, req, fingerprint, scope, start)
            task_created(view.namespace)  # metrics: counting events skips creations
            if template.concurrency is not None and template.concurrency.strategy != "queue":
                view = await supersede(self.changes, template, view)
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
        flows = self._flows(template, req)
        if isinstance(flows, str):
            problems["context"] = [f"limit key path '{flows}' resolves to nothing"]
        for step in template.steps:  # `sleep.until: context.<path>` must resolve now
            problems.update(context_problems(step.sleep, req.context))
        if problems:
            raise InvalidTaskConfig.of(problems)
        return template, start

    @staticmethod
    def _flows(template: HandlerTemplate, req: CreateTask) -> dict[str, Any] | str:
        """Each step's limits with keys resolved, or the key path that is absent."""
        priority = req.priority if req.priority is not None else template.priority
        try:
            return {s.name: step_flow(template, s, req.context, priority) for s in template.steps}
        except KeyMissing as exc:
            return str(exc.args[0])

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
        debounce_key: str | None = None,
    ) -> TaskView:
        named_task_id = await self.catalogue.named_task_id(template)
        bypass = set(req.bypass_steps)
        settled = bypass | set(req.kept)  # done at creation: bypassed, or kept by a re-run
        waiting = {
            s.name: sum(p not in settled for p in template.graph.parents(s.name))
            for s in template.steps
        }
        ready = [s.name for s in template.steps if waiting[s.name] == 0 and s.name not in settled]
        flows = self._flows(template, req)
        assert isinstance(flows, dict)  # checked by `_validated`
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
                schedule_id=req.fired.schedule_id if req.fired else None,
                scheduled_for=req.fired.tick if req.fired else None,
                debounce_key=debounce_key,
                # Created paused when its handler is (`pausing`): creation is still accepted.
                handler_paused_at=now if await handler_paused(tx, template) else None,
                priority=req.priority if req.priority is not None else template.priority,
                concurrency_key=handler_key(template, req.context),
                forked_from=req.forked_from,
                parent_task_id=req.parent_task_id,
                parent_step=req.parent_step,
            )
            if req.fired:
                # The unique (schedule_id, tick) row: a second firing of this tick fails
                # here and rolls its task back with it (`server.services.schedules`).
                await ScheduleFire.create(
                    using_db=tx.conn,
                    schedule_id=req.fired.schedule_id,
                    tick=req.fired.tick,
                    task_id=task.id,
                    created_at=now,
                )
            await WorkflowStep.bulk_create(
                [
                    WorkflowStep(
                        task_id=task.id,
                        name=s.name,
                        position=i,
                        handler_class=s.handler_class,
                        waits_for=s.wait_for.signal if s.wait_for else None,
                        status=StepState.PENDING.value,
                        retry_limit=s.retry_limit,
                        retryable=s.retryable,
                        skippable=s.skippable,
                        timeout_seconds=s.timeout_seconds,
                        inputs=_json_or_null(req.step_inputs.get(s.name)),
                        created_at=now,
                        updated_at=now,
                        waiting_on=len(template.graph.parents(s.name)),
                        dispatched_at=sent_at if s.name in ready else None,
                        flow=flows[s.name],
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
            if settled:
                await keep_steps(tx, ref, ids, req.kept, req.forked_from)
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
        if settled:
            return await queries.find_task(task.id)
        return task_view(task)


def _json_or_null(value: Any) -> str | None:
    """A step's inputs for a JSONField (SQL NULL when there are none)."""
    return None if value is None else json_text(value)
