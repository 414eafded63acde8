"""Map items without workers, step by step: the claim's hard cap, cancellation stopping the
remaining items, and the sweeper taking back an item whose worker was lost."""

from datetime import timedelta
from pathlib import Path

import pytest

from server.container import Services
from server.db.models import StepItem, WorkflowStep
from server.domain.states import StepState, TaskState
from server.engine.store import Outcome
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import WORKFLOWS, on_every_store
from tests.support.map_items import started_map

pytestmark = on_every_store

DYNAMIC = Path(__file__).resolve().parent.parent / "fixtures" / "mapping"


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


async def test_the_claim_refuses_an_item_over_max_parallel(services: Services) -> None:
    step, ids = await started_map(services, 25)
    assert await StepItem.filter(step_id=step.id, dispatched_at__not_isnull=True).count() == 20
    items = services.runner.items
    assert items is not None
    claims = [await items.claim(i, services.runner.claimer.request(0)) for i in ids[:21]]
    assert all(c is not None for c in claims[:20])
    assert claims[20] is None  # a 21st at once would break max_parallel: 20
    assert await StepItem.filter(step_id=step.id, status=StepState.IN_PROGRESS.value).count() == 20


async def test_cancel_stops_the_remaining_items(services: Services) -> None:
    step, ids = await started_map(services, 30)
    for i in ids[:2]:
        assert await services.runner.run_items(i) == "complete"
    await services.tasks.cancel_task(step.task_id)  # type: ignore[attr-defined]
    for i in ids:
        await services.runner.run_step(-i)
    statuses = await StepItem.filter(step_id=step.id).values_list("status", flat=True)
    # The two run before the cancel, maybe a few handed on by them; none after it.
    done_before = statuses.count(StepState.COMPLETE.value)
    assert 2 <= done_before < 30
    assert (await WorkflowStep.get(id=step.id)).status == StepState.CANCELLED.value
    assert (await services.tasks.get_task(step.task_id)).status is TaskState.CANCELLED  # type: ignore[attr-defined]
    report = await services.sweeper.sweep()
    assert report.redispatched == 0  # nothing is re-sent for a cancelled map


async def test_an_item_whose_lease_expired_is_retried(services: Services) -> None:
    _step, ids = await started_map(services, 3)
    items = services.runner.items
    assert items is not None
    held = await items.claim(ids[0], services.runner.claimer.request(0))
    assert held is not None
    past = services.changes.clock.now() - timedelta(seconds=1)
    await StepItem.filter(id=ids[0]).update(lease_expires_at=past)
    report = await services.sweeper.sweep()
    assert report.reaped == 1
    row = await StepItem.get(id=ids[0])
    assert (row.status, row.error_class) == (StepState.ERROR.value, "WorkerLost")
    assert row.next_attempt_at is not None
    # The late result of the lost attempt is discarded: the lease is no longer its.
    result, _ = await items.record(held, Outcome(results=2, encoded="2"))
    assert result == "discarded"
