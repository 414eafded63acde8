"""Task creation: validate against the handler, then write tasks, their steps, edges and
history, dispatching the root steps after commit.

One core serves one task and many: `TaskCreator.create_many` validates every request, then
writes the valid ones `CHUNK` at a time, one transaction per chunk and one multi-row statement
per table (tasks, steps, edges, history), each returning the ids the next one needs; the
handler definition comes from memory. `create` is the same path with one request.

Every input rule (`server.domain.inputs`, the handler's context schema, bypassable steps) is
checked first; any breach is one InvalidTaskConfig for that request, whichever surface asked.

Idempotency: a repeated `idempotency_key` with the same request (same identity hash) returns
the original task; with a different request it is a Conflict. Keys are scoped to the caller
(`CreateTask.subject`): another caller's key is just a new key. Concurrent duplicates are
settled by the (scope, key) unique index: the insert skips a key that is already taken, and
the task that holds it is read afterwards.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from server.db.models import Task
from server.db.rows import task_view
from server.domain.errors import Conflict, DomainError, InvalidTaskConfig, ValidationFailed
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
from server.engine.changes import StateChanges
from server.infra.metrics import task_created
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from server.services.creation_rows import Plan, bypass, write_tasks

CHUNK = 250
"""Tasks written per transaction by `create_many`."""
MAX_BATCH = 1000
"""Most tasks one batch request (REST, GraphQL) may create."""

Created = tuple[TaskView, bool]
Outcome = Created | DomainError
"""One request's result: (task, created) or the error that refused it."""


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
    """Turns validated requests into tasks, one transaction per chunk."""

    def __init__(
        self, changes: StateChanges, registry: HandlerRegistry, catalogue: Catalogue
    ) -> None:
        self.changes = changes
        self.registry = registry
        self.catalogue = catalogue

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
        for index, req in enumerate(reqs):
            try:
                plan = await self._plan(index, req)
            except DomainError as exc:
                outcomes[index] = exc
                continue
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
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    async def _plan(self, index: int, req: CreateTask) -> Plan:
        try:
            template, start = self._validated(req)
        except ValidationFailed as exc:
            if isinstance(exc, InvalidTaskConfig):
                raise
            raise InvalidTaskConfig.of(exc.details or {}) from exc
        return Plan(
            index=index,
            req=req,
            template=template,
            start=start,
            fingerprint=identity_hash(template, req.context),
            scope=idempotency_scope(req.subject),
            id=uuid4(),
            named_task_id=await self.catalogue.named_task_id(template),
        )

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

    async def _write(self, plans: list[Plan], outcomes: list[Outcome | None]) -> None:
        """Write `plans` in one transaction; a plan whose key another task already holds
        gets that task (or a Conflict) instead."""
        async with self.changes.transaction() as tx:
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
