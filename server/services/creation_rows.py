"""The rows of new tasks: one multi-row statement per table for a whole chunk of tasks.

`write_tasks` inserts the chunk's tasks (skipping any whose idempotency key another task
already holds), then their steps, edges and "created" history rows, each statement returning
the ids the next one needs, so a chunk costs four statements whatever its size. The events of
the history rows and the dispatch of the root steps are queued on the transaction, to happen
after it commits.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from server.db.bulk import insert_rows
from server.db.models import StepEdge, Task, Transition, WorkflowStep
from server.db.sql import Row
from server.domain.states import StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask, TaskView
from server.engine.changes import TaskRef, Transaction
from server.engine.progress import advance

KEY_INDEX = '("idempotency_scope", "idempotency_key") WHERE "idempotency_key" IS NOT NULL'
"""The conflict target of the per-caller unique index on idempotency keys (migration 8)."""


@dataclass(slots=True)
class Plan:
    """A valid request, ready to write: everything its rows need."""

    index: int
    req: CreateTask
    template: HandlerTemplate
    start: datetime | None
    fingerprint: str
    scope: str
    id: UUID
    named_task_id: int = 0
    flows: dict[str, Any] = field(default_factory=dict)
    """Each step's limits with keys resolved (`server.engine.limits.step_flow`)."""
    priority: int = 2
    concurrency_key: str | None = None
    paused_at: datetime | None = None
    """`now` when its handler is paused at write time (`server.services.pausing`)."""
    id_text: str = field(init=False)
    """`str(id)`: rows come back keyed by it (asyncpg returns UUIDs, SQLite text)."""

    def __post_init__(self) -> None:
        self.id_text = str(self.id)

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.scope, self.req.idempotency_key) if self.req.idempotency_key else None

    def view(self, now: datetime) -> TaskView:
        """The task as written (no read-back: these are the values the rows hold)."""
        req, tpl = self.req, self.template
        return TaskView(
            id=self.id,
            namespace=tpl.namespace,
            name=tpl.name,
            version=tpl.version,
            status=TaskState.PENDING,
            context=req.context,
            created_at=now,
            updated_at=now,
            initiator=req.initiator,
            source_system=req.source_system,
            reason=req.reason,
            tags=tuple(req.tags),
            bypass_steps=tuple(req.bypass_steps),
            idempotency_key=req.idempotency_key,
            identity_hash=self.fingerprint,
            requested_at=now,
            run_at=self.start,
            handler_paused_at=self.paused_at,
            priority=self.priority,
            parent_task_id=req.parent_task_id,
            parent_step=req.parent_step,
        )


async def write_tasks(tx: Transaction, plans: list[Plan]) -> list[Plan]:
    """Insert the plans' tasks with their steps, edges and history; returns the plans written
    (a plan whose key is already held is left out)."""
    now = tx.now
    keyed = any(p.req.idempotency_key for p in plans)
    inserted = await insert_rows(
        tx.conn,
        Task,
        [task_row(p, now) for p in plans],
        returning=("id",) if keyed else (),
        skip_conflicts_on=KEY_INDEX if keyed else None,
    )
    if keyed:
        ids = {str(r["id"]) for r in inserted}
        plans = [p for p in plans if p.id_text in ids]
    if not plans:
        return []
    inserted_steps = await insert_rows(
        tx.conn,
        WorkflowStep,
        [row for p in plans for row in step_rows(p, now)],
        returning=("id", "task_id", "name"),
    )
    step_ids = {(str(r["task_id"]), r["name"]): int(r["id"]) for r in inserted_steps}
    await insert_rows(
        tx.conn,
        StepEdge,
        [
            {
                "task_id": p.id_text,
                "from_step_id": step_ids[p.id_text, parent],
                "to_step_id": step_ids[p.id_text, child],
            }
            for p in plans
            for parent, child in p.template.graph.edges
        ],
    )
    history = await insert_rows(
        tx.conn,
        Transition,
        [row for p in plans for row in _history_rows(p, step_ids, now)],
        returning=("id", "task_id", "step_id", "step_name"),
    )
    after_insert(tx, plans, step_ids, history)
    return plans


def after_insert(
    tx: Transaction,
    plans: list[Plan],
    step_ids: dict[tuple[str, str], int],
    history: Sequence[Row],
) -> None:
    """Queue the events of the "created" rows and the dispatch of the root steps, for after
    the rows commit."""
    now = tx.now
    refs = {p.id_text: TaskRef(p.id, p.template.namespace, p.priority) for p in plans}
    # Followers of a namespace see a task from its creation: its "created" rows are published
    # like any other transition.
    for row in sorted(history, key=lambda r: int(r["id"])):
        step_id = int(row["step_id"]) if row["step_id"] is not None else None
        ref = refs[str(row["task_id"])]
        tx.note(ref, step_id, row["step_name"], None, StepState.PENDING.value, "created", row["id"])
    for p in plans:
        sent_at = _sent_at(p, now)
        names = _ready(p)
        ready = [step_ids[p.id_text, name] for name in names]
        limited = [step_ids[p.id_text, name] for name in names if p.flows.get(name)]
        tx.dispatch_after_commit(ready, (sent_at - now).total_seconds(), p.priority, limited)


async def bypass(tx: Transaction, plan: Plan) -> None:
    """Resolve the steps the request bypasses, in execution order, then let the task advance."""
    ref = TaskRef(plan.id, plan.template.namespace, plan.priority)
    names = set(plan.req.bypass_steps)
    steps = dict(
        await WorkflowStep.filter(task_id=plan.id, name__in=list(names))
        .using_db(tx.conn)
        .values_list("name", "id")
    )
    for name in plan.template.graph.execution_order:
        if name in names:
            await tx.move_step(
                ref,
                steps[name],
                name,
                StepState.PENDING,
                StepState.RESOLVED_MANUALLY,
                "bypassed",
                completed_at=tx.now,
            )
    await advance(tx, ref, TaskState.PENDING)


def _sent_at(plan: Plan, now: datetime) -> datetime:
    # A delayed task's root steps are sent once, as messages delayed until `start`, and
    # stamped `dispatched_at = start`: the sweeper re-sends a step only when its stamp is a
    # window old, so it leaves them alone until then (the claim would refuse them anyway) and
    # re-sends them if that message was lost.
    return plan.start if plan.start is not None and plan.start > now else now


def _ready(plan: Plan) -> list[str]:
    """The steps to dispatch at once: no parent left to wait for once bypassed ones count."""
    if not plan.req.bypass_steps:
        return list(_shape(plan.template).roots)
    skip = set(plan.req.bypass_steps)
    graph = plan.template.graph
    return [
        s.name
        for s in plan.template.steps
        if s.name not in skip and all(p in skip for p in graph.parents(s.name))
    ]


@dataclass(frozen=True, slots=True)
class _Shape:
    """What every task of a template starts with, worked out once per template."""

    waiting: tuple[int, ...]
    """Parents per step, in template order."""
    roots: tuple[str, ...]


_SHAPES: dict[int, tuple[HandlerTemplate, _Shape]] = {}


def _shape(template: HandlerTemplate) -> _Shape:
    # Keyed by identity (a template holds dicts: unhashable); the entry keeps the template
    # alive, so its id is never reused for another while cached.
    cached = _SHAPES.get(id(template))
    if cached is None or cached[0] is not template:
        graph = template.graph
        shape = _Shape(
            waiting=tuple(len(graph.parents(s.name)) for s in template.steps), roots=graph.roots()
        )
        cached = _SHAPES[id(template)] = (template, shape)
    return cached[1]


def task_row(plan: Plan, now: datetime) -> dict[str, Any]:
    req, tpl = plan.req, plan.template
    return {
        "id": plan.id_text,
        "named_task_id": plan.named_task_id,
        "namespace": tpl.namespace,
        "name": tpl.name,
        "version": tpl.version,
        "status": TaskState.PENDING.value,
        "context": req.context,
        "initiator": req.initiator,
        "source_system": req.source_system,
        "reason": req.reason,
        "tags": list(req.tags),
        "bypass_steps": list(req.bypass_steps),
        "idempotency_key": req.idempotency_key,
        "idempotency_scope": plan.scope,
        "identity_hash": plan.fingerprint,
        "requested_at": now,
        "created_at": now,
        "updated_at": now,
        # Counted down as steps become done, bypassed ones included: their moves to
        # resolved_manually count them (`Transaction.move_step`).
        "remaining": len(tpl.steps),
        "run_at": plan.start,
        # Created paused when its handler is (`pausing`): creation is still accepted.
        "handler_paused_at": plan.paused_at,
        "priority": plan.priority,
        "concurrency_key": plan.concurrency_key,
        "parent_task_id": req.parent_task_id,
        "parent_step": req.parent_step,
    }


def step_rows(plan: Plan, now: datetime) -> list[dict[str, Any]]:
    ready = set(_ready(plan))
    sent_at = _sent_at(plan, now)
    waiting = _shape(plan.template).waiting
    return [
        {
            "task_id": plan.id_text,
            "name": s.name,
            "position": i,
            "handler_class": s.handler_class,
            "status": StepState.PENDING.value,
            "retry_limit": s.retry_limit,
            "retryable": s.retryable,
            "skippable": s.skippable,
            "timeout_seconds": s.timeout_seconds,
            "created_at": now,
            "updated_at": now,
            "waiting_on": waiting[i],
            "dispatched_at": sent_at if s.name in ready else None,
            "flow": plan.flows[s.name],
            "waits_for": s.wait_for.signal if s.wait_for else None,
        }
        for i, s in enumerate(plan.template.steps)
    ]


def _history_rows(
    plan: Plan, step_ids: dict[tuple[str, str], int], now: datetime
) -> list[dict[str, Any]]:
    task: dict[str, Any] = {"task_id": plan.id_text, "step_id": None, "step_name": None}
    steps = [
        {"task_id": plan.id_text, "step_id": step_ids[plan.id_text, s.name], "step_name": s.name}
        for s in plan.template.steps
    ]
    return [
        {**row, "to_status": StepState.PENDING.value, "reason": "created", "metadata": {},
         "created_at": now}
        for row in [task, *steps]
    ]  # fmt: skip
