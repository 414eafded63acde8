"""Pause and resume: `POST /tasks/{id}/pause|resume` and
`POST /handlers/{namespace}/{name}/pause|resume` (optionally `?version=`)."""

from starlette.requests import Request

from rest_compat import serializers
from rest_compat.operations import services_of
from rest_compat.params import HandlerQuery
from rest_compat.shapes import HandlerPauseOut, TaskRecordOut


async def pause_task(request: Request) -> TaskRecordOut:
    task = await services_of(request).pausing.pause_task(request.path_params["id"])
    return serializers.task_record(task)


async def resume_task(request: Request) -> TaskRecordOut:
    task = await services_of(request).pausing.resume_task(request.path_params["id"])
    return serializers.task_record(task)


async def pause_handler(request: Request, query: HandlerQuery) -> HandlerPauseOut:
    return await _handler(request, query, pause=True)


async def resume_handler(request: Request, query: HandlerQuery) -> HandlerPauseOut:
    return await _handler(request, query, pause=False)


async def _handler(request: Request, query: HandlerQuery, *, pause: bool) -> HandlerPauseOut:
    pausing = services_of(request).pausing
    namespace, name = request.path_params["namespace"], request.path_params["name"]
    state = await (pausing.pause_handler if pause else pausing.resume_handler)(
        namespace, name, query.version
    )
    return HandlerPauseOut(
        namespace=namespace,
        name=name,
        version=query.version,
        paused=state.paused,
        paused_versions=list(state.versions),
    )
