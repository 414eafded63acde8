"""A Tortoise engine for PostgreSQL whose connection pool serves waiters in arrival order.

asyncpg's pool hands connections out through an `asyncio.LifoQueue`. When a connection comes
back, the waiter it wakes only runs later, and a request arriving in between takes the
connection first; the woken waiter finds the queue empty and goes to the BACK of the line.
With more requests in flight than connections, some requests lose that race again and again:
32 clients on a 10-connection pool saw a p50 of 3 ms and a p99 over 200 ms (bench/rest_bench.py).

`FairPool` puts a FIFO semaphore (asyncio's does not let newcomers overtake its waiters) of
the pool's size in front of the pool, so a request that waits is served in its turn.
Tortoise acquires and releases through `client._pool` for plain queries and transactions
alike, so wrapping the pool covers both. Selected with `"engine": "server.db.fair_pool"`.
Its connections also read timestamps as text (`server.db.pg_times`).
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient

from server.db import pg_times


class FairPool:
    """asyncpg's pool behind a first-come-first-served turnstile."""

    def __init__(self, pool: asyncpg.Pool, size: int) -> None:
        self._pool = pool
        self._turns = asyncio.Semaphore(size)

    async def acquire(self) -> Any:
        await self._turns.acquire()
        try:
            return await self._pool.acquire()
        except BaseException:
            self._turns.release()
            raise

    async def release(self, connection: Any) -> None:
        try:
            if _settles_at_once(connection):
                # What `Pool.release` does, but in place: it runs the release in a task of its
                # own (`asyncio.shield`, so a cancelled caller cannot leave it half done), and
                # that task and the loop turn it waits for were a tenth of a one-row read.
                # A release with nothing to wait for cannot be cancelled half way.
                connection._con._on_release()
                holder = connection._holder
                await holder.release(holder._timeout)
            else:
                await self._pool.release(connection)
        finally:
            self._turns.release()

    def __getattr__(self, name: str) -> Any:
        # Everything else (sizes for the health report, close, terminate, expiry) is the pool's.
        return getattr(self._pool, name)


async def _keep_session(_connection: object) -> None:
    """asyncpg's pool reset, skipped: by default every release of a pooled connection costs a
    round trip (`RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()`), i.e. one per
    query. We never SET, LISTEN, hold cursors or take advisory locks across a release, and
    transactions always end in COMMIT or ROLLBACK, so there is nothing to reset."""


def _settles_at_once(connection: Any) -> bool:
    """Whether asyncpg's release of this pooled connection completes without waiting for
    anything: no transaction to roll back, no cancellation in flight, and the pool's reset
    does nothing (`_keep_session`). Reads asyncpg's internals (pinned to 0.32.x in
    pyproject.toml); a connection that does not look as expected takes the public path."""
    con: Any = getattr(connection, "_con", None)
    holder = getattr(connection, "_holder", None)
    protocol = getattr(con, "_protocol", None)
    return (
        holder is not None
        and protocol is not None
        and not con.is_in_transaction()
        and getattr(con, "_top_xact", True) is None
        and not protocol._is_cancelling()
    )


class FairAsyncpgClient(AsyncpgDBClient):
    async def create_pool(self, **kwargs: Any) -> Any:
        settings = kwargs.get("server_settings") or {}
        kwargs["server_settings"] = {**settings, **pg_times.SERVER_SETTINGS}
        kwargs["init"] = pg_times.install
        kwargs["reset"] = _keep_session
        pool = await super().create_pool(**kwargs)
        return FairPool(pool, int(kwargs["max_size"]))

    async def fetch_records(self, sql: str, values: Sequence[Any]) -> list[asyncpg.Record]:
        """One read statement on a pooled connection, without `execute_query`'s wrapping
        (exception translation, debug logging, a second pool wrapper, a loop check): that
        wrapping was a tenth of the CPU of a single-task read (`server.db.sql.Query.records`).
        """
        if self._pool is None:
            return list((await self.execute_query(sql, list(values)))[1])
        if self.log.isEnabledFor(logging.DEBUG):  # as Tortoise logs its statements
            self.log.debug("%s: %s", sql, values)
        connection = await self._pool.acquire()
        try:
            records: list[asyncpg.Record] = await connection.fetch(sql, *values)
            return records
        finally:
            await self._pool.release(connection)


client_class = FairAsyncpgClient
