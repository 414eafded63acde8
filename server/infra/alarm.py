"""A wake-up call: one coroutine sleeps on it, and any code on any thread may ring it.

The schedule firer sleeps until the next due tick; a schedule changed in this process rings
the alarm so that the firer looks again at once instead of at the end of its sleep. The API
and the firer share one event loop in `tasker serve`, but nothing guarantees it for every
caller (a `tasker worker` runs its loop in a thread of its own), so ringing from another
thread goes through the sleeper's loop, never touches its event directly.
"""

import asyncio
import contextlib
import threading


class Alarm:
    """Sleep for a while unless rung; a ring while nobody sleeps cuts the next sleep short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rung = False
        self._sleeper: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def ring(self) -> None:
        """Wake the sleeper now (or make its next sleep return at once). Thread-safe."""
        with self._lock:
            self._rung = True
            sleeper = self._sleeper
        if sleeper is None:
            return
        loop, event = sleeper
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            event.set()
        else:
            # A loop already closed has nobody left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the alarm rang (before or during the sleep)."""
        event = asyncio.Event()
        with self._lock:
            if self._rung:
                self._rung = False
                return True
            self._sleeper = (asyncio.get_running_loop(), event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(seconds, 0.0))
        finally:
            with self._lock:
                self._sleeper = None
                rung, self._rung = self._rung, False
        return rung
