"""Idle workers block on their queue: a message wakes them at once, a delayed one at its due
time, a stop does not wait out their idle wait, and an idle Redis consumer does not poll."""

import threading
import time
from collections.abc import Iterator

import dramatiq
import pytest

from tests.conftest import REDIS_URL
from tests.support.idle_worker import fetches_while_idle
from workers.broker import build_broker
from workers.wakeup import QuietWorker, stop_promptly

IDLE_MS = 1000  # the default TASKER_WORKER_POLL_MS: longer than any latency asserted below

BROKERS = [
    "in-process",
    pytest.param(
        "redis", marks=pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
    ),
]


class Recorder:
    def __init__(self) -> None:
        self.ran: list[tuple[int, float]] = []
        self.event = threading.Event()

    def __call__(self, n: int) -> None:
        self.ran.append((n, time.monotonic()))
        self.event.set()

    def wait(self, timeout: float = 5.0) -> float:
        assert self.event.wait(timeout), "the message never ran"
        self.event.clear()
        return self.ran[-1][1]


@pytest.fixture(params=BROKERS)
def running(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[dramatiq.Broker, dramatiq.Actor, Recorder, QuietWorker]]:  # type: ignore[type-arg]
    url = REDIS_URL if request.param == "redis" else None
    broker = build_broker(url)
    recorder = Recorder()

    def probe(n: int) -> None:
        recorder(n)

    actor = dramatiq.actor(actor_name="probe", queue_name="idle_probe", broker=broker)(probe)
    worker = QuietWorker(broker, worker_threads=2, worker_timeout=IDLE_MS)
    worker.start()
    yield broker, actor, recorder, worker
    stop_promptly(worker)
    broker.close()


def test_a_message_wakes_an_idle_consumer_at_once(running) -> None:  # type: ignore[no-untyped-def]
    _, actor, recorder, _ = running
    actor.send(0)
    recorder.wait()
    latencies = []
    for n in range(1, 6):
        time.sleep(0.3)  # idle: the consumer is in its (1 s) wait
        sent = time.monotonic()
        actor.send(n)
        latencies.append(recorder.wait() - sent)
    assert max(latencies) < 0.1, latencies


def test_a_delayed_message_runs_at_its_due_time(running) -> None:  # type: ignore[no-untyped-def]
    _, actor, recorder, _ = running
    sent = time.monotonic()
    actor.send_with_options(args=(1,), delay=300)
    late = recorder.wait() - sent - 0.3
    assert -0.01 < late < 0.15, late


def test_a_stop_does_not_wait_out_the_idle_wait(running) -> None:  # type: ignore[no-untyped-def]
    _, _, _, worker = running
    time.sleep(0.2)
    began = time.monotonic()
    stop_promptly(worker)
    assert time.monotonic() - began < 0.6


@pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
def test_an_idle_redis_consumer_does_not_poll() -> None:
    assert REDIS_URL
    broker = build_broker(REDIS_URL)
    dramatiq.actor(actor_name="probe", queue_name="idle_probe", broker=broker)(lambda n: None)
    fetches = fetches_while_idle(broker, worker_timeout=IDLE_MS, seconds=2.0)
    # Two consumers (the queue and its delay queue), one look a second each at most.
    assert fetches <= 6, fetches
