"""Task creation: validate against the handler, then write the task, its steps, edges and
history in one transaction, dispatching the root steps after commit.

One core serves one task and many: `TaskCreator.create_many` validates every request, then
writes the plain ones `CHUNK` at a time, one transaction per chunk and one multi-row statement
per table (tasks, steps, edges, history; `server.services.creation_rows`). A request that needs
more in its transaction or after it (a schedule firing, a debounce window, a re-run's kept
steps, a cancel strategy) is written on its own (`server.services.creation_single`).

Every input rule (`server.domain.inputs`, the handler's context schema, bypassable steps,
limit key paths; `server.services.creation_checks`) is checked first; any breach is one
InvalidTaskConfig for that request, whichever surface asked.

Idempotency: a repeated `idempotency_key` with the same request (same identity hash) returns
the original task; with a different request it is a Conflict. Keys are scoped to the caller
(`CreateTask.subject`): another caller's key is just a new key. Concurrent duplicates are
settled by the (scope, key) unique index.
"""

from collections.abc import Sequence
from uuid import uuid4

from tortoise.exceptions import IntegrityError

from server.db.rows import task_view
from server.db.sql import connection, dialect
from server.domain.errors import Conflict, DomainError
from server.domain.views import CreateTask
from server.engine.changes import StateChanges, Transaction
from server.engine.group_commit import GroupCommit
from server.engine.limits import handler_key
from server.infra.metrics import task_created
from server.registry.catalogue import Catalogue
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from server.services.creation_checks import Checked, check_request, one_by_one
from server.services.creation_keys import (
    Created,
    Outcome,
    holders,
    idempotency_scope,
    identity_hash,
    keyed,
    repeat,
    same_request,
)
from server.services.creation_rows import Plan, bypass, write_tasks
from server.services.creation_single import insert_one
from server.services.creation_statement import fits, write_at_once
from server.services.debounce import Debouncer
from server.services.pausing import handler_paused
from server.services.supersede import AfterCancel, supersede

CHUNK = 250
"""Tasks written per transaction by `create_many`."""
MAX_BATCH = 1000
"""Most tasks one batch request (REST, GraphQL) may create."""

__all__ = [
    "CHUNK",
    "MAX_BATCH",
    "Created",
    "Outcome",
    "TaskCreator",
    "idempotency_scope",
    "identity_hash",
]


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
        self.after_cancel: AfterCancel | None = None
        """Set by the task service: what a cancel does after its commit, for the tasks a
        `cancel_in_progress` handler supersedes."""
        # Single creations that arrive while one is being written are written together
        # next, as one `create_many` (one transaction, one statement per table): a busy
        # server's single POSTs cost about what a batch request costs, an idle one's wait
        # for nobody (`server.engine.group_commit`).
        self._together: GroupCommit[CreateTask, Outcome | Exception] = GroupCommit(
            self._create_together, max_items=CHUNK
        )

    async def create(self, req: CreateTask) -> Created:
        """Create a task with its steps and edges; returns (task, created).

        A repeated `idempotency_key` with the same request returns the original task
        (created=False); with a different request it raises Conflict. Raises
        NamespaceNotFound / HandlerNotFound / ValidationFailed; nothing is written then.
        """
        outcome: Outcome | Exception
        if one_by_one(self._check(req), req):  # its own transaction anyway
            (outcome,) = await self.create_many([req])
        else:
            outcome = await self._together.submit(req)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _create_together(self, reqs: Sequence[CreateTask]) -> list[Outcome | Exception]:
        """`create_many` of plain requests (at most `CHUNK`: one transaction). If a unique
        index refuses one of them (a child task its step already started), the transaction
        rolled back: each request is then written on its own, so that only that caller
        fails (they were separate requests)."""
        try:
            return list(await self.create_many(reqs))
        except IntegrityError as exc:
            if len(reqs) == 1:
                return [exc]
        answers: list[Outcome | Exception] = []
        for req in reqs:
            try:
                (outcome,) = await self.create_many([req])
                answers.append(outcome)
            except Exception as exc:
                answers.append(exc)
        return answers

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
                checked = self._check(req)
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
            outcomes[plan.index] = repeat(outcomes[leader.index], plan.fingerprint)
        for index, req, checked in alone:
            try:
                outcomes[index] = await self._create_one(req, checked)
            except DomainError as exc:
                outcomes[index] = exc
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    def _check(self, req: CreateTask) -> Checked:
        return check_request(req, self.registry, self.changes.clock.now())

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
        bypassing: list[Plan] = []
        if fits(plans) and dialect(connection()) == "postgres":
            async with self.changes.statement() as tx:  # `creation_statement`
                await write_at_once(tx, plans)
            written = plans
        else:
            async with self.changes.transaction() as tx:
                await mark_paused(tx, plans)
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
            held = await holders(taken)
            for plan in taken:
                holder = held.get(plan.key) if plan.key else None
                outcomes[plan.index] = (
                    repeat((task_view(holder), False), plan.fingerprint)
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
            existing = await keyed(scope, req.idempotency_key)
            if existing is not None:
                return same_request(existing, fingerprint), False
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
                view = await supersede(self.changes, template, view, self.after_cancel)
            return view, True
        except IntegrityError:
            existing = await keyed(scope, req.idempotency_key)
            if existing is None:
                raise
            return same_request(existing, fingerprint), False


async def mark_paused(tx: Transaction, plans: list[Plan]) -> None:
    """Tasks are created paused when their handler is (`pausing`): stamp those plans."""
    paused: dict[int, bool] = {}
    for plan in plans:
        tpl = plan.template
        if id(tpl) not in paused:
            paused[id(tpl)] = await handler_paused(tx, tpl)
        plan.paused_at = tx.now if paused[id(tpl)] else None
