# mypy: disable-error-code="no-untyped-call"
# (Dramatiq's brokers and consumers are untyped.)
"""Brokers whose idle consumers block until a message arrives instead of polling.

Dramatiq's Redis consumer polls: with nothing to fetch it sleeps up to the worker timeout and
fetches again, so a short timeout (for a short hand-off) kept an idle worker busy. Here every
enqueue also PUBLISHes on the queue's wake channel, in the same round trip, and an idle
consumer waits on that channel: it fetches as soon as a message is sent, and otherwise only
once per timeout (its Redis heartbeat, and a chance to notice a shutdown). A consumer whose
prefetch is full waits for an ack instead. The in-process broker's consumer already blocks on
its queue; both only need their waits bounded by the next delayed message due, which the
consumer thread moves to the queue when its consumer comes back empty-handed.

Subscribing before fetching makes the wake race-free: a message sent after a fetch found the
queue empty has published into this consumer's subscription, which the wait then reads.
"""

import contextlib
import heapq
import threading
from typing import Any

import dramatiq
import redis
from dramatiq import Message
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.brokers.stub import StubBroker, _StubConsumer
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.worker import WorkerThread

from server.infra import round_trips

WAKE = b""
"""What a wake-up carries: the stub consumer skips it, Redis subscribers only count it."""


class _DueTimes:
    """Due times (ms) of the delayed messages a consumer handed out and the thread holds."""

    def __init__(self) -> None:
        self._etas: list[int] = []

    def note(self, proxy: MessageProxy | None) -> MessageProxy | None:
        if proxy is not None and proxy.options.get("eta") is not None:
            heapq.heappush(self._etas, int(proxy.options["eta"]))
        return proxy

    def wait_ms(self, idle_ms: int) -> int:
        """How long the consumer may block: 0 when a delayed message is due (the thread then
        enqueues it), else until the next one or `idle_ms`."""
        now = current_millis()
        if self._etas and self._etas[0] <= now:
            while self._etas and self._etas[0] <= now:
                heapq.heappop(self._etas)
            return 0
        return min(idle_ms, self._etas[0] - now) if self._etas else idle_ms


class _BlockingStubConsumer(_StubConsumer):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.idle_ms = self.timeout
        self.due = _DueTimes()

    def __next__(self) -> MessageProxy | None:
        wait = self.due.wait_ms(self.idle_ms)
        if not wait:
            return None
        self.timeout = wait
        proxy = super().__next__()
        if proxy is not None and not proxy.message_id:
            # A wake-up (see `wake_consumers`): not a message.
            self.queue.task_done()
            self.prefetch_semaphore.release()
            return None
        return self.due.note(proxy)


class QuietStubBroker(StubBroker):
    """The in-process broker, with consumers that block until a message or a due time."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> Consumer:
        consumer: Any = super().consume(queue_name, prefetch, timeout)
        return _BlockingStubConsumer(consumer.queue, consumer.dead_letters, prefetch, timeout)

    def wake_consumers(self) -> None:
        """Make every blocked consumer return now (at shutdown)."""
        wake: Message[Any] = Message(
            queue_name="", actor_name="", args=(), kwargs={}, options={}, message_id=""
        )
        for queue in list(self.queues.values()):
            queue.put(wake.encode())


class _BlockingRedisConsumer(_RedisConsumer):
    def __init__(self, broker: "QuietRedisBroker", queue_name: str, prefetch: int, timeout: int):
        super().__init__(broker, queue_name, prefetch, timeout)
        self.idle_ms = timeout * broker.idle_factors.get(queue_name, 1)
        self.due = _DueTimes()
        self.acked = threading.Event()
        self.pubsub = broker.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(broker.wake_channel(queue_name))

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)
        finally:
            self.acked.set()

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)
        finally:
            self.acked.set()

    def __next__(self) -> MessageProxy | None:
        if self.message_cache:
            return self.due.note(super().__next__())
        try:
            wait = self.due.wait_ms(self.idle_ms)
            self.acked.clear()  # before looking at the count: an ack after it wakes the wait
            if self.outstanding_message_count >= self.prefetch:
                if wait:
                    self.acked.wait(wait / 1000)
                return None
            while self.pubsub.get_message(timeout=0) is not None:
                pass  # wake-ups so far: the fetch below sees their messages
            self.message_cache = self.broker.do_fetch(
                self.queue_name, self.prefetch - self.outstanding_message_count
            )
            if self.message_cache:
                return self.due.note(super().__next__())
            if wait:
                self.pubsub.get_message(timeout=wait / 1000)
            return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None

    def close(self) -> None:
        self.pubsub.close()


class QuietRedisBroker(RedisBroker):
    """The Redis broker, with consumers woken by a PUBLISH sent with each message."""

    idle_factors: dict[str, int] = {}  # read only: `build_broker` assigns a new one
    """Queue name -> how many worker timeouts its idle consumer waits between looks (default 1).

    The idle look only refreshes the process's Redis heartbeat, which every consumer's fetch
    does: a process with several queues needs one consumer looking every timeout, not all.
    A message (its PUBLISH), an ack, a due delayed message or a shutdown still wakes any of
    them at once."""

    @property
    def consumer_class(self) -> type[_BlockingRedisConsumer]:
        return _BlockingRedisConsumer

    def wake_channel(self, queue_name: str) -> str:
        # Pub/sub channels are server-wide, not per database: without the database number,
        # every deployment sharing a Redis server woke the others' idle consumers.
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return f"{self.namespace}:{db}:{queue_name}.wake"

    def pipelined(self) -> contextlib.AbstractContextManager[None]:
        """Messages this thread enqueues inside go to Redis in ONE round trip at the end, with
        one wake-up per queue (a completion's ready children, the outbox's coalesced
        dispatches, with the events published beside them: `server.infra.round_trips`).
        Thread-local: Dramatiq's own threads keep enqueueing one by one."""
        return round_trips.together()

    def do_enqueue(self, queue_name: str, message_id: str, data: bytes) -> None:
        """Dramatiq's enqueue script and the wake-up PUBLISH, in one round trip (or added to
        this thread's open one)."""
        with round_trips.together():
            trip = round_trips.joining(self.client)
            assert trip is not None  # inside together()
            args = [
                "enqueue",
                current_millis(),
                queue_name,
                self.broker_id,
                self.heartbeat_timeout,
                self.dead_message_ttl,
                self._should_do_maintenance("enqueue"),
                self._max_unpack_size(),
                message_id,
                data,
            ]
            trip.script(self.scripts["dispatch"], [self.namespace], args)
            trip.wake(self.wake_channel(queue_name), WAKE)

    def close(self) -> None:
        """Also close the Redis connections (Dramatiq's broker leaves its pool open)."""
        super().close()
        self.client.connection_pool.disconnect()

    def wake_consumers(self) -> None:
        """Make every blocked consumer return now (at shutdown)."""
        for queue_name in list(self.queues):
            for name in (queue_name, dq_name(queue_name)):
                self.client.publish(self.wake_channel(name), WAKE)


class QuietWorker(dramatiq.Worker):
    """A Dramatiq Worker whose threads wait idle without polling.

    Its consumers wait up to the worker timeout (a second by default) between looks; its
    worker threads block on the in-memory work queue and look up only every
    `THREAD_WAKE_MS`, which bounds how long a shutdown waits for them.
    """

    THREAD_WAKE_MS = 250

    def _add_worker(self) -> None:
        worker = WorkerThread(
            broker=self.broker,
            consumers=self.consumers,
            work_queue=self.work_queue,
            worker_timeout=min(self.worker_timeout, self.THREAD_WAKE_MS),
        )
        worker.start()
        self.workers.append(worker)


def stop_promptly(worker: dramatiq.Worker) -> None:
    """`worker.stop()`, without waiting out the consumers' idle waits.

    Same order as Dramatiq's: the worker threads finish their messages first, while the
    consumers still run (they ack and keep the Redis heartbeat), then the consumers stop;
    they are woken so that none sits out its wait.
    """
    for thread in worker.workers:
        thread.stop()
    for thread in worker.workers:
        thread.join()
    for consumer in worker.consumers.values():
        consumer.stop()
    wake = getattr(worker.broker, "wake_consumers", None)
    if wake is not None:
        wake()
    worker.stop()
