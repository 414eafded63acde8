"""How many tasks match a filter, remembered briefly when the answer is large.

Counting a million matching tasks costs more than reading the page itself, and an exact figure
that large is out of date by the next request anyway (issue 7). So counts above `LARGE_COUNT`
are reused by this process for `COUNT_TTL` seconds; smaller counts are always exact.

When a remembered count expires it is answered once more while ONE refresh runs in the
background (up to `STALE_LIMIT` old). Before, every request in flight at the moment of expiry
counted on its own: 32 concurrent clients of a 100,000-task list ran 32 counts at once every
five seconds, and that burst was the list's p99 (issue 3).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Key = tuple[str | None, ...]
Counter = Callable[[], Awaitable[int]]

LARGE_COUNT = 10_000
COUNT_TTL = 5.0
STALE_LIMIT = 30.0
"""Past this age a remembered count is not answered at all: the next request counts."""
MAX_KEYS = 1000


class TaskCounts:
    """Large counts per filter key, with at most one refresh per key under way."""

    def __init__(self) -> None:
        self._entries: dict[Key, tuple[int, float]] = {}
        self._refreshing: dict[Key, asyncio.Task[None]] = {}

    def clear(self) -> None:
        self._entries.clear()

    def recall(self, key: Key, recount: Counter) -> int | None:
        """The remembered count, if there is one young enough to answer with; an expired one
        also starts a background `recount` (unless one is already running)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        total, counted_at = entry
        age = time.monotonic() - counted_at
        if age < COUNT_TTL:
            return total
        if age >= STALE_LIMIT:
            return None
        if key not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._refresh(key, recount))
            self._refreshing[key] = task
            task.add_done_callback(lambda _: self._refreshing.pop(key, None))
        return total

    def remember(self, key: Key, total: int) -> None:
        """Keep `total` if it is large; forget the key otherwise (small counts stay exact)."""
        if total <= LARGE_COUNT:
            self._entries.pop(key, None)
            return
        if len(self._entries) >= MAX_KEYS and key not in self._entries:
            self._entries.clear()
        self._entries[key] = (total, time.monotonic())

    async def _refresh(self, key: Key, recount: Counter) -> None:
        try:
            self.remember(key, await recount())
        except Exception:  # the stale figure ages out at STALE_LIMIT; a request then counts
            log.warning("refreshing the task count for %s failed", key, exc_info=True)
