"""Several ready steps go to Redis in one round trip (`QuietRedisBroker.pipelined`), and arrive
as the same messages, in order, as when they were sent one by one; a commit's events go in
the same round trip as its steps; a Redis that lost its scripts still gets every message
exactly once."""

import json
import threading
from datetime import UTC, datetime

import pytest
import redis

from server.domain.flow import DEFAULT_PRIORITY
from server.domain.views import TransitionEvent
from server.engine.changes import Effects, StateChanges
from server.infra.ports import SystemClock
from server.infra.pubsub import RedisPublisher
from tests.conftest import REDIS_URL
from workers.broker import QUEUE, DramatiqDispatcher, build_broker, declare_run_step

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL"),
]


@pytest.fixture
def dispatcher():
    assert REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()
    broker = build_broker(REDIS_URL)
    yield DramatiqDispatcher(declare_run_step(broker, lambda step_id, limited: None))
    broker.close()


def _received(broker, count):
    consumer = broker.consume(QUEUE, prefetch=count, timeout=1000)
    got = []
    for message in consumer:
        if message is None:
            break
        got.append(message.args[0])
        consumer.ack(message)
        if len(got) == count:
            break
    consumer.close()
    return got


def _round_trips(monkeypatch):
    """Counts what the client writes to Redis: one write per round trip (a pipeline is one),
    a new connection's handshake (HELLO, CLIENT, SELECT) aside."""
    sent = []
    real_send = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        head = b"".join(command)[:40]
        if not any(name in head for name in (b"HELLO", b"CLIENT", b"SELECT")):
            sent.append(command)
        return real_send(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


def test_many_steps_one_round_trip_same_messages(dispatcher, monkeypatch):
    broker = dispatcher.broker
    dispatcher.dispatch([10])  # a connection made and the script known: what follows is steady
    assert _received(broker, 1) == [10]
    sent = _round_trips(monkeypatch)
    dispatcher.dispatch([11, 12, 13, 14])
    dispatcher.dispatch([15])
    monkeypatch.undo()
    # One round trip for four messages (four enqueues and one wake-up), one for the single
    # one: no SCRIPT EXISTS before either (redis-py's pipelined scripts ask it every time).
    assert len(sent) == 2
    assert all(b"SCRIPT" not in b"".join(part) for part in sent)
    assert dispatcher.backlog() == 5
    assert _received(broker, 5) == [11, 12, 13, 14, 15]


def test_a_redis_that_lost_its_scripts_gets_each_message_once(dispatcher, monkeypatch):
    broker = dispatcher.broker
    dispatcher.dispatch([20])
    assert _received(broker, 1) == [20]
    broker.client.script_flush()  # as after a Redis restart
    sent = _round_trips(monkeypatch)
    dispatcher.dispatch([21, 22, 23])
    monkeypatch.undo()
    # Refused (NOSCRIPT, nothing ran), the script loaded, the three sent again.
    assert len(sent) == 3
    dispatcher.dispatch([24])
    assert dispatcher.backlog() == 4
    assert _received(broker, 4) == [21, 22, 23, 24]


def test_a_batch_open_on_one_thread_does_not_swallow_another_threads_sends(dispatcher):
    broker = dispatcher.broker
    elsewhere = threading.Event()

    def send_alone():
        dispatcher.dispatch([2])
        elsewhere.set()

    with broker.pipelined():
        dispatcher.actors[DEFAULT_PRIORITY].send(1)
        thread = threading.Thread(target=send_alone)
        thread.start()
        thread.join()
        assert elsewhere.is_set()
        assert dispatcher.backlog() == 1  # the other thread's message is already there
    assert dispatcher.backlog() == 2
    assert sorted(_received(broker, 2)) == [1, 2]


def test_delayed_steps_still_wait(dispatcher):
    dispatcher.dispatch([7, 8], delay_seconds=60)
    assert dispatcher.backlog() == 0


def test_a_commits_events_and_steps_share_one_round_trip(dispatcher, monkeypatch):
    broker = dispatcher.broker
    dispatcher.dispatch([30])
    assert _received(broker, 1) == [30]
    publisher = RedisPublisher(REDIS_URL)
    listener = redis.Redis.from_url(REDIS_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(publisher.channel)
    changes = StateChanges(SystemClock(), dispatcher, publisher)
    event = TransitionEvent(
        7, "t-1", "payments", 31, "charge", "pending", "enqueued", None, datetime.now(UTC)
    )
    sent = _round_trips(monkeypatch)
    # Two lanes and a delayed one, as a completion's effects may hold.
    changes.after_commit(
        Effects(
            datetime.now(UTC),
            [event],
            [(0.0, 31, 2, False), (0.0, 32, 3, False), (60.0, 33, 2, False)],
        )
    )
    monkeypatch.undo()
    assert len(sent) == 1
    published = None
    for _ in range(50):  # the first reads return the (ignored) subscription confirmation
        published = published or listener.get_message(timeout=0.1)
    assert published is not None
    assert [e["cursor"] for e in json.loads(published["data"])] == [7]
    assert dispatcher.backlog() == 2  # the delayed one waits
    listener.close()


def test_a_message_says_when_its_step_has_limits(dispatcher):
    broker = dispatcher.broker
    dispatcher.dispatch([21, 22], limited=True)
    dispatcher.dispatch([23])
    consumer = broker.consume(QUEUE, prefetch=3, timeout=1000)
    args = []
    for message in consumer:
        if message is None:
            break
        args.append(tuple(message.args))
        consumer.ack(message)
        if len(args) == 3:
            break
    consumer.close()
    # The flag travels only when set: a message without it runs as before.
    assert sorted(args) == [(21, True), (22, True), (23,)]
