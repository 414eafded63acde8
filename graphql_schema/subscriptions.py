from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Annotated

import strawberry

from graphql_schema.context import Info
from graphql_schema.types.transitions import TransitionEventType, as_event
from server.container import Services
from server.domain.errors import ValidationFailed
from server.domain.views import TransitionEvent
from server.services import queries
from server.services.follow import follow_task as follow

REPLAY_LIMIT = 10_000
KEEPALIVE_SECONDS = 15.0
"""How often a quiet task stream wakes (graphql-transport-ws keeps its own pings)."""


def parse_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise ValidationFailed("Invalid cursor", {"after": ["is not a valid event cursor"]})
    return int(after)


async def replay_then_live(
    services: Services,
    accepts: Callable[[TransitionEvent], bool],
    history: Callable[[], AsyncIterator[Iterable[TransitionEvent]]],
    after: int,
) -> AsyncIterator[TransitionEvent]:
    """History after the cursor, then live events, none twice (a namespace's stream).

    Unlike one task's (`server.services.follow`), a namespace's transitions come from many
    tasks, whose cursors can commit out of order: one that commits late, below a cursor
    already sent, is not sent. Follow a task for an exact stream."""
    async with services.hub.subscribe(accepts=accepts) as live:
        seen = after
        async for batch in history():
            for event in batch:
                seen = max(seen, event.cursor)
                yield event
        async for event in live:
            if event.cursor > seen:
                yield event


async def follow_task(
    services: Services, task_id: str, after: int | None
) -> AsyncIterator[TransitionEvent]:
    """The task's transitions after the cursor (without one, its whole history), then live
    ones until it stops: the same stream as REST's server-sent events
    (`server.services.follow`)."""
    task = await services.tasks.get_task(task_id)
    events = follow(services.hub, services.tasks, task.id, after or 0, quiet=KEEPALIVE_SECONDS)
    async for followed in events:
        if followed is not None:
            yield followed


async def follow_namespace(
    services: Services, namespace: str, after: int | None
) -> AsyncIterator[TransitionEvent]:
    services.registry.namespace(namespace)

    async def history() -> AsyncIterator[list[TransitionEvent]]:
        cursor = after
        while cursor is not None:
            rows = await queries.transitions_in_namespace(namespace, cursor, REPLAY_LIMIT)
            yield [as_event(r, namespace) for r in rows]
            cursor = rows[-1].id if len(rows) == REPLAY_LIMIT else None

    async for event in replay_then_live(
        services, lambda e: e.namespace == namespace, history, after or 0
    ):
        yield event


TASK_CURSOR = strawberry.argument(
    description=(
        "Resume after this event cursor (the last one received). Omitted: the task's "
        "whole history is replayed first."
    )
)
NAMESPACE_CURSOR = strawberry.argument(
    description=(
        "Replay the namespace's history after this event cursor first. Omitted: "
        "live events only, from now on."
    )
)


async def task_events(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="Task id.")],
    after: Annotated[str | None, TASK_CURSOR] = None,
) -> AsyncGenerator[TransitionEventType, None]:
    async for event in follow_task(info.context.services, id, parse_cursor(after)):
        yield TransitionEventType.from_event(event)


async def namespace_events(
    info: Info,
    namespace: Annotated[str, strawberry.argument(description="Namespace name.")],
    after: Annotated[str | None, NAMESPACE_CURSOR] = None,
) -> AsyncGenerator[TransitionEventType, None]:
    async for event in follow_namespace(info.context.services, namespace, parse_cursor(after)):
        yield TransitionEventType.from_event(event)


@strawberry.type(name="Subscription", description="Live state changes (graphql-transport-ws).")
class Subscription:
    task_events: AsyncGenerator[TransitionEventType, None] = strawberry.subscription(
        resolver=task_events,
        description=(
            "Every transition of one task and its steps, in cursor order, none twice: its "
            "history first (all of it, or what followed `after`), then live ones, as REST's "
            "event stream sends them; completes after the task's final transition (complete, "
            "error, cancelled or resolved_manually)."
        ),
    )
    namespace_events: AsyncGenerator[TransitionEventType, None] = strawberry.subscription(
        resolver=namespace_events,
        description=(
            "Every transition of every task in a namespace (a firehose), including each "
            "task's and step's \"created\" transition: live from now on, or the history "
            "after `after` first. Follow one task (`taskEvents`) for a stream that never "
            "misses a transition committed late."
        ),
    )
