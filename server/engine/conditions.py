"""Conditions: a step whose `run_if` is false is skipped, never run.

`Conditions.settle` runs before the runner claims a step whose template has a `run_if`: under
the task's lock it reads the step's parents (all done, or nothing happens here) and evaluates
the condition. False: the step completes without its handler (`skip_step`: `results` null,
`skipped` true, history reason `condition_false`, and no `in_progress` move); a path into the
parents that does not resolve: the step fails for good with code BAD_PATH naming it. True:
nothing is written and the runner claims the step as usual. Both step stores share this: it
moves steps through `StateChanges` like every other writer and keeps the readiness counters
the PostgreSQL store relies on.

A process whose handlers have no condition skips the whole check (no extra read per step).
"""

from typing import Any

from server.db.models import WorkflowStep
from server.domain.errors import NotFound
from server.domain.readiness import CLAIMABLE_TASK_STATES, has_started
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.engine.changes import StateChanges, TaskRef, Transaction
from server.engine.progress import advance
from server.registry.handler_registry import HandlerRegistry
from server.registry.run_if import (
    BadPath,
    Condition,
    ConditionError,
    ConditionInvalid,
    compile_condition,
    evaluate,
)

CONDITION_FALSE = "condition_false"
"""History reason of a step skipped because its condition was false."""
BAD_PATH = "BAD_PATH"
CONDITION_ERROR = "CONDITION_ERROR"


async def skip_step(
    tx: Transaction,
    task: TaskRef,
    step_id: int,
    step_name: str,
    current: StepState,
    reason: str,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Complete a step without running its handler: `results` null, `skipped` true.

    Its children see it done (it counts as done for the readiness counters); the caller then
    `advance`s the task under the same lock. False when the step was not in `current` any more.
    """
    return await tx.move_step(
        task,
        step_id,
        step_name,
        current,
        StepState.COMPLETE,
        reason,
        metadata,
        results=None,
        skipped=True,
        completed_at=tx.now,
        next_attempt_at=None,
        lease_owner=None,
        lease_expires_at=None,
    )


class Conditions:
    """Evaluates `run_if` before a step is claimed, for the templates of one registry."""

    def __init__(self, changes: StateChanges, registry: HandlerRegistry) -> None:
        self.changes = changes
        self.registry = registry
        self.active = any(s.run_if for t in registry.all() for s in t.steps)

    async def settle(self, step_id: int) -> str | None:
        """Skip or fail the step if its condition says so; None when it should be claimed."""
        if not self.active:
            return None
        rows = await WorkflowStep.filter(id=step_id, status=StepState.PENDING.value).values(
            "name", "task_id", "task__namespace", "task__name", "task__version"
        )
        if not rows:
            return None  # running, done, or backing off after its condition already held
        row = rows[0]
        condition = self._condition(
            row["task__namespace"], row["task__name"], row["task__version"], row["name"]
        )
        if condition is None:
            return None
        task = TaskRef(row["task_id"], row["task__namespace"])
        async with self.changes.transaction() as tx:
            found = await tx.locked_task_row(task.id, "context", "run_at")
            if found is None or TaskState(found.status) not in CLAIMABLE_TASK_STATES:
                return None
            if not has_started(found.run_at, tx.now):
                return None
            parents = await (
                WorkflowStep.filter(child_edges__to_step_id=step_id)
                .using_db(tx.conn)
                .values_list("status", flat=True)
            )
            if any(StepState(str(p)) not in DONE_STEP_STATES for p in parents):
                return None
            if await tx.step_status(step_id) is not StepState.PENDING:
                return None
            # The steps it reads are ancestors (checked at load), so they are done too.
            read = (
                await WorkflowStep.filter(task_id=task.id, name__in=condition.steps)
                .using_db(tx.conn)
                .values_list("name", "results")
                if condition.steps
                else []
            )
            results = dict(read)
            outcome = await self._apply(tx, task, step_id, row["name"], condition, results, found)
            if outcome is not None:
                await advance(tx, task, TaskState(found.status))
            return outcome

    async def _apply(
        self,
        tx: Transaction,
        task: TaskRef,
        step_id: int,
        name: str,
        condition: Condition,
        parents: dict[str, Any],
        found: Any,
    ) -> str | None:
        try:
            if evaluate(condition, parents, found.context):
                return None
        except BadPath as exc:
            return await _fail(tx, task, step_id, name, BAD_PATH, str(exc), exc.path)
        except ConditionError as exc:
            return await _fail(tx, task, step_id, name, CONDITION_ERROR, str(exc), None)
        meta = {"run_if": condition.source}
        skipped = await skip_step(tx, task, step_id, name, StepState.PENDING, CONDITION_FALSE, meta)
        return "condition_false" if skipped else None

    def _condition(self, namespace: str, handler: str, version: str, step: str) -> Condition | None:
        try:
            source = self.registry.get(namespace, handler, version).step(step).run_if
        except (NotFound, KeyError):
            return None  # not in this registry: the claim reports the handler unavailable
        if source is None:
            return None
        try:
            return compile_condition(source)
        except ConditionInvalid:
            return None  # refused at load: cannot happen for a loaded template


async def _fail(
    tx: Transaction,
    task: TaskRef,
    step_id: int,
    name: str,
    code: str,
    message: str,
    path: str | None,
) -> str | None:
    """The step fails for good (no retry: the parents' results will not change)."""
    moved = await tx.move_step(
        task,
        step_id,
        name,
        StepState.PENDING,
        StepState.ERROR,
        "failed",
        {"error": message, "error_class": code, "path": path},
        last_error=message,
        error_class=code,
        next_attempt_at=None,
        dispatched_at=tx.now,
        completed_at=tx.now,
    )
    return "failed" if moved else None
