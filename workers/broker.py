"""The Dramatiq broker and the `run_step` actor, built from settings at start-up.

Actors are declared against an explicit broker (never Dramatiq's implicit global default).
Retries belong to the domain, so the actor has `max_retries=0`; a failed message is dropped and
the sweeper re-dispatches from the database.

Priority: one queue (a lane) per task priority, each with its own `run_step` actor whose
Dramatiq `priority` ranks it. A worker consumes every lane; the messages its consumers fetch
wait in one work queue ordered by that rank, then by arrival, so a free worker thread always
takes a high-priority step before any prefetched lower one, and within a lane the first sent
is the first run. A backlog of low messages in Redis therefore delays a high one by at most
the steps already running (and a lane's prefetch never blocks another lane's fetch).
"""

import contextlib
import math
from collections.abc import Callable, Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware, Retries

from server.domain.flow import DEFAULT_PRIORITY
from workers.wakeup import QuietRedisBroker, QuietStubBroker

QUEUE = "tasker"
"""The lane of the default priority (2): the queue every message used before lanes existed."""

LANES: dict[int, tuple[str, str, int]] = {
    3: ("run_step_high", "tasker.high", 0),
    2: ("run_step", QUEUE, 10),
    1: ("run_step_low", "tasker.low", 20),
}
"""Task priority -> (actor name, queue name, Dramatiq actor priority: lower runs first)."""

OTHER_LANES_IDLE_FACTOR = 10
"""An idle consumer of the high and low lanes looks every 10 worker timeouts (see
`QuietRedisBroker.idle_factors`), well inside the 30 s Redis heartbeat."""


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
        # The default lane's consumers keep the heartbeat; the others' idle looks would only
        # triple an idle worker's Redis round trips.
        broker.idle_factors = {
            name: OTHER_LANES_IDLE_FACTOR
            for _, queue, _ in LANES.values()
            if queue != QUEUE
            for name in (queue, dq_name(queue))
        }
    else:
        broker = QuietStubBroker(middleware=middleware)
    dramatiq.set_broker(broker)
    return broker


Actors = dict[int, dramatiq.Actor]  # type: ignore[type-arg]
"""The `run_step` actor of each priority lane."""


def declare_run_step(broker: dramatiq.Broker, run: Callable[[int, bool], object]) -> Actors:
    """Declare the `run_step(step_id, limited)` actor of every priority lane, each calling
    `run` (`limited`: the step has limits, `StepDispatcher.dispatch`)."""

    def run_step(step_id: int, limited: bool = False) -> None:
        run(step_id, limited)

    actors: Actors = {}
    for level, (name, queue, rank) in LANES.items():
        decorate = dramatiq.actor(
            actor_name=name, queue_name=queue, broker=broker, max_retries=0, priority=rank
        )
        actors[level] = decorate(run_step)
    return actors


class DramatiqDispatcher:
    """The core's StepDispatcher: one message per step id, ids only, in its priority's lane."""

    def __init__(self, actors: Actors) -> None:
        self.actors = actors
        self.broker = actors[DEFAULT_PRIORITY].broker

    def backlog(self) -> int:
        """Messages waiting in the lanes' queues (delayed retries not counted)."""
        broker = self.broker
        if isinstance(broker, RedisBroker):
            # The queues' lists only: Dramatiq's `qsize` also counts delayed messages and the
            # ones workers hold (running, or lost with a killed worker). Those made the
            # sweeper see a backlog whenever a retry was pending, and hold back re-sending a
            # lost nudge (a dead worker's reclaimed step) for up to five windows.
            pipe = broker.client.pipeline(transaction=False)
            for _, queue, _ in LANES.values():
                pipe.llen(f"{broker.namespace}:{queue}")
            return sum(int(n) for n in pipe.execute())
        queues = getattr(broker, "queues", {})
        return sum(int(q.qsize()) for _, name, _ in LANES.values() if (q := queues.get(name)))

    def dispatch(
        self,
        step_ids: Sequence[int],
        delay_seconds: float = 0.0,
        priority: int = DEFAULT_PRIORITY,
        limited: bool = False,
    ) -> None:
        """Send `run_step(id)` for each id on its lane, delayed when asked; `run_step(id, True)`
        for steps with limits."""
        actor = self.actors.get(priority) or self.actors[DEFAULT_PRIORITY]
        # Rounded up: a message must not arrive before its step may be claimed (a delayed
        # start is refused even a millisecond early, and then waits for the sweeper).
        delay = math.ceil(delay_seconds * 1000) or None
        broker = actor.broker
        batch = (
            broker.pipelined()
            if len(step_ids) > 1 and isinstance(broker, QuietRedisBroker)
            else contextlib.nullcontext()
        )
        with batch:  # several messages: one Redis round trip
            for step_id in step_ids:
                args = (step_id, True) if limited else (step_id,)
                actor.send_with_options(args=args, delay=delay)
