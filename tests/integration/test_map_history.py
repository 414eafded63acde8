"""Map items in the history: every claim and recorded attempt of an item is a history row of its
map step (`server.domain.item_moves`), which proves `max_parallel` from the history alone and
stays out of the task's own history; and a paused task or handler starts no new item."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from server.container import Services
from server.db.models import StepItem, WorkflowStep
from server.domain.item_moves import ITEM_CLAIMED, ITEM_COMPLETE, ITEM_REASONS, ITEM_RETRYING
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from server.engine.store import Outcome
from server.registry.handler_registry import HandlerRegistry
from server.services import queries
from tests.conftest import WORKFLOWS, on_every_store
from tests.support.map_items import started_map
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

DYNAMIC = Path(__file__).resolve().parent.parent / "fixtures" / "mapping"


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


def most_at_once(rows: list[Any]) -> int:
    """The most items in progress at once, replaying the item rows in cursor order."""
    running = most = 0
    for row in rows:
        running += 1 if row.reason == ITEM_CLAIMED else -1
        most = max(most, running)
    assert running == 0  # every claim was recorded
    return most


@pytest.mark.timeout(600)  # a thousand items (and ~290 retries) on a machine shared with others
async def test_history_shows_at_most_twenty_items_at_once(engine: Services) -> None:
    view, _ = await engine.tasks.create_task(
        CreateTask(namespace="dynamic", name="map_numbers", context={"numbers": list(range(1000))})
    )
    done = await wait_for_task(engine, view.id, timeout=540)
    assert done.status is TaskState.COMPLETE
    step = await WorkflowStep.get(task_id=view.id, name="double")
    assert step.results == [i * 2 for i in range(1000)]  # input order

    rows = await queries.item_transitions(step.id)
    assert 1 < most_at_once(rows) <= 20
    by_item: dict[int, list[str]] = {}
    for row in rows:
        assert row.step_id == step.id and row.step_name == "double"
        if row.reason == ITEM_RETRYING:
            assert row.metadata["error_class"] == "RuntimeError"
        by_item.setdefault(row.metadata["item"], []).append(row.reason or "")
    assert sorted(by_item) == list(range(1000))
    flaky = [ITEM_CLAIMED, ITEM_RETRYING] * 2 + [ITEM_CLAIMED, ITEM_COMPLETE]
    for index, reasons in by_item.items():  # multiples of 7 failed twice, then succeeded
        assert reasons == (flaky if index % 7 == 0 else [ITEM_CLAIMED, ITEM_COMPLETE]), index

    # The task's own history (REST, GraphQL, streams) is not flooded with them.
    history = (await queries.transitions_by_task([view.id]))[view.id]
    assert not [h for h in history if h.reason in ITEM_REASONS]
    assert [h.reason for h in history if h.step_name == "double"][-1] == "items complete"
    from server.app import create_app

    query = "query($id: ID!) { task(id: $id) { transitions { reason stepName } } }"
    transport = httpx.ASGITransport(app=create_app(services=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        reply = await client.post(
            "/tasker/graphql", json={"query": query, "variables": {"id": str(view.id)}}
        )
    assert reply.status_code == 200, reply.text
    shown = reply.json()["data"]["task"]["transitions"]
    assert len(shown) == len(history) < 20  # the task's moves, not 2,000+ item rows


async def sent(step: WorkflowStep) -> int:
    return await StepItem.filter(
        step_id=step.id, status=StepState.PENDING.value, dispatched_at__not_isnull=True
    ).count()


async def run_to_the_end(services: Services, step: WorkflowStep, ids: list[int]) -> None:
    for _ in range(5):
        for i in ids:
            await services.runner.run_step(-i)
    assert (await WorkflowStep.get(id=step.id)).status == StepState.COMPLETE.value


@pytest.mark.parametrize("pause", ["task", "handler"])
async def test_a_paused_map_starts_no_item_until_resumed(services: Services, pause: str) -> None:
    step, ids = await started_map(services, 25)
    assert await sent(step) == 20
    items = services.runner.items
    assert items is not None
    req = services.runner.claimer.request
    running = [await items.claim(i, req(0)) for i in ids[:3]]
    task_id = step.task_id  # type: ignore[attr-defined]
    if pause == "task":
        await services.pausing.pause_task(task_id)
    else:
        await services.pausing.pause_handler("dynamic", "map_numbers")
    # Running items finish, and their records hand no next item on.
    for claim in running:
        assert claim is not None
        assert await items.record(claim, Outcome(results=2, encoded="2"), req(0)) == (
            "complete",
            None,
        )
    # No item starts: neither those already sent nor any other.
    assert [await items.claim(i, req(0)) for i in ids[3:]] == [None] * 22
    assert await StepItem.filter(step_id=step.id, status=StepState.IN_PROGRESS.value).count() == 0
    claims = [r for r in await queries.item_transitions(step.id) if r.reason == ITEM_CLAIMED]
    assert len(claims) == 3
    if pause == "task":
        await services.pausing.resume_task(task_id)
    else:
        await services.pausing.resume_handler("dynamic", "map_numbers")
    # Resuming sends the 17 sent before and fills the 3 slots the finished items freed.
    assert await sent(step) == 20
    await run_to_the_end(services, step, ids)
    assert (await WorkflowStep.get(id=step.id)).results == [2] * 25


async def test_the_sweeper_settles_a_map_left_with_nothing_in_flight(services: Services) -> None:
    """A worker lost between an item's completion and the settling after it (the step's last
    item, or a chain that found no next one) leaves a waiting step: the sweep settles it."""
    step, ids = await started_map(services, 25)
    # As if all sent items were completed and their workers died before sending more.
    await StepItem.filter(id__in=ids[:20]).update(
        status=StepState.COMPLETE.value, results="2", dispatched_at=None
    )
    assert await services.sweeper.resend_map_items() == 1
    assert await sent(step) == 5  # the next items went out
    await StepItem.filter(id__in=ids).update(
        status=StepState.COMPLETE.value, results="2", dispatched_at=None
    )
    assert await services.sweeper.resend_map_items() == 1
    done = await WorkflowStep.get(id=step.id)
    assert (done.status, done.results) == (StepState.COMPLETE.value, [2] * 25)
