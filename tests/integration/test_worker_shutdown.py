"""Stopping a worker pool lets its housekeeping pass finish instead of cancelling it.

The full suite hung now and then on SQLite at the teardown of an embedded app: the shutdown
cancelled the sweeper half-way through a transaction, the connection's transaction lock was
never released, and the next query (forgetting the worker's heartbeat) waited forever.
"""

import asyncio

from tortoise.transactions import in_transaction

from server.container import Services
from server.db.models import Task
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime


async def test_stop_waits_for_the_pass_under_way_and_leaves_the_database_usable(
    services: Services,
) -> None:
    inside = asyncio.Event()
    finished: list[bool] = []

    async def slow_sweep() -> None:
        async with in_transaction():
            await Task.all().count()
            inside.set()
            await asyncio.sleep(0.3)  # the shutdown arrives here, mid-transaction
            await Task.all().count()
        finished.append(True)

    services.sweeper.sweep = slow_sweep  # type: ignore[method-assign]
    pool = WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=1)
    pool.start_background()
    await asyncio.wait_for(inside.wait(), 10)
    await asyncio.wait_for(pool.stop_background(), 10)
    assert finished == [True]
    # No transaction left open: the connection still answers.
    assert await asyncio.wait_for(Task.all().count(), 5) == 0
