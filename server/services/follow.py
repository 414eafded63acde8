"""Following one task's transitions: from the database, in cursor order, none missed or repeated.

Both task streams (REST server-sent events and the GraphQL `taskEvents` subscription) use this.
Live events from the hub only tell a follower that something happened; what it sends is always
read back from the database after its cursor. That is exact because every writer assigns a
task's history ids while holding the task's row lock (`Transaction.lock_task`, and the
PostgreSQL store's statements, `server.engine.pg_store`). So one task's cursors commit in order,
and what has committed after a cursor continues it without a gap.

The hub promises less. Events are published after commit by whichever process made them, and
in production they travel through Redis. Two workers that finish sibling steps at once can
deliver cursor 101 before 100, and a slow subscriber loses its oldest events. A follower that
sent what the hub delivered skipped the late one, and so did a client resuming after the last
cursor it had seen.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final
from uuid import UUID

from server.domain.states import TERMINAL_TASK_STATES, TaskState
from server.domain.views import TransitionEvent
from server.services.events import EventHub
from server.services.tasks import TaskService

STOPPED: Final = frozenset(TERMINAL_TASK_STATES | {TaskState.ERROR})
"""A follower stops with the task. An errored task moves again only when someone retries it."""


def stops(event: TransitionEvent) -> bool:
    """Whether this transition stopped its task."""
    return event.step_id is None and event.to_status in STOPPED


async def follow_task(
    hub: EventHub, tasks: TaskService, task_id: UUID, after: int, *, quiet: float
) -> AsyncIterator[TransitionEvent | None]:
    """The task's transitions after cursor `after` until it stops, and None whenever nothing
    has happened for `quiet` seconds (a stream's keep-alive)."""
    key = str(task_id)
    # Subscribed before the first read, so nothing committed in between goes unnoticed.
    async with hub.subscribe(lambda event: event.task_id == key) as live:
        cursor = after
        for event in await tasks.history(task_id, after=cursor):
            yield event
            cursor = event.cursor
        if (await tasks.get_task(task_id)).status in STOPPED:
            # It may have stopped after the read: its last transitions are read once more.
            for event in await tasks.history(task_id, after=cursor):
                yield event
            return
        async with contextlib.aclosing(_hub_hints(live, quiet)) as hints:
            async for hint in hints:
                if hint is None:
                    yield None
                    continue
                if hint.cursor <= cursor:
                    continue  # already read back with an earlier hint
                stopped = False
                for event in await tasks.history(task_id, after=cursor):
                    yield event
                    cursor = event.cursor
                    if event.step_id is None:  # a retry in the same batch reopens the task
                        stopped = stops(event)
                if stopped:
                    return


async def _hub_hints(
    events: AsyncIterator[TransitionEvent], quiet: float
) -> AsyncGenerator[TransitionEvent | None, None]:
    """The hub's events, and None whenever none has come for `quiet` seconds."""
    pending: asyncio.Future[TransitionEvent] | None = None
    try:
        while True:
            if pending is None:
                # Kept across timeouts: cancelling it would close the hub's iterator.
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=quiet)
            if not done:
                yield None
                continue
            event, pending = pending.result(), None
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
