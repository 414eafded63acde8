"""One event loop per process for all database work.

Tortoise connections belong to the loop that opened them, so Dramatiq's worker threads do not
run coroutines themselves: they hand them to this process's loop and wait. In the embedded
server that loop is uvicorn's; in `tasker worker` it is a dedicated thread.
"""

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it comes with uvicorn[standard]): cheaper socket I/O for asyncpg."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopRuntime:
    """Runs coroutines on one loop from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread: threading.Thread | None = None

    @classmethod
    def in_new_thread(cls) -> "LoopRuntime":
        """Start a loop in a daemon thread (the worker process's database loop)."""
        loop = _new_loop()
        runtime = cls(loop)
        runtime._thread = threading.Thread(target=loop.run_forever, name="tasker-loop", daemon=True)
        runtime._thread.start()
        return runtime

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and block this (non-loop) thread for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop a loop this runtime started."""
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
