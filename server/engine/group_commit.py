"""Group commit: items that arrive while a write is in flight go to the database together.

Every worker thread of a process hands its completions to the process's one event loop
(`workers.runtime`), so completions that finish at about the same time meet here. The first
one finds nothing in flight and is written at once, alone: an idle hand-off waits for no
window and no timer. Those that arrive while that write is in flight queue up and are written
together, in one statement, as soon as it returns; so the window is exactly one round trip,
and it only opens under load, which is when batching pays.

Each caller awaits its own item's answer, given only once the statement holding it has
committed, so a caller (a Dramatiq actor) acknowledges its message only after its write is
durable: a process killed with items queued or in flight loses them, uncommitted, and their
steps are reclaimed and re-run like any step whose worker died before recording it.

The write runs in a task started from the context of the caller that found nothing in flight,
so a caller must not hold a transaction open (Tortoise keeps it in a context variable, and
the others' items would be written in it): the engine's completions and the creation of
tasks are called outside any transaction.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Write = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    """Writes queued items in batches of at most `max_items`, one write in flight at a time."""

    def __init__(self, write: Write[T, R], *, max_items: int = 100) -> None:
        self._write = write
        self.max_items = max_items
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """Writes made (for tests and benchmarks: items / batches is the mean batch size)."""
        self.items = 0

    async def submit(self, item: T) -> R:
        """Write `item` (with whatever else is queued) and return its answer once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queued.append((item, future))
        if self._writer is None:
            # Nothing in flight: write now, without waiting for company. The write runs in a
            # task of its own, so a caller that is cancelled (an HTTP client gone) cancels
            # only its own wait, never the statement its neighbours' items are in.
            self._writer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queued:
                await self._write_next()
        finally:
            self._writer = None
            # Only a cancelled writer (the loop shutting down) leaves items behind.
            for _, future in self._queued:
                future.cancel()
            self._queued.clear()

    async def _write_next(self) -> None:
        batch = self._queued[: self.max_items]
        del self._queued[: self.max_items]
        self.batches += 1
        self.items += len(batch)
        try:
            answers = await self._write([item for item, _ in batch])
        except BaseException as exc:
            # Every caller of the batch learns it failed (a cancelled write may or may not
            # have committed: the callers do not acknowledge, the sweeper decides).
            failure = exc if isinstance(exc, Exception) else asyncio.CancelledError()
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
