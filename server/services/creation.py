"""Task creation: validate against the handler, then write the task, its steps, edges and
history in one transaction, dispatching the root steps after commit.

One core serves one task and many: `TaskCreator.create_many` validates every request, then
writes the plain ones `CHUNK` at a time, one transaction per chunk and one multi-row statement
per table (tasks, steps, edges, history; `server.services.creation_rows`). A request that needs
more in its transaction or after it (a schedule firing, a debounce window, a re-run's kept
steps, a cancel strategy) is written on its own (`server.services.creation_single`).

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
from typing import Any, NamedTuple
from uuid import uuid4

from tortoise.exceptions import IntegrityError

from server.db.models import Task
from server.db.rows import task_view
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
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask, TaskView
from server.domain.waits import context_problems
from server.engine.changes import StateChanges
from server.engine.limits import handler_key, step_flow
from server.infra.metrics import task_created
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from server.services.creation_rows import Plan, bypass, write_tasks
from server.services.creation_single import insert_one
from server.services.debounce import Debounce, Debouncer, debounce_of
from server.services.pausing import handler_paused
from server.services.supersede import supersede

CHUNK = 250
"""Tasks written per transaction by `create_many`."""
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


class Checked(NamedTuple):
    """A request that holds every input rule, with what its rows are worked out from."""

    template: HandlerTemplate
    start: datetime | None
    """The delayed start (None: at once)."""
    debounce: Debounce | None
    flows: dict[str, Any]
    """Each step's limits with keys resolved."""


def one_by_one(checked: Checked, req: CreateTask) -> bool:
    """Whether a request is written on its own rather than by the multi-row insert: its
    transaction holds more than its rows (a schedule tick, a debounce window, kept steps) or
    a cancel strategy acts on it once written."""
    concurrency = checked.template.concurrency
    return bool(
        checked.debounce is not None
        or req.fired is not None
        or req.forked_from is not None
        or req.kept
        or req.step_inputs
        or (concurrency is not None and concurrency.strategy != "queue")
    )


class TaskCreator:
    """Turns validated requests into tasks: plain ones a chunk per transaction, the others
    one by one."""

    def __init__(
        self, changes: StateChanges, registry: HandlerRegistry, catalogue: Catalogue
    ) -> None:
        self.changes = changes
        self.registry = registry
        self.catalogue = catalogue
        self.debouncer = Debouncer(changes)

    async def create(self, req: CreateTask) -> Created:
        """Create a task with its steps and edges; returns (task, created).

        A repeated `idempotency_key` with the same request returns the original task
        (created=False); with a different request it raises Conflict. Raises
        NamespaceNotFound / HandlerNotFound / ValidationFailed; nothing is written then.
        """
        (outcome,) = await self.create_many([req])
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def create_many(self, reqs: Sequence[CreateTask]) -> list[Outcome]:
        """Create many tasks; one outcome per request, in order. A refused request refuses
        only itself; a repeated key within `reqs` is settled like a repeated request."""
        outcomes: list[Outcome | None] = [None] * len(reqs)
        leaders: dict[tuple[str, str], Plan] = {}
        followers: list[tuple[Plan, Plan]] = []
        plans: list[Plan] = []
        alone: list[tuple[int, CreateTask, Checked]] = []
        for index, req in enumerate(reqs):
            try:
                checked = self._checked(req)
            except DomainError as exc:
                outcomes[index] = exc
                continue
            if one_by_one(checked, req):
                alone.append((index, req, checked))
                continue
            plan = await self._plan(index, req, checked)
            key = plan.key
            if key is not None and key in leaders:
                followers.append((plan, leaders[key]))
                continue
            if key is not None:
                leaders[key] = plan
            plans.append(plan)
        for start in range(0, len(plans), CHUNK):
            await self._write(plans[start : start + CHUNK], outcomes)
        for plan, leader in followers:
            outcomes[plan.index] = _repeat(outcomes[leader.index], plan.fingerprint)
        for index, req, checked in alone:
            try:
                outcomes[index] = await self._create_one(req, checked)
            except DomainError as exc:
                outcomes[index] = exc
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    def _checked(self, req: CreateTask) -> Checked:
        """The request's template, start, debounce and limits, once every rule holds
        (InvalidTaskConfig otherwise)."""
        try:
            template, start, flows = self._validated(req)
            return Checked(template, start, debounce_of(template, req), flows)
        except ValidationFailed as exc:
            if isinstance(exc, InvalidTaskConfig):
                raise
            raise InvalidTaskConfig.of(exc.details or {}) from exc

    async def _plan(self, index: int, req: CreateTask, checked: Checked) -> Plan:
        template = checked.template
        return Plan(
            index=index,
            req=req,
            template=template,
            start=checked.start,
            fingerprint=identity_hash(template, req.context),
            scope=idempotency_scope(req.subject),
            id=uuid4(),
            named_task_id=await self.catalogue.named_task_id(template),
            flows=checked.flows,
            priority=req.priority if req.priority is not None else template.priority,
            concurrency_key=handler_key(template, req.context),
        )

    async def _write(self, plans: list[Plan], outcomes: list[Outcome | None]) -> None:
        """Write `plans` in one transaction; a plan whose key another task already holds
        gets that task (or a Conflict) instead."""
        async with self.changes.transaction() as tx:
            paused: dict[int, bool] = {}
            for plan in plans:  # created paused when its handler is (`pausing`)
                tpl = plan.template
                if id(tpl) not in paused:
                    paused[id(tpl)] = await handler_paused(tx, tpl)
                plan.paused_at = tx.now if paused[id(tpl)] else None
            written = await write_tasks(tx, plans)
            bypassing = [p for p in written if p.req.bypass_steps]
            for plan in bypassing:
                await bypass(tx, plan)
        for plan in written:
            task_created(plan.template.namespace)  # metrics: counting events skips creations
            outcomes[plan.index] = (plan.view(tx.now), True)
        for plan in bypassing:
            outcomes[plan.index] = (await queries.find_task(plan.id), True)
        taken = [p for p in plans if outcomes[p.index] is None]
        if taken:
            holders = await _holders(taken)
            for plan in taken:
                holder = holders.get(plan.key) if plan.key else None
                outcomes[plan.index] = (
                    _repeat((task_view(holder), False), plan.fingerprint)
                    if holder is not None
                    # Deleted between our insert and this read: rare enough to ask again.
                    else Conflict(
                        "Idempotency-Key is being used by another request",
                        {"idempotency_key": ["is in use by another request; try again"]},
                    )
                )

    async def _create_one(self, req: CreateTask, checked: Checked) -> Created:
        """One request in its own transaction (`one_by_one`)."""
        template, start, debounce, flows = checked
        fingerprint = identity_hash(template, req.context)
        scope = idempotency_scope(req.subject)
        if req.idempotency_key:
            existing = await _keyed(scope, req.idempotency_key)
            if existing is not None:
                return _same_request(existing, fingerprint), False
        named_task_id = await self.catalogue.named_task_id(template)
        if debounce is not None:  # join the key's open window, or open it (`debounce`)
            view, created = await self.debouncer.create_or_join(
                template,
                req,
                debounce,
                lambda at: insert_one(
                    self.changes,
                    named_task_id,
                    template,
                    req,
                    fingerprint,
                    scope,
                    at,
                    flows,
                    debounce.key,
                ),
            )
            if created:
                task_created(view.namespace)
            return view, created
        try:
            view = await insert_one(
                self.changes, named_task_id, template, req, fingerprint, scope, start, flows
            )
            task_created(view.namespace)  # metrics: counting events skips creations
            if template.concurrency is not None and template.concurrency.strategy != "queue":
                view = await supersede(self.changes, template, view)
            return view, True
        except IntegrityError:
            existing = await _keyed(scope, req.idempotency_key)
            if existing is None:
                raise
            return _same_request(existing, fingerprint), False

    def _validated(
        self, req: CreateTask
    ) -> tuple[HandlerTemplate, datetime | None, dict[str, Any]]:
        """The template to run, the start time (None: at once) and each step's limits, once
        every input rule holds (ValidationFailed otherwise)."""
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
        flows = _flows(template, req)
        if isinstance(flows, str):
            problems["context"] = [f"limit key path '{flows}' resolves to nothing"]
        for step in template.steps:  # `sleep.until: context.<path>` must resolve now
            problems.update(context_problems(step.sleep, req.context))
        if problems or isinstance(flows, str):
            raise InvalidTaskConfig.of(problems)
        return template, start, flows


def _flows(template: HandlerTemplate, req: CreateTask) -> dict[str, Any] | str:
    """Each step's limits with keys resolved, or the key path that is absent."""
    priority = req.priority if req.priority is not None else template.priority
    try:
        return {s.name: step_flow(template, s, req.context, priority) for s in template.steps}
    except KeyMissing as exc:
        return str(exc.args[0])


async def _keyed(scope: str, key: str | None) -> Task | None:
    if not key:
        return None
    return await Task.get_or_none(idempotency_scope=scope, idempotency_key=key)


def _same_request(existing: Task, fingerprint: str) -> TaskView:
    if existing.identity_hash != fingerprint:
        raise Conflict(
            "Idempotency-Key was already used with a different request",
            {"idempotency_key": ["already used with a different request"]},
        )
    return task_view(existing)


def _repeat(first: Outcome | None, fingerprint: str) -> Outcome:
    """The outcome of a request repeating a key whose first request had outcome `first`."""
    if first is None or isinstance(first, DomainError):
        return first or Conflict("Idempotency-Key could not be settled", {})
    view, _created = first
    if view.identity_hash != fingerprint:
        return Conflict(
            "Idempotency-Key was already used with a different request",
            {"idempotency_key": ["already used with a different request"]},
        )
    return view, False


async def _holders(plans: list[Plan]) -> dict[tuple[str, str] | None, Task]:
    """The tasks already holding these plans' keys (one query)."""
    keys = {p.req.idempotency_key for p in plans if p.req.idempotency_key}
    rows = await Task.filter(idempotency_key__in=list(keys))
    return {(r.idempotency_scope, r.idempotency_key or ""): r for r in rows}
