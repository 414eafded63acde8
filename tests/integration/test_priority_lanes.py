"""Priority lanes of the broker (workers/broker.py): each priority has its own queue, and a
worker runs the higher lane's messages before the lower ones it has fetched.

Real brokers: the in-process one (embedded mode, any backend) and Redis (needs
TASKER_TEST_REDIS_URL); a real Dramatiq worker with one thread, so the order of execution is
the order the worker chose.
"""

import threading
import time

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.support.idle_worker import fetches_while_idle
from workers.broker import LANES, DramatiqDispatcher, build_broker, declare_run_step
from workers.wakeup import QuietWorker, stop_promptly

LOW, HIGH = 1, 3


def run_backlog(broker_url: str | None) -> list[int]:
    """Queue 30 low messages then 3 high ones, start one worker thread, return the run order."""
    broker = build_broker(broker_url)
    ran: list[int] = []
    done = threading.Event()

    def run(step_id: int, limited: bool) -> None:
        time.sleep(0.01)
        ran.append(step_id)
        if len(ran) == 33:
            done.set()

    dispatcher = DramatiqDispatcher(declare_run_step(broker, run))
    dispatcher.dispatch(list(range(1, 31)), priority=LOW)
    dispatcher.dispatch([101, 102, 103], priority=HIGH)
    assert dispatcher.backlog() == 33
    broker.emit_after("process_boot")
    worker = QuietWorker(broker, worker_threads=1, worker_timeout=200)
    worker.start()
    try:
        assert done.wait(30), f"ran only {ran}"
    finally:
        stop_promptly(worker)
        broker.close()
    return ran


def check_order(ran: list[int]) -> None:
    # The one thread may already have taken a few low messages before the high lane's consumer
    # handed its messages over; after that, every high one goes first.
    high_at = [ran.index(i) for i in (101, 102, 103)]
    assert max(high_at) < 8, ran
    assert [i for i in ran if i < 100] == list(range(1, 31)), "a lane is first in, first out"


def test_the_in_process_broker_runs_the_high_lane_first() -> None:
    check_order(run_backlog(None))


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
def test_the_redis_broker_runs_the_high_lane_first() -> None:
    assert REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()
    check_order(run_backlog(REDIS_URL))


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
def test_each_priority_has_its_own_redis_queue() -> None:
    assert REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    broker = build_broker(REDIS_URL)
    try:
        dispatcher = DramatiqDispatcher(declare_run_step(broker, lambda step_id, limited: None))
        dispatcher.dispatch([1, 2], priority=1)
        dispatcher.dispatch([3], priority=2)
        dispatcher.dispatch([4, 5, 6], priority=3)
        dispatcher.dispatch([7], priority=3, delay_seconds=60)  # delayed: not a backlog
        lengths = {level: client.llen(f"dramatiq:{LANES[level][1]}") for level in LANES}
        assert lengths == {1: 2, 2: 1, 3: 3}
        assert dispatcher.backlog() == 6
    finally:
        broker.close()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
def test_an_idle_worker_with_three_lanes_looks_at_redis_as_rarely_as_with_one() -> None:
    """Six consumers (three lanes and their delay queues): only the default lane's two look
    every worker timeout (the heartbeat); the others wait for a message, an ack or shutdown."""
    assert REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()
    broker = build_broker(REDIS_URL)
    declare_run_step(broker, lambda step_id, limited: None)
    fetches = fetches_while_idle(broker, worker_timeout=1000, seconds=3.0)
    assert fetches <= 8, fetches
