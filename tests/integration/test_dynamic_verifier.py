"""bench/verify_dynamic.py's invariants hold after map and child-task runs, and catch a
breach (PostgreSQL only: the verifier reads PostgreSQL)."""

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from bench.verify_dynamic import DYNAMIC_CHECKS
from server.container import Services
from server.db.models import StepItem, WorkflowStep
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import BACKEND, WORKFLOWS
from tests.support.waiting import wait_for_task

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="the verifier reads PostgreSQL")

DYNAMIC = Path(__file__).resolve().parent.parent / "fixtures" / "mapping"


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


async def violations(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {label: int(await conn.fetchval(sql)) for label, sql in DYNAMIC_CHECKS}
    finally:
        await conn.close()


async def test_the_invariants_hold_and_catch_a_breach(engine: Services, database_url: str) -> None:
    mapped, _ = await engine.tasks.create_task(
        CreateTask(namespace="dynamic", name="map_numbers", context={"numbers": list(range(60))})
    )
    parent, _ = await engine.tasks.create_task(
        CreateTask(
            namespace="dynamic",
            name="three_children",
            context={"a": {"key": "a"}, "b": {"key": "b"}, "c": {"key": "c"}},
        )
    )
    await wait_for_task(engine, mapped.id, timeout=60)
    await wait_for_task(engine, parent.id)
    assert set((await violations(database_url)).values()) == {0}
    # 21 items running at the same moment would break max_parallel: 20.
    step = await WorkflowStep.get(task_id=mapped.id, name="double")
    rows = await StepItem.filter(step_id=step.id).order_by("idx").limit(21)
    moment = rows[0].started_at
    assert moment is not None
    for row in rows:
        await StepItem.filter(id=row.id).update(
            started_at=moment, completed_at=moment + timedelta(seconds=1)
        )
    found = await violations(database_url)
    assert found["map steps over max_parallel (from the items' rows)"] == 1
