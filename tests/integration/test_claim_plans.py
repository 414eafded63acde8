"""A claim finds its task by primary key, whatever the planner knows of the task table.

In a database whose tables were never analyzed (a fresh one, or one with autovacuum off), the
planner has no row counts: given the claim's actual parameters it served the test "the task
may start steps" from the status index, reading every pending and running task for each
claim, a backlog's worth. The status tests are written so that no index can serve them
(`IS TRUE`).
"""

from datetime import UTC, datetime

import pytest
from tortoise import Tortoise

from server.container import Services
from server.domain.views import CreateTask
from server.engine import limits, pg_flow, pg_store
from server.engine.limit_keys import HELD, KEEP_STARTS_SECONDS, OFFERED, WAITING
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's plans")


async def test_claims_find_their_task_by_its_key_in_a_backlog_never_analyzed(
    services: Services,
) -> None:
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    step = await services.steps.get_step(task.id, "start")
    conn = Tortoise.get_connection("default")
    # A backlog of copies of that task, and no ANALYZE.
    await conn.execute_script(
        f"CREATE TEMP TABLE copies AS SELECT * FROM tasker_tasks WHERE id = '{task.id}';"
        " INSERT INTO tasker_tasks SELECT (jsonb_populate_record(c,"
        " jsonb_build_object('id', gen_random_uuid()))).* FROM copies c,"
        " generate_series(1, 3000);"
    )
    now = datetime.now(UTC)
    common = (step.id, now, "w/1", 300.0, 15.0)
    statements = {
        "claim": (
            pg_store.CLAIM_STATEMENT.sql,
            pg_store.CLAIM_STATEMENT.values([step.id], ["w/1"], [300.0], [15.0], now),
        ),
        "limited claim": (
            pg_flow.CLAIM_STATEMENT.sql,
            pg_flow.CLAIM_STATEMENT.values(
                *common, now.timestamp(), HELD, OFFERED, limits.TASK_LIMIT, limits.RATE_LIMIT,
                KEEP_STARTS_SECONDS, WAITING, now,
            ),
        ),
    }  # fmt: skip
    for name, (sql, values) in statements.items():
        # With its parameters: the plan of one execution (as each of a prepared statement's
        # first five are), not a generic one.
        _, rows = await conn.execute_query(f"EXPLAIN {sql}", values)
        plan = "\n".join(r["QUERY PLAN"] for r in rows)
        assert "idx_tasker_task_status" not in plan, (name, plan)
        assert "Seq Scan on tasker_tasks" not in plan, (name, plan)
