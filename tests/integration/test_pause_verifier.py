"""bench/verify.py's pause invariant counts a claim recorded while the task (or its handler)
was paused, and none recorded before the pause or after the resume. PostgreSQL only: the
verifier reads a PostgreSQL database."""

from datetime import UTC, datetime

import asyncpg
import pytest

from bench.verify import CHECKS
from server.container import Services
from server.db.models import Transition
from server.domain.states import StepState
from server.domain.views import CreateTask
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="the verifier reads PostgreSQL")

PAUSED_INVARIANT = next(sql for name, sql in CHECKS if "paused" in name)


async def claim_row(task_id: object, step_id: int) -> None:
    """A claim as the history records it (the engine would refuse one while paused)."""
    await Transition.create(
        task_id=task_id,
        step_id=step_id,
        step_name="a",
        from_status=StepState.PENDING.value,
        to_status=StepState.IN_PROGRESS.value,
        reason="claimed",
        metadata={},
        created_at=_now(),
    )


def _now() -> datetime:
    return datetime.now(UTC)


async def violations(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(PAUSED_INVARIANT))
    finally:
        await conn.close()


async def test_the_invariant_counts_claims_inside_a_pause_only(
    services: Services, database_url: str
) -> None:
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    step = await services.steps.get_step(task.id, "a")
    await claim_row(task.id, step.id)  # before any pause: fine
    await services.pausing.pause_task(task.id)
    assert await violations(database_url) == 0
    await claim_row(task.id, step.id)  # while paused by hand
    assert await violations(database_url) == 1
    await services.pausing.resume_task(task.id)
    await claim_row(task.id, step.id)  # after the resume: fine
    assert await violations(database_url) == 1
    await services.pausing.pause_handler("shapes", "linear")
    await claim_row(task.id, step.id)  # while its handler is paused
    assert await violations(database_url) == 2
