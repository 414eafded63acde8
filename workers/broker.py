"""The Dramatiq broker and the `run_step` actor, built from settings at start-up.

Actors are declared against an explicit broker (never Dramatiq's implicit global default).
Retries belong to the domain, so the actor has `max_retries=0`; a failed message is dropped and
the sweeper re-dispatches from the database.
"""

import contextlib
import math
from collections.abc import Callable, Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware, Retries

from workers.wakeup import QuietRedisBroker, QuietStubBroker

QUEUE = "tasker"


def build_broker(broker_url: str | None) -> dramatiq.Broker:
    """RedisBroker for a URL, else the in-process StubBroker."""
    middleware: list[Middleware] = [Retries(max_retries=0)]
    broker: dramatiq.Broker
    if broker_url:
        # Redeliver a dead worker's unacked messages within ~30 s rather than Dramatiq's
        # minutes; the database lease is what actually protects the step.
        broker = QuietRedisBroker(  # type: ignore[no-untyped-call]
            url=broker_url,
            middleware=middleware,
            heartbeat_timeout=30_000,
            maintenance_chance=10_000,
        )
    else:
        broker = QuietStubBroker(middleware=middleware)
    dramatiq.set_broker(broker)
    return broker


def declare_run_step(broker: dramatiq.Broker, run: Callable[[int], object]) -> dramatiq.Actor:  # type: ignore[type-arg]
    """Declare the `run_step(step_id)` actor calling `run`."""

    def run_step(step_id: int) -> None:
        run(step_id)

    decorate = dramatiq.actor(actor_name="run_step", queue_name=QUEUE, broker=broker, max_retries=0)
    return decorate(run_step)


class DramatiqDispatcher:
    """The core's StepDispatcher: one message per step id, ids only."""

    def __init__(self, actor: dramatiq.Actor) -> None:  # type: ignore[type-arg]
        self.actor = actor

    def backlog(self) -> int:
        """Messages waiting in the step queue (delayed retries not counted)."""
        broker = self.actor.broker
        if isinstance(broker, RedisBroker):
            # The queue's list only: Dramatiq's `qsize` also counts delayed messages and the
            # ones workers hold (running, or lost with a killed worker). Those made the
            # sweeper see a backlog whenever a retry was pending, and hold back re-sending a
            # lost nudge (a dead worker's reclaimed step) for up to five windows.
            return int(broker.client.llen(f"{broker.namespace}:{QUEUE}"))
        queue = getattr(broker, "queues", {}).get(QUEUE)
        return int(queue.qsize()) if queue is not None else 0

    def dispatch(self, step_ids: Sequence[int], delay_seconds: float = 0.0) -> None:
        """Send `run_step(id)` for each id, delayed when asked."""
        # Rounded up: a message must not arrive before its step may be claimed (a delayed
        # start is refused even a millisecond early, and then waits for the sweeper).
        delay = math.ceil(delay_seconds * 1000) or None
        broker = self.actor.broker
        batch = (
            broker.pipelined()
            if len(step_ids) > 1 and isinstance(broker, QuietRedisBroker)
            else contextlib.nullcontext()
        )
        with batch:  # several messages: one Redis round trip
            for step_id in step_ids:
                self.actor.send_with_options(args=(step_id,), delay=delay)
