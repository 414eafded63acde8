"""A claim's cached plan follows the task table's growth: the sweeper analyzes tables that
changed (`server.db.planner_stats`).

PostgreSQL caches a prepared statement's generic plan and plans it again only when a table it
reads gets new statistics. Planned while the tables hold a few rows (a worker started on a new
database), the claim reads the whole task table to find its task, and kept doing so as the
table grew when nothing analyzed it (autovacuum off, or not yet come round).
"""

import asyncio

import pytest
from tortoise import Tortoise

from server.container import Services
from server.db.planner_stats import refresh_planner_stats
from server.domain.views import CreateTask
from server.engine import pg_store
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's plan cache")

SEQ_SCAN = "Seq Scan on tasker_tasks"


async def test_a_claim_planned_on_a_new_database_finds_its_task_by_key_once_it_grew(
    services: Services,
) -> None:
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    async with Tortoise.get_connection("default").acquire_connection() as conn:
        # Statistics of a table of one task, as a new database has them (whatever the tests
        # before this one left), then the generic plan, as a connection caches it from its
        # sixth execution on.
        await conn.execute("ANALYZE tasker_tasks")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE cached_claim AS {pg_store.CLAIM_STATEMENT.sql}")
        try:
            types = await conn.fetchval(
                "SELECT parameter_types::text[] FROM pg_prepared_statements"
                " WHERE name = 'cached_claim'"
            )
            nulls = ", ".join(f"NULL::{t}" for t in types)

            async def plan() -> str:
                rows = await conn.fetch(f"EXPLAIN EXECUTE cached_claim({nulls})")
                return "\n".join(r[0] for r in rows)

            assert SEQ_SCAN in await plan()  # cheapest while the table is one task
            await conn.execute(
                # Copies of the task (no DDL here: a temporary table would reset every plan).
                "INSERT INTO tasker_tasks SELECT (jsonb_populate_record(t,"
                " jsonb_build_object('id', gen_random_uuid()))).* FROM tasker_tasks t,"
                f" generate_series(1, 3000) WHERE t.id = '{task.id}'"
            )
            assert SEQ_SCAN in await plan()  # nothing told the cached plan
            # This connection's counts reach the statistics views when it is next idle.
            await conn.execute("SELECT pg_stat_force_next_flush()")
            grown = await plan()
            for _ in range(50):  # a busy sweep (3,001 tasks pending) analyzes what is due
                await services.sweeper.sweep()
                grown = await plan()
                if SEQ_SCAN not in grown:
                    break
                await asyncio.sleep(0.1)
            assert SEQ_SCAN not in grown, grown
            assert "tasker_tasks_pkey" in grown, grown
            # Analyzed, the table is not due again until it doubles.
            assert "tasker_tasks" not in await refresh_planner_stats()
        finally:
            await conn.execute("DEALLOCATE cached_claim; RESET plan_cache_mode")
