"""After-commit effects on one background thread: in commit order, coalesced under load.

With a network broker, sending must not block the event loop that every database call of
the process shares, so `StateChanges` hands each commit's events and dispatches to this thread. When
commits arrive faster than Redis round trips, whatever has queued up is sent together: one
PUBLISH carries the events of many commits (they stay in commit order) instead of one each,
which was the largest single cost left in a busy worker.
"""

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from server.domain.views import TransitionEvent

log = logging.getLogger(__name__)

Dispatch = tuple[float, int, int, bool]
"""(delay in seconds, step id, priority lane, whether the step has limits) of one nudge."""
Dispatches = Sequence[Dispatch]
Effects = Callable[[Sequence[TransitionEvent], Dispatches], None]
Item = tuple[Sequence[TransitionEvent], Dispatches] | threading.Event | None
"""A commit's effects, a flush marker, or the stop marker."""

MAX_BATCH_EVENTS = 500
"""Bound on one PUBLISH's payload; the rest goes in the next batch."""


class Outbox:
    """A single consumer thread running `effects` for batches of submitted work."""

    def __init__(self, effects: Effects, *, name: str = "tasker-outbox") -> None:
        self._effects = effects
        self._queue: queue.SimpleQueue[
            tuple[Sequence[TransitionEvent], Dispatches] | threading.Event | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, events: Sequence[TransitionEvent], dispatches: Dispatches) -> None:
        """Queue one commit's effects (returns at once)."""
        self._queue.put((events, dispatches))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before this call has been sent; False on timeout."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Send what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            events: list[TransitionEvent] = []
            dispatches: list[Dispatch] = []
            waiters: list[threading.Event] = []
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    events.extend(item[0])
                    dispatches.extend(item[1])
                if stopping or len(events) >= MAX_BATCH_EVENTS:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if events or dispatches:
                try:
                    self._effects(events, dispatches)
                except Exception:  # the effects log their own failures; this keeps the thread
                    log.exception("outbox batch failed")
            for waiter in waiters:
                waiter.set()
