"""`GET /tasks/{id}/events`: a task's transitions as server-sent events.

History after the client's cursor (`Last-Event-ID`, or `?after=`) is replayed from the
database, and so is everything after it as the hub reports it (`server.services.follow`).
Each event's `id` is its cursor, so an EventSource that reconnects resumes exactly where it
stopped. The stream ends with an `end`
event once the task has stopped (complete, error, cancelled or resolved) and its last
transitions were sent; reconnecting after that gets 204, which tells EventSource to stop.
"""

from collections.abc import AsyncIterator
from typing import Final
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rest_compat import serializers
from rest_compat.operations import services_of
from rest_compat.params import EventsHeaders, EventsQuery
from rest_compat.shapes import StreamEndOut
from server.container import Services
from server.domain.views import TransitionEvent
from server.services.follow import STOPPED, follow_task

KEEPALIVE_SECONDS = 15.0
HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def task_events(request: Request, query: EventsQuery, headers: EventsHeaders) -> Response:
    services = services_of(request)
    task = await services.tasks.get_task(request.path_params["id"])
    after = headers.last_event_id if headers.last_event_id is not None else query.after
    stopped = task.status in STOPPED
    if after is not None and stopped and not await services.tasks.history(task.id, after=after):
        return Response(status_code=204)
    return StreamingResponse(
        _stream(services, task.id, after or 0), media_type="text/event-stream", headers=HEADERS
    )


async def _stream(services: Services, task_id: UUID, after: int) -> AsyncIterator[str]:
    events = follow_task(services.hub, services.tasks, task_id, after, quiet=KEEPALIVE_SECONDS)
    async for event in events:
        yield ": keepalive\n\n" if event is None else _frame(event)
    final = await services.tasks.get_task(task_id)
    yield f"event: end\ndata: {StreamEndOut(status=final.status).model_dump_json()}\n\n"


def _frame(event: TransitionEvent) -> str:
    data = serializers.event_out(event).model_dump_json()
    return f"id: {event.cursor}\ndata: {data}\n\n"
