"""A transition published while Redis restarts still reaches subscribers.

Found by the cluster run (bench/load.py --faults): Redis pub/sub drops whatever is published
while it is down, so a GraphQL subscriber whose task finished during the restart never saw
its final transition. The listener now re-reads recent history from the database after it
reconnects.
"""

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.container import Services, build_services
from server.domain.views import CreateTask
from server.infra.ports import NullDispatcher
from server.infra.pubsub import RedisListener
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from tests.conftest import fast_settings
from tests.support.cluster import PrivateRedis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server to restart one"
)


@contextlib.asynccontextmanager
async def listening(
    database_url: str, registry: HandlerRegistry, redis: PrivateRedis, **listener: Any
) -> AsyncIterator[tuple[Services, RedisListener]]:
    """Services on a private Redis and this process's listener, subscribed."""
    settings = fast_settings(database_url, broker_url=redis.url)
    services = build_services(settings, NullDispatcher(), registry=registry)
    await services.open()
    events = RedisListener(redis.url, services.hub, queries.events_since, **listener)
    running = asyncio.create_task(events.run())
    try:
        await asyncio.wait_for(events.ready.wait(), 10)
        yield services, events
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await services.close()


async def create_and_publish(services: Services) -> str:
    """Create a task and let the outbox try to publish its "created" event; its id."""
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    assert services.changes.outbox is not None
    assert await asyncio.to_thread(services.changes.outbox.flush, 30)
    return str(task.id)


async def test_events_published_while_redis_was_down_reach_subscribers(
    database_url: str, registry: HandlerRegistry, tmp_path: Path
) -> None:
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        async with (
            listening(database_url, registry, redis) as (services, _),
            services.hub.subscribe() as live,
        ):
            redis.stop()
            # The outbox tries (and fails) to publish the creation while Redis is down.
            task_id = await create_and_publish(services)
            redis.start()
            event = await asyncio.wait_for(anext(live), 15)
            assert event.task_id == task_id
            assert (event.to_status, event.reason) == ("pending", "created")
    finally:
        redis.stop()


async def test_the_channel_is_not_decoded_while_nobody_here_listens(
    database_url: str, registry: HandlerRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The channel carries every transition of every process; a server with no subscriber
    # skips them unread. A message it cannot decode shows whether it was read: read, it
    # breaks the subscription (a warning, a reconnect).
    import redis as sync_redis

    from server.infra.pubsub import channel

    redis = PrivateRedis(tmp_path)
    redis.start()
    publisher = sync_redis.Redis.from_url(redis.url)
    wanted = {"wanted": lambda: services.hub.subscriber_count > 0}
    try:
        async with listening(database_url, registry, redis, **wanted) as (services, events):
            assert publisher.publish(channel(publisher), b"not json") == 1
            await asyncio.sleep(0.3)
            assert events.ready.is_set()
            assert "lost its connection" not in caplog.text
            async with services.hub.subscribe() as live:  # someone listens: read again
                task_id = await create_and_publish(services)
                assert (await asyncio.wait_for(anext(live), 15)).task_id == task_id
    finally:
        publisher.close()
        redis.stop()


async def test_deployments_on_two_databases_of_one_redis_see_only_their_own_events(
    tmp_path: Path,
) -> None:
    # Pub/sub is server-wide in Redis: the channel names the database, or a deployment on
    # database 2 would show its subscribers every transition of the one on database 1.
    from datetime import UTC, datetime

    from server.domain.views import TransitionEvent
    from server.infra.pubsub import RedisPublisher
    from server.services.events import EventHub

    redis = PrivateRedis(tmp_path)
    redis.start()
    base = redis.url.rsplit("/", 1)[0]
    hubs = {db: EventHub() for db in (1, 2)}

    async def none(since: datetime, limit: int) -> list[TransitionEvent]:
        return []

    listeners = {db: RedisListener(f"{base}/{db}", hubs[db], none) for db in hubs}
    running = [asyncio.create_task(listener.run()) for listener in listeners.values()]
    event = TransitionEvent(1, "t", "ns", None, None, None, "pending", "created", datetime.now(UTC))
    try:
        for listener in listeners.values():
            await asyncio.wait_for(listener.ready.wait(), 10)
        async with hubs[1].subscribe() as one, hubs[2].subscribe() as two:
            RedisPublisher(f"{base}/1").publish([event])
            assert (await asyncio.wait_for(anext(one), 5)).task_id == "t"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(two), 0.5)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        redis.stop()
