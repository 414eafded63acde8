"""Figures that cost a scan to compute and may be reused for a few seconds, per process.

Two list figures are like that at a million tasks: the total count of a filter, and the anchors
that let a deep offset page skip the rows before it (`server.infra.task_counts`,
`server.db.page_anchors`). Both are reused for `ttl` seconds; past that, the old value is still
answered (up to `stale_limit`) while ONE refresh runs in the background, and a request that
finds nothing waits for the one computation already under way rather than starting its own.
Before, every request in flight when a count expired counted on its own: 32 clients of a
100,000-task list ran 32 counts at once every five seconds, and that burst set the list's p99.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Compute = Callable[[], Awaitable[T]]


class RefreshingMemo(Generic[T]):
    """Values by key, each with the time it was computed; one computation per key at a time."""

    def __init__(
        self,
        *,
        ttl: float,
        stale_limit: float,
        keep: Callable[[T], bool] = lambda _: True,
        max_keys: int = 1000,
    ) -> None:
        self.ttl = ttl
        self.stale_limit = stale_limit
        """Past this age a value is not answered at all: the next request computes."""
        self._keep = keep
        self._max_keys = max_keys
        self._values: dict[Hashable, tuple[T, float]] = {}
        self._computing: dict[Hashable, asyncio.Task[T]] = {}

    def clear(self) -> None:
        self._values.clear()

    def recall(self, key: Hashable, recompute: Compute[T]) -> T | None:
        """The value, if one is young enough to answer with; an expired one also starts a
        background `recompute` (unless a computation of the key is already running)."""
        entry = self._values.get(key)
        if entry is None:
            return None
        value, computed_at = entry
        age = time.monotonic() - computed_at
        if age >= self.stale_limit:
            return None
        if age >= self.ttl and self._running(key) is None:
            self._start(key, recompute)
        return value

    async def get(self, key: Hashable, compute: Compute[T]) -> T:
        """The value (see `recall`), else the result of the one computation of it."""
        value = self.recall(key, compute)
        if value is not None:
            return value
        task = self._running(key) or self._start(key, compute)
        # Shielded: a caller that goes away does not cancel the others' computation.
        return await asyncio.shield(task)

    def remember(self, key: Hashable, value: T) -> None:
        """Keep `value` if `keep` says it is worth it; forget the key otherwise."""
        if not self._keep(value):
            self._values.pop(key, None)
            return
        if len(self._values) >= self._max_keys and key not in self._values:
            self._values.clear()
        self._values[key] = (value, time.monotonic())

    def _running(self, key: Hashable) -> asyncio.Task[T] | None:
        task = self._computing.get(key)
        # A task of another event loop (a test's, long closed) can never finish here.
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            return None
        return task

    def _start(self, key: Hashable, compute: Compute[T]) -> asyncio.Task[T]:
        async def run() -> T:
            value = await compute()
            self.remember(key, value)
            return value

        task = asyncio.get_running_loop().create_task(run())
        self._computing[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))
        task.add_done_callback(_log_failure)
        return task

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._computing.get(key) is task:
            del self._computing[key]


def _log_failure(task: asyncio.Task[object]) -> None:
    # Also retrieves the exception when no caller is left to (a background refresh, or callers
    # that went away): an old value then ages out at `stale_limit` and is computed again.
    if not task.cancelled() and task.exception() is not None:
        log.warning("computing a cached list figure failed", exc_info=task.exception())
