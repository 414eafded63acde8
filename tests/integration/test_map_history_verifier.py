"""bench/verify.py after a map run: the step and task history checks read past the items'
history rows (a temporary view leaves them out), and the check from the items' rows catches
more than `max_parallel` claims at once. PostgreSQL only: the verifier reads PostgreSQL."""

from pathlib import Path

import asyncpg
import pytest

from bench.verify import CHECKS, task_history_only
from server.container import Services
from server.db.models import Transition, WorkflowStep
from server.domain.item_moves import ITEM_CLAIMED
from server.domain.states import StepState
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import BACKEND, WORKFLOWS
from tests.support.waiting import wait_for_task

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="the verifier reads PostgreSQL")

MAPPING = Path(__file__).resolve().parent.parent / "fixtures" / "mapping"
FROM_HISTORY = "map steps over max_parallel (from the items' history rows)"
STEP_HISTORY = [
    "steps whose attempts differ from their claims",
    "step history rows that do not chain",
    "steps whose last history row is not their status",
    "steps completed more than once",
]


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, MAPPING], examples=True)


async def violations(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        await task_history_only(conn)
        return {label: int(await conn.fetchval(sql)) for label, sql in CHECKS if "$1" not in sql}
    finally:
        await conn.close()


async def test_item_rows_pass_the_step_checks_and_prove_max_parallel(
    engine: Services, database_url: str
) -> None:
    view, _ = await engine.tasks.create_task(
        CreateTask(namespace="dynamic", name="map_numbers", context={"numbers": list(range(50))})
    )
    await wait_for_task(engine, view.id, timeout=120)
    found = await violations(database_url)
    assert {label: found[label] for label in [*STEP_HISTORY, FROM_HISTORY]} == dict.fromkeys(
        [*STEP_HISTORY, FROM_HISTORY], 0
    )
    assert await Transition.filter(reason=ITEM_CLAIMED).count() >= 50
    # 21 claims in a row with no record between them: 21 items at once, over max_parallel 20.
    step = await WorkflowStep.get(task_id=view.id, name="double")
    for index in range(21):
        await Transition.create(
            task_id=view.id, step_id=step.id, step_name="double",
            from_status=StepState.PENDING.value, to_status=StepState.IN_PROGRESS.value,
            reason=ITEM_CLAIMED, metadata={"item": index, "attempt": 9},
            created_at=step.completed_at,
        )  # fmt: skip
    found = await violations(database_url)
    assert found[FROM_HISTORY] == 1
    assert {label: found[label] for label in STEP_HISTORY} == dict.fromkeys(STEP_HISTORY, 0)
