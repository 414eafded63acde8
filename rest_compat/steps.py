"""Workflow step endpoints under `/tasks/{task_id}/workflow_steps`; `{step_id}` is the step's
name or its numeric id."""

from starlette.requests import Request

from rest_compat import serializers
from rest_compat.operations import services_of
from rest_compat.params import ItemsQuery, ResolveStepBody, UpdateStepBody
from rest_compat.shapes import ItemPageOut, StepList, StepOut
from server.container import Services
from server.domain.views import StepView
from server.services import map_progress
from server.services.map_progress import item_counts


async def _one(services: Services, task_id: str, step: StepView) -> StepOut:
    # A step's reason depends on the task's status and on all its steps, hence the whole read.
    reasons = (await services.tasks.dependencies(task_id)).reasons
    return serializers.step_out(step, reasons, await item_counts([step.id]))


async def list_steps(request: Request) -> StepList:
    deps = await services_of(request).tasks.dependencies(request.path_params["task_id"])
    items = await item_counts([s.id for s in deps.steps])
    return StepList(
        workflow_steps=[serializers.step_out(s, deps.reasons, items) for s in deps.steps]
    )


async def list_items(request: Request, query: ItemsQuery) -> ItemPageOut:
    """A page of a map step's items, in input order."""
    page = await map_progress.list_items(
        services_of(request).steps,
        request.path_params["task_id"],
        request.path_params["step_id"],
        after=-1 if query.after is None else query.after,
        first=query.first,
    )
    return serializers.item_page_out(page)


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
