"""Transition events across processes through Redis pub/sub.

Producers (workers and servers) publish each committed event to one channel; each server process
runs one listener that feeds its in-process `EventHub`, which fans out to all subscribers.
"""

import asyncio
import json
import logging
from collections.abc import Sequence

import redis
import redis.asyncio as aioredis

from server.domain.views import TransitionEvent
from server.services.events import EventHub

log = logging.getLogger(__name__)

CHANNEL = "tasker:transitions"


class RedisPublisher:
    """Publishes events to Redis; failures are logged (history stays in the database)."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def publish(self, events: Sequence[TransitionEvent]) -> None:
        """One PUBLISH per batch of events (a JSON list)."""
        try:
            self._client.publish(CHANNEL, json.dumps([e.to_json() for e in events]))
        except redis.RedisError:
            log.warning("could not publish %d events to Redis", len(events), exc_info=True)


class RedisListener:
    """The one subscription of this process; reconnects until stopped."""

    def __init__(self, url: str, hub: EventHub) -> None:
        self.url = url
        self.hub = hub
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Forward every message on the channel into the hub, reconnecting after failures."""
        while True:
            client = aioredis.Redis.from_url(self.url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = json.loads(message["data"])
                        self.hub.publish([TransitionEvent.from_json(d) for d in data])
            except asyncio.CancelledError:
                raise
            except Exception:
                self.ready.clear()
                log.warning("Redis event listener lost its connection; retrying", exc_info=True)
                await asyncio.sleep(0.5)
            finally:
                await client.aclose()
