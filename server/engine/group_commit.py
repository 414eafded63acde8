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
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0
        """Writes made (for tests and benchmarks: items / batches is the mean batch size)."""
        self.items = 0

    async def submit(self, item: T) -> R:
        """Write `item` (with whatever else is queued) and return its answer once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if not self._busy:
            # Nothing in flight: this caller writes now, without waiting for company.
            self._busy = True
            try:
                await self._write_next()
            finally:
                self._hand_over()
        return await future

    def _hand_over(self) -> None:
        """Items that queued during the write are written by a task of their own, so the
        caller that wrote first returns without waiting for their round trip too."""
        if self._queued:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._queued:
                await self._write_next()
        finally:
            self._busy = False
            self._drainer = None
            # Only a cancelled drain (the loop shutting down) leaves items behind.
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
