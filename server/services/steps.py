"""Step use cases: read, configure, cancel, retry and resolve one workflow step.

A step is addressed by name or by id (`{step}` in REST, `step:` in GraphQL): the name wins,
and a string of digits that names no step is tried as an id of a step of the same task.
"""

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from server.db.models import WorkflowStep
from server.db.rows import json_text
from server.domain.errors import InvalidTransition, StepNotFound, ValidationFailed
from server.domain.inputs import MAX_REASON_LENGTH, InputProblems
from server.domain.states import StepState
from server.domain.views import StepView, TransitionView
from server.engine.changes import StateChanges, TaskRef
from server.engine.progress import advance
from server.services import queries

MAX_RETRY_LIMIT = 1000
_UNSET: Any = object()


class StepService:
    """Reads and commands on single steps, every state change through `StateChanges`."""

    def __init__(
        self,
        changes: StateChanges,
        step_cancelled: Callable[[UUID, str], Awaitable[None]] | None = None,
    ) -> None:
        self.changes = changes
        self.step_cancelled = step_cancelled
        """After a cancel committed: cancels the child task the step started (`tasks`)."""

    async def list_steps(self, task_id: UUID | str) -> list[StepView]:
        """Every step of the task, in template order."""
        task = await queries.find_task(task_id)
        return (await queries.steps_by_task([task.id]))[task.id]

    async def get_step(self, task_id: UUID | str, step: str | int) -> StepView:
        """One step by name or id, or TaskNotFound / StepNotFound."""
        for view in await self.list_steps(task_id):
            if view.name == str(step):
                return view
        if str(step).isdigit():
            for view in await self.list_steps(task_id):
                if view.id == int(step):
                    return view
        raise StepNotFound(task_id, step)

    async def transitions(self, step_ids: list[int]) -> dict[int, list[TransitionView]]:
        """History of these steps, oldest first."""
        return await queries.transitions_by_step(step_ids)

    async def update_step(
        self,
        task_id: UUID | str,
        step: str | int,
        *,
        retry_limit: int | None = None,
        inputs: Any = _UNSET,
    ) -> StepView:
        """Change `retry_limit` and/or `inputs`; no state change."""
        problems = InputProblems()
        if retry_limit is not None and (
            isinstance(retry_limit, bool) or not 0 <= retry_limit <= MAX_RETRY_LIMIT
        ):
            problems.add("retry_limit", f"must be an integer from 0 to {MAX_RETRY_LIMIT}")
        if inputs is not _UNSET:
            problems.json("inputs", inputs)
        if problems:
            raise ValidationFailed("Invalid step update", problems.details)
        view = await self.get_step(task_id, step)
        fields: dict[str, Any] = {}
        if retry_limit is not None:
            fields["retry_limit"] = retry_limit
        if inputs is not _UNSET:
            fields["inputs"] = json_text(inputs)
        if fields:
            now = self.changes.clock.now()
            await WorkflowStep.filter(id=view.id).update(updated_at=now, **fields)
        return await self.get_step(view.task_id, view.name)

    async def cancel_step(self, task_id: UUID | str, step: str | int) -> StepView:
        """Cancel a pending, running or backing-off step. Idempotent; 409 when finished."""
        view = await self.get_step(task_id, step)
        if view.status is not StepState.CANCELLED:
            await self._move(
                view,
                StepState.CANCELLED,
                "cancelled",  # not a status: the history's reason
                lease_owner=None,
                lease_expires_at=None,
            )
            if self.step_cancelled is not None:
                await self.step_cancelled(view.task_id, view.name)
        return await self.get_step(view.task_id, view.name)

    async def retry_step(self, task_id: UUID | str, step: str | int) -> StepView:
        """Re-run a failed step now, with a fresh attempt budget."""
        view = await self.get_step(task_id, step)
        if view.status is not StepState.ERROR:
            raise InvalidTransition("step", view.status.value, StepState.PENDING.value)
        await self._move(
            view, StepState.PENDING, "retried", attempts=0, next_attempt_at=None, dispatched_at=None
        )
        return await self.get_step(view.task_id, view.name)

    async def resolve_step(
        self,
        task_id: UUID | str,
        step: str | int,
        *,
        results: Any = None,
        reason: str | None = None,
    ) -> StepView:
        """Mark a step resolved by hand; dependants treat it as complete. Idempotent."""
        problems = InputProblems()
        problems.json("results", results)
        problems.text("reason", reason, MAX_REASON_LENGTH)
        if problems:
            raise ValidationFailed("Invalid step resolution", problems.details)
        view = await self.get_step(task_id, step)
        if view.status is not StepState.RESOLVED_MANUALLY:
            await self._move(
                view,
                StepState.RESOLVED_MANUALLY,
                reason or "resolved manually",
                {"reason": reason} if reason else None,
                results=json_text(results),
                completed_at=self.changes.clock.now(),
                next_attempt_at=None,
            )
        return await self.get_step(view.task_id, view.name)

    async def _move(
        self,
        view: StepView,
        target: StepState,
        reason: str,
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        task = await queries.find_task(view.task_id)
        ref = TaskRef(task.id, task.namespace)
        async with self.changes.on_task(task.id) as (tx, status):
            state = await tx.step_status(view.id)
            assert state is not None  # steps are never deleted while addressed
            if not await tx.move_step(
                ref, view.id, view.name, state, target, reason, metadata, **fields
            ):
                raise InvalidTransition("step", state.value, target.value)
            await advance(tx, ref, status)
