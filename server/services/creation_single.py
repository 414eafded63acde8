"""One task written on its own: the creation path of requests that need more than the rows
of the multi-row insert (`server.services.creation_rows`) in their transaction."""

from datetime import datetime
from typing import Any
from uuid import uuid4

from server.db.models import ScheduleFire, StepEdge, Task, Transition, WorkflowStep
from server.db.rows import json_text, task_view
from server.domain.states import StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask, TaskView
from server.engine.changes import StateChanges, TaskRef
from server.engine.limits import handler_key
from server.engine.progress import advance
from server.services import queries
from server.services.forks import keep_steps
from server.services.pausing import handler_paused


async def insert_one(
    changes: StateChanges,
    named_task_id: int,
    template: HandlerTemplate,
    req: CreateTask,
    fingerprint: str,
    scope: str,
    start: datetime | None,
    flows: dict[str, Any],
    debounce_key: str | None = None,
) -> TaskView:
    """Write one task, its steps, edges and history in one transaction, as its own
    statements: the path of the requests the multi-row insert leaves out (schedule firings,
    debounce windows, re-runs, cancel strategies; `creation_checks.one_by_one`)."""
    bypass = set(req.bypass_steps)
    settled = bypass | set(req.kept)  # done at creation: bypassed, or kept by a re-run
    waiting = {
        s.name: sum(p not in settled for p in template.graph.parents(s.name))
        for s in template.steps
    }
    ready = [s.name for s in template.steps if waiting[s.name] == 0 and s.name not in settled]
    async with changes.transaction() as tx:
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
            await WorkflowStep.filter(task_id=task.id).using_db(tx.conn).values_list("name", "id")
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
        ref = TaskRef(task.id, task.namespace, task.priority)
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
        tx.dispatch_after_commit(
            [ids[name] for name in ready],
            (sent_at - now).total_seconds(),
            task.priority,
            limited=[ids[name] for name in ready if flows.get(name)],
        )
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
