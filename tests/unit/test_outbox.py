"""The outbox: after-commit effects leave in commit order, coalesced while the sender is busy."""

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from server.domain.views import TransitionEvent
from server.engine.outbox import MAX_BATCH_EVENTS, Dispatches, Outbox


def event(cursor: int) -> TransitionEvent:
    return TransitionEvent(
        cursor=cursor,
        task_id="t",
        namespace="ns",
        step_id=None,
        step_name=None,
        from_status="pending",
        to_status="in_progress",
        reason="r",
        occurred_at=datetime.now(UTC),
    )


class Recorder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[tuple[list[int], list[tuple[float, int]]]] = []
        self.gate = gate

    def __call__(self, events: Sequence[TransitionEvent], dispatches: Dispatches) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(([e.cursor for e in events], list(dispatches)))


def test_commits_queued_behind_a_slow_send_go_out_together_in_order() -> None:
    gate = threading.Event()
    sent = Recorder(gate)
    outbox = Outbox(sent)
    outbox.submit([event(1)], [(0.0, 10)])  # the thread takes this one and blocks on the gate
    for cursor in range(2, 7):
        outbox.submit([event(cursor)], [(0.0, cursor * 10)])
    gate.set()
    assert outbox.flush(10)
    cursors = [c for batch, _ in sent.batches for c in batch]
    assert cursors == [1, 2, 3, 4, 5, 6]
    assert len(sent.batches) < 6  # 2..6 were coalesced
    assert [n for _, dispatches in sent.batches for _, n in dispatches] == [10, 20, 30, 40, 50, 60]
    outbox.shutdown()


def test_a_batch_is_bounded() -> None:
    gate = threading.Event()
    sent = Recorder(gate)
    outbox = Outbox(sent)
    outbox.submit([event(0)], [])
    for cursor in range(1, 2 * MAX_BATCH_EVENTS + 1):
        outbox.submit([event(cursor)], [])
    gate.set()
    assert outbox.flush(10)
    assert max(len(batch) for batch, _ in sent.batches) <= MAX_BATCH_EVENTS
    assert [c for batch, _ in sent.batches for c in batch] == list(range(2 * MAX_BATCH_EVENTS + 1))
    outbox.shutdown()


def test_a_failing_send_does_not_stop_the_outbox() -> None:
    calls: list[int] = []

    def flaky(events: Sequence[TransitionEvent], _dispatches: Dispatches) -> None:
        calls.append(events[0].cursor)
        if len(calls) == 1:
            raise RuntimeError("redis down")

    outbox = Outbox(flaky)
    outbox.submit([event(1)], [])
    assert outbox.flush(10)
    outbox.submit([event(2)], [])
    assert outbox.flush(10)
    assert calls == [1, 2]
    outbox.shutdown()


def test_shutdown_sends_what_is_queued() -> None:
    gate = threading.Event()
    sent = Recorder(gate)
    outbox = Outbox(sent)
    outbox.submit([event(1)], [])
    outbox.submit([event(2)], [])
    gate.set()
    outbox.shutdown()
    assert [c for batch, _ in sent.batches for c in batch] == [1, 2]
