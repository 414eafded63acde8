"""What the rolled blocks of a report window hold, read once per process and then remembered.

A slot's rollup rows never change once it is rolled (`server.db.analytics_rollup` says why),
so a block of rolled slots — a span and a range of slot numbers — always sums to the same
figures. Reports read each block through a `RolledBlockCache`: the first report after a block
appears reads it from the database, later ones (every report-cache miss, every scope) reuse
the result. A day's window is at most three blocks: the whole hours, which change once an
hour, and the five-minute margins, which change every five minutes. So a cold report reads
the rollup tables about once per five minutes instead of summing a day of rollup rows each
time — at a million tasks, most of what a cold bottleneck report cost beyond an empty
database's.

Values are read per block, not per scope: callers filter by scope in Python (a block holds
a few rows per handler step), so every scope shares one entry. What is kept is bounded
(least recently used first out); values are shared: callers do not change them, except a
value that is documented as filled in as reports ask (the step histograms).
"""

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient as Conn

from server.db.analytics_rollup import rolled_sql
from server.db.sql import Query
from server.domain.analytics_rollup import Block

T = TypeVar("T")
Row = dict[str, Any]

CAPACITY = 256
"""Entries kept: a report reads three blocks of at most six kinds, and margins age out."""


class RolledBlockCache:
    """Per-block results of reads over rolled slots, least recently used dropped first."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[tuple[str, Block], Any] = OrderedDict()

    async def each(
        self, what: str, blocks: Iterable[Block], read: Callable[[Block], Awaitable[T]]
    ) -> list[T]:
        """`read(block)` for each block, remembered under `(what, block)`."""
        found: list[T] = []
        for block in blocks:
            key = (what, block)
            if key in self._kept:
                self._kept.move_to_end(key)
            else:
                self._kept[key] = await read(block)
                while len(self._kept) > self.capacity:
                    self._kept.popitem(last=False)
            found.append(self._kept[key])
        return found

    async def rows(
        self, conn: Conn, what: str, blocks: Iterable[Block], sql: Callable[[Query, str], str]
    ) -> list[Row]:
        """The rows of `sql(q, where)` for each block (`where` selects its rollup rows),
        concatenated; `what` names the statement and must be unique to it."""

        async def read(block: Block) -> list[Row]:
            q = Query(conn)
            return await q.rows(sql(q, rolled_sql(q, [block])))

        return [row for rows in await self.each(what, blocks, read) for row in rows]

    def clear(self) -> None:
        """Forget everything (a fresh process's state: the benchmark's first report)."""
        self._kept.clear()
