from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Annotated

import strawberry

from graphql_schema.context import Info
from graphql_schema.types.transitions import TransitionEventType, as_event
from server.container import Services
from server.domain.errors import ValidationFailed
from server.domain.views import TransitionEvent
from server.services import queries

FINAL_TASK_STATES = frozenset({"complete", "error", "cancelled", "resolved_manually"})
REPLAY_LIMIT = 10_000


def parse_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise ValidationFailed("Invalid cursor", {"after": ["is not a valid event cursor"]})
    return int(after)


def is_final(event: TransitionEvent) -> bool:
    return event.step_id is None and event.to_status in FINAL_TASK_STATES


async def replay_then_live(
    services: Services,
    accepts: Callable[[TransitionEvent], bool],
    history: Callable[[], AsyncIterator[Iterable[TransitionEvent]]],
    after: int,
    *,
    then_live: bool = True,
) -> AsyncIterator[TransitionEvent]:
    """History after the cursor, then live events; none twice, none missed in between."""
    async with services.hub.subscribe(accepts=accepts) as live:
        seen = after
        async for batch in history():
            for event in batch:
                seen = max(seen, event.cursor)
                yield event
        if not then_live:
            return
        async for event in live:
            if event.cursor > seen:
                yield event


async def follow_task(
    services: Services, task_id: str, after: int | None
) -> AsyncIterator[TransitionEvent]:
    task = await services.tasks.get_task(task_id)
    key = str(task.id)
    # A task that has already ended sends nothing more: after the replay (which holds its
    # final transition unless the cursor is past it), the stream completes instead of waiting.
    ended = task.status in FINAL_TASK_STATES

    async def history() -> AsyncIterator[list[TransitionEvent]]:
        if after is not None:
            yield await services.tasks.history(task.id, after=after)
        elif (await services.tasks.get_task(task.id)).status in FINAL_TASK_STATES:
            yield [e for e in await services.tasks.history(task.id) if is_final(e)][-1:]

    events = replay_then_live(
        services, lambda e: e.task_id == key, history, after or 0, then_live=not ended
    )
    async for event in events:
        yield event
        if is_final(event):
            return


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


CURSOR_ARG = strawberry.argument(
    description="Replay history after this event cursor first, then continue live."
)


async def task_events(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="Task id.")],
    after: Annotated[str | None, CURSOR_ARG] = None,
) -> AsyncGenerator[TransitionEventType, None]:
    async for event in follow_task(info.context.services, id, parse_cursor(after)):
        yield TransitionEventType.from_event(event)


async def namespace_events(
    info: Info,
    namespace: Annotated[str, strawberry.argument(description="Namespace name.")],
    after: Annotated[str | None, CURSOR_ARG] = None,
) -> AsyncGenerator[TransitionEventType, None]:
    async for event in follow_namespace(info.context.services, namespace, parse_cursor(after)):
        yield TransitionEventType.from_event(event)


@strawberry.type(name="Subscription", description="Live state changes (graphql-transport-ws).")
class Subscription:
    task_events: AsyncGenerator[TransitionEventType, None] = strawberry.subscription(
        resolver=task_events,
        description=(
            "Every transition of one task and its steps; completes after the task's final "
            "transition (complete, error, cancelled or resolved_manually)."
        ),
    )
    namespace_events: AsyncGenerator[TransitionEventType, None] = strawberry.subscription(
        resolver=namespace_events,
        description="Every transition of every task in a namespace (a firehose).",
    )
