"""The PostgreSQL pool: every connection comes back, whichever way it is released, and a
plain read's release takes the quick path (no task of its own per release)."""

import asyncio

import pytest

from server.container import Services
from server.db.fair_pool import FairAsyncpgClient, FairPool, _settles_at_once
from server.db.sql import connection
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="the pool is PostgreSQL's")


def pool_of(services: Services) -> FairPool:
    client = connection()
    assert isinstance(client, FairAsyncpgClient)
    assert isinstance(client._pool, FairPool)
    return client._pool


async def all_back(pool: FairPool) -> None:
    """Every connection idle again and every turn free: all of them can be taken at once."""
    size = pool.get_max_size()
    taken = [await asyncio.wait_for(pool.acquire(), 2) for _ in range(size)]
    for held in taken:
        await pool.release(held)
    assert pool.get_idle_size() == pool.get_size()


async def test_a_plain_read_is_released_in_place_and_comes_back(services: Services) -> None:
    pool = pool_of(services)
    held = await pool.acquire()
    assert await held.fetchval("SELECT 1") == 1
    assert _settles_at_once(held), "asyncpg's internals moved: the quick release is never used"
    await pool.release(held)
    for _ in range(200):
        assert await connection().fetch_records("SELECT 1 AS one", []) == [(1,)]
    await all_back(pool)


async def test_a_connection_left_in_a_transaction_is_rolled_back_by_asyncpg(
    services: Services,
) -> None:
    pool = pool_of(services)
    held = await pool.acquire()
    await held.execute("BEGIN")
    await held.execute("CREATE TEMP TABLE leftover (x int)")
    assert not _settles_at_once(held)
    await pool.release(held)  # the public, shielded path: asyncpg rolls it back
    await all_back(pool)
    for _ in range(pool.get_max_size()):
        assert not await connection().fetch_records(
            "SELECT 1 FROM pg_class WHERE relname = 'leftover'", []
        )


async def test_cancelled_reads_leave_no_connection_behind(services: Services) -> None:
    pool = pool_of(services)
    client = connection()

    async def read() -> None:
        await client.fetch_records("SELECT pg_sleep(0.01)", [])

    for _ in range(3):
        tasks = [asyncio.ensure_future(read()) for _ in range(40)]
        await asyncio.sleep(0.015)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await all_back(pool)
    # Writes and transactions through Tortoise too.
    for n in range(20):
        await client.execute_query("SELECT $1::int", [n])
    await all_back(pool)
