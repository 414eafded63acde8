"""Workflow step endpoints under `/tasks/{task_id}/workflow_steps`; `{step_id}` is the step's
name or its numeric id."""

from collections.abc import Sequence

from starlette.requests import Request

from rest_compat import serializers
from rest_compat.operations import services_of
from rest_compat.params import ResolveStepBody, UpdateStepBody
from rest_compat.shapes import StepList, StepOut
from server.container import Services
from server.domain.views import BlockedReason, StepView


async def _reasons(
    services: Services, task_id: str, steps: Sequence[StepView] | None = None
) -> dict[str, BlockedReason]:
    """Why each step is not running, by name: it takes the task's status and all its steps."""
    task = await services.tasks.get_task(task_id)
    every = steps if steps is not None else await services.steps.list_steps(task.id)
    explained = services.tasks.explain_steps(task, every)
    return {name: reason for name, reason in explained.items() if reason is not None}


async def _one(services: Services, task_id: str, step: StepView) -> StepOut:
    return serializers.step_out(step, await _reasons(services, task_id))


async def list_steps(request: Request) -> StepList:
    services = services_of(request)
    task_id = request.path_params["task_id"]
    steps = await services.steps.list_steps(task_id)
    reasons = await _reasons(services, task_id, steps)
    return StepList(workflow_steps=[serializers.step_out(s, reasons) for s in steps])


async def show_step(request: Request) -> StepOut:
    services = services_of(request)
    task_id = request.path_params["task_id"]
    step = await services.steps.get_step(task_id, request.path_params["step_id"])
    return await _one(services, task_id, step)


async def update_step(request: Request, body: UpdateStepBody) -> StepOut:
    services = services_of(request)
    task_id = request.path_params["task_id"]
    changes = {"inputs": body.inputs} if "inputs" in body.model_fields_set else {}
    step = await services.steps.update_step(
        task_id, request.path_params["step_id"], retry_limit=body.retry_limit, **changes
    )
    return await _one(services, task_id, step)


async def cancel_step(request: Request) -> StepOut:
    services = services_of(request)
    task_id = request.path_params["task_id"]
    step = await services.steps.cancel_step(task_id, request.path_params["step_id"])
    return await _one(services, task_id, step)


async def retry_step(request: Request) -> StepOut:
    services = services_of(request)
    task_id = request.path_params["task_id"]
    step = await services.steps.retry_step(task_id, request.path_params["step_id"])
    return await _one(services, task_id, step)


async def resolve_step(request: Request, body: ResolveStepBody) -> StepOut:
    services = services_of(request)
    task_id = request.path_params["task_id"]
    step = await services.steps.resolve_step(
        task_id, request.path_params["step_id"], results=body.results, reason=body.reason
    )
    return await _one(services, task_id, step)
