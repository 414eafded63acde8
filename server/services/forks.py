"""Forks: re-run a finished task from one of its steps, with new input.

`rerun` creates a new task of the same handler version (`forked_from` = the original) in one
transaction: every step that is neither `from_step` nor downstream of it, and that was done in
the original, is copied as `complete` with the original's results (history reason `kept`;
no claim, no `in_progress` move, its handler is not called); `from_step` and its descendants
run afresh, with the given `context` (replacing the task's) and `inputs` (replacing the named
steps'). A kept step that the original never finished runs again too.

The original must be in a final state (complete, error, cancelled, resolved_manually): a task
still running has upstream results that may yet change, so forking it is a 409 (cancel it or
wait). The original is left as it is.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from server.db.rows import json_text
from server.domain.errors import Conflict, ValidationFailed
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.domain.templates import HandlerTemplate
from server.domain.views import CreateTask, KeptStep, Rerun, StepView, TaskView
from server.engine.changes import TaskRef, Transaction
from server.services import queries

if TYPE_CHECKING:
    from server.services.creation import TaskCreator

FINAL_TASK_STATES = frozenset(
    {TaskState.COMPLETE, TaskState.ERROR, TaskState.CANCELLED, TaskState.RESOLVED_MANUALLY}
)
KEPT = "kept"
"""History reason of a step a fork copied from the original."""


def downstream(template: HandlerTemplate, step: str) -> set[str]:
    """The step and every step that depends on it, directly or not."""
    found: set[str] = set()
    todo = [step]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(template.graph.children(name))
    return found


def plan(
    template: HandlerTemplate, original: TaskView, steps: list[StepView], req: Rerun
) -> CreateTask:
    """The new task's creation request; ValidationFailed naming what is wrong."""
    problems: dict[str, list[str]] = {}
    if req.from_step not in template.graph.nodes:
        problems["from_step"] = [f"unknown step '{req.from_step}'"]
    if req.context is not None and not isinstance(req.context, dict):
        problems["context"] = ["must be a JSON object"]
    if req.inputs is not None and not isinstance(req.inputs, Mapping):
        problems["inputs"] = ["must map step names to their inputs"]
    if problems:
        raise ValidationFailed("Invalid rerun", problems)
    rerun = downstream(template, req.from_step)
    for name in req.inputs or {}:
        if name not in template.graph.nodes:
            problems.setdefault("inputs", []).append(f"unknown step '{name}'")
        elif name not in rerun:
            problems.setdefault("inputs", []).append(
                f"step '{name}' is not re-run (it is not '{req.from_step}' or downstream of it)"
            )
    if problems:
        raise ValidationFailed("Invalid rerun", problems)
    kept = {
        s.name: KeptStep(s.results, s.skipped)
        for s in steps
        if s.name not in rerun and s.status in DONE_STEP_STATES
    }
    inputs: dict[str, Any] = {s.name: s.inputs for s in steps if s.inputs is not None}
    inputs.update(req.inputs or {})
    return CreateTask(
        namespace=original.namespace,
        name=original.name,
        version=original.version,
        context=original.context if req.context is None else req.context,
        initiator=original.initiator,
        source_system=original.source_system,
        reason=original.reason,
        tags=original.tags,
        subject=req.subject,
        forked_from=original.id,
        kept=kept,
        step_inputs=inputs,
    )


async def rerun(creator: "TaskCreator", task_id: UUID | str, req: Rerun) -> TaskView:
    """Fork the task from `req.from_step`; returns the new task (see the module doc)."""
    original = await queries.find_task(task_id)
    if original.status not in FINAL_TASK_STATES:
        raise Conflict(
            f"Task is {original.status.value}: only a finished task can be re-run "
            "(cancel it, or wait for it to finish)",
            {"status": [original.status.value]},
        )
    template = creator.registry.get(original.namespace, original.name, original.version)
    steps = (await queries.steps_by_task([original.id]))[original.id]
    view, _ = await creator.create(plan(template, original, steps, req))
    return view


async def keep_steps(
    tx: Transaction,
    task: TaskRef,
    ids: Mapping[str, int],
    kept: Mapping[str, KeptStep],
    forked_from: UUID | None,
) -> None:
    """Move the kept steps of a new fork to `complete` with the original's results."""
    for name, step in kept.items():
        await tx.move_step(
            task,
            ids[name],
            name,
            StepState.PENDING,
            StepState.COMPLETE,
            KEPT,
            {"forked_from": str(forked_from)},
            results=json_text(step.results),
            skipped=step.skipped,
            completed_at=tx.now,
        )
