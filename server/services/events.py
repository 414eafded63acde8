"""In-process fan-out of transition events to subscribers.

One `EventHub` per process. Producers on this process publish to it directly; in production a
single Redis listener (see `server.infra.pubsub`) feeds it the events produced by workers anywhere.
Subscribers get an asyncio queue each; a slow subscriber loses its oldest events rather than
growing memory without bound (it can resume from the database with a cursor).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from server.domain.views import TransitionEvent

log = logging.getLogger(__name__)

EventFilter = Callable[[TransitionEvent], bool]


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[TransitionEvent]
    loop: asyncio.AbstractEventLoop
    accepts: EventFilter
    dropped: int = field(default=0)


class EventHub:
    """Fans events out to every matching subscriber; thread-safe to publish into."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._subscribers: set[_Subscriber] = set()
        self._max_queue = max_queue

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    def publish(self, events: Sequence[TransitionEvent]) -> None:
        """Deliver events to matching subscribers (from any thread)."""
        for sub in list(self._subscribers):
            matching = [e for e in events if sub.accepts(e)]
            if not matching:
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is sub.loop:
                self._put(sub, matching)
            else:
                with contextlib.suppress(RuntimeError):  # the subscriber's loop has closed
                    sub.loop.call_soon_threadsafe(self._put, sub, matching)

    def _put(self, sub: _Subscriber, events: list[TransitionEvent]) -> None:
        for event in events:
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, accepts: EventFilter | None = None
    ) -> AsyncIterator[AsyncIterator[TransitionEvent]]:
        """Open a subscription; iterate the yielded iterator to receive events."""
        sub = _Subscriber(
            queue=asyncio.Queue(self._max_queue),
            loop=asyncio.get_running_loop(),
            accepts=accepts or (lambda _e: True),
        )
        self._subscribers.add(sub)

        async def stream() -> AsyncIterator[TransitionEvent]:
            while True:
                yield await sub.queue.get()

        try:
            yield stream()
        finally:
            self._subscribers.discard(sub)
