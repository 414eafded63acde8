"""Transition events across processes through Redis pub/sub.

Producers (workers and servers) publish each committed event to one channel; each server process
runs one listener that feeds its in-process hub (`server.services.events.EventHub`), which fans
out to all subscribers. The hub and the history read are handed in, so this module knows Redis
and nothing of the services above it.

Pub/sub is fire-and-forget: whatever is published while Redis restarts, or while this listener
is disconnected, is gone. So after every reconnect the listener re-reads the recent history
from the database (the source of truth) and feeds it to the hub too; subscribers drop what
they already saw by cursor. Without that, a subscriber whose task finished during a Redis
restart would wait forever for its final transition.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import redis
import redis.asyncio as aioredis

from server.domain.views import TransitionEvent
from server.infra import round_trips
from server.infra.ports import EventPublisher

log = logging.getLogger(__name__)

CHANNEL = "tasker:transitions"


def channel(client: redis.Redis | aioredis.Redis) -> str:
    """The transitions channel of the Redis database `client` uses. Pub/sub channels are
    server-wide, not per database: two deployments sharing a Redis server on different
    databases would otherwise receive (and show their subscribers) each other's events."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return f"{CHANNEL}:{db}"


# After a disconnect, history written from this long before it is re-read: events reach Redis
# after their transaction commits, through an outbox that may lag behind under load.
CATCH_UP_WINDOW = timedelta(seconds=15)
CATCH_UP_LIMIT = 10_000

CatchUp = Callable[[datetime, int], Awaitable[Sequence[TransitionEvent]]]
"""Reads the history written since a time, at most so many events (`queries.events_since`)."""


class RedisPublisher:
    """Publishes events to Redis; failures are logged (history stays in the database)."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.channel = channel(self._client)

    def publish(self, events: Sequence[TransitionEvent]) -> None:
        """One PUBLISH per batch of events (a JSON list): with this thread's open round trip
        (`server.infra.round_trips`: the outbox sends a commit's events with its steps), else
        now."""
        payload = json.dumps([e.to_json() for e in events])
        trip = round_trips.joining(self._client)
        if trip is not None:
            trip.publish(self.channel, payload)
            return
        try:
            self._client.publish(self.channel, payload)
        except redis.RedisError:
            log.warning("could not publish %d events to Redis", len(events), exc_info=True)


class RedisListener:
    """The one subscription of this process; reconnects until stopped."""

    def __init__(
        self,
        url: str,
        hub: EventPublisher,
        catch_up: CatchUp,
        *,
        window: timedelta = CATCH_UP_WINDOW,
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.url = url
        self.hub = hub
        self.ready = asyncio.Event()
        self.catch_up = catch_up
        self.window = window
        self.wanted = wanted
        """Whether anyone in this process listens now: the channel carries every transition
        of every process, and decoding them for nobody was a server's busiest work."""

    async def run(self) -> None:
        """Forward every message on the channel into the hub, reconnecting after failures."""
        lost_at: datetime | None = None
        while True:
            client = aioredis.Redis.from_url(self.url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(channel(client))
                    if lost_at is not None:  # subscribed again: now fill the gap
                        await self._catch_up(lost_at - self.window)
                        lost_at = None
                    self.ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message" or not self.wanted():
                            continue
                        data = json.loads(message["data"])
                        self.hub.publish([TransitionEvent.from_json(d) for d in data])
            except asyncio.CancelledError:
                raise
            except Exception:
                lost_at = lost_at or datetime.now(UTC)
                self.ready.clear()
                log.warning("Redis event listener lost its connection; retrying", exc_info=True)
                await asyncio.sleep(0.5)
            finally:
                await client.aclose()

    async def _catch_up(self, since: datetime) -> None:
        """Feed the hub the history written since `since`; duplicates are dropped downstream."""
        try:
            events = await self.catch_up(since, CATCH_UP_LIMIT)
        except Exception:
            log.warning("could not re-read events after reconnecting", exc_info=True)
            return
        if events:
            self.hub.publish(events)
        log.info("event listener reconnected; re-read %d recent events", len(events))
