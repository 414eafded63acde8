"""`GET /tasks/{id}/events`: a task's transitions as server-sent events.

History after the client's cursor (`Last-Event-ID`, or `?after=`) is replayed from the
database, then events continue live from the hub. Each event's `id` is its cursor, so an
EventSource that reconnects resumes exactly where it stopped. The stream ends with an `end`
event once the task has stopped (complete, error, cancelled or resolved) and its last
transitions were sent; reconnecting after that gets 204, which tells EventSource to stop.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rest_compat import serializers
from rest_compat.operations import services_of
from rest_compat.params import EventsHeaders, EventsQuery
from rest_compat.shapes import StreamEndOut
from server.container import Services
from server.domain.states import TERMINAL_TASK_STATES, TaskState
from server.domain.views import TransitionEvent

# An errored task only moves again when someone retries it, so watching it ends too.
STOPPED: Final = frozenset(TERMINAL_TASK_STATES | {TaskState.ERROR})
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
    key = str(task_id)
    # Subscribe before reading history, so nothing committed in between is missed.
    async with services.hub.subscribe(lambda event: event.task_id == key) as live:
        cursor = after
        for event in await services.tasks.history(task_id, after=cursor):
            yield _frame(event)
            cursor = event.cursor
        task = await services.tasks.get_task(task_id)
        if task.status not in STOPPED:
            async with contextlib.aclosing(_live(live, cursor)) as following:
                async for item in following:
                    if item is None:
                        yield ": keepalive\n\n"
                        continue
                    yield _frame(item)
                    cursor = item.cursor
                    if item.step_id is None and item.to_status in STOPPED:
                        break
        # Transitions committed with (or just before) the final one, e.g. the steps a cancel
        # cascaded to, are read back from the database rather than raced for on the hub.
        for event in await services.tasks.history(task_id, after=cursor):
            yield _frame(event)
        final = await services.tasks.get_task(task_id)
        yield f"event: end\ndata: {StreamEndOut(status=final.status).model_dump_json()}\n\n"


async def _live(
    events: AsyncIterator[TransitionEvent], cursor: int
) -> AsyncGenerator[TransitionEvent | None, None]:
    """Live events newer than `cursor`, and None whenever the line has been quiet a while."""
    pending: asyncio.Future[TransitionEvent] | None = None
    try:
        while True:
            if pending is None:
                # Kept across timeouts: cancelling it would close the hub's iterator.
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield None
                continue
            event, pending = pending.result(), None
            if event.cursor > cursor:
                cursor = event.cursor
                yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


def _frame(event: TransitionEvent) -> str:
    data = serializers.event_out(event).model_dump_json()
    return f"id: {event.cursor}\ndata: {data}\n\n"
