"""Map steps (`map_over`, `max_parallel`) on every store: one handler run per item, each
retried on its own, results in input order, never more than max_parallel items at once."""

from pathlib import Path

import pytest

from server.container import Services
from server.db.models import StepItem, WorkflowStep
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import WORKFLOWS, on_every_store
from tests.support import map_steps as dynamic_steps
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

DYNAMIC = Path(__file__).resolve().parent.parent / "fixtures" / "mapping"


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


def numbers(values: object, name: str = "map_numbers") -> CreateTask:
    return CreateTask(namespace="dynamic", name=name, context={"numbers": values})


async def step_of(task_id: object, name: str) -> WorkflowStep:
    return await WorkflowStep.get(task_id=task_id, name=name)


@pytest.mark.timeout(600)  # a thousand items (and ~430 retries) on a machine shared with others
async def test_a_thousand_items_twenty_at_a_time_in_order(engine: Services) -> None:
    dynamic_steps.IN_FLIGHT.most = 0
    view, _ = await engine.tasks.create_task(numbers(list(range(1000))))
    done = await wait_for_task(engine, view.id, timeout=540)
    assert done.status is TaskState.COMPLETE
    step = await step_of(view.id, "double")
    assert step.results == [i * 2 for i in range(1000)]
    assert 1 < dynamic_steps.IN_FLIGHT.most <= 20
    # Items divisible by 7 failed twice, then succeeded, each retried on its own.
    attempts = dict(await StepItem.filter(step_id=step.id).values_list("idx", "attempts"))
    assert {i for i, a in attempts.items() if a == 3} == set(range(0, 1000, 7))
    assert {a for i, a in attempts.items() if i % 7} == {1}
    # The map step ran once (its claim), its items did the work.
    assert step.attempts == 1
    total = await step_of(view.id, "total")
    assert total.results["parents"]["double"][:3] == [0, 2, 4]


async def test_empty_list_completes_with_empty_results(engine: Services) -> None:
    view, _ = await engine.tasks.create_task(numbers([]))
    assert (await wait_for_task(engine, view.id)).status is TaskState.COMPLETE
    assert (await step_of(view.id, "double")).results == []


async def test_not_a_list_fails_for_good(engine: Services) -> None:
    view, _ = await engine.tasks.create_task(numbers({"a": 1}))
    assert (await wait_for_task(engine, view.id)).status is TaskState.ERROR
    step = await step_of(view.id, "double")
    assert (step.error_class, step.attempts) == ("NOT_A_LIST", 1)


async def test_a_path_that_resolves_to_nothing_is_bad_path(engine: Services) -> None:
    view, _ = await engine.tasks.create_task(
        CreateTask(namespace="dynamic", name="map_numbers", context={})
    )
    assert (await wait_for_task(engine, view.id)).status is TaskState.ERROR
    step = await step_of(view.id, "double")
    assert step.error_class == "BAD_PATH"
    assert "context.numbers" in str(step.last_error)


async def test_map_over_a_parents_results(engine: Services) -> None:
    view, _ = await engine.tasks.create_task(
        CreateTask(namespace="dynamic", name="map_parent_list", context={"items": [3, 1, 2]})
    )
    assert (await wait_for_task(engine, view.id)).status is TaskState.COMPLETE
    assert (await step_of(view.id, "each")).results == [6, 2, 4]


async def test_an_item_failing_for_good_fails_the_step_and_retry_reruns_only_it(
    engine: Services,
) -> None:
    values: list[object] = [1, 2, "boom", 4, 5]
    view, _ = await engine.tasks.create_task(numbers(values))
    assert (await wait_for_task(engine, view.id)).status is TaskState.ERROR
    step = await step_of(view.id, "double")
    assert step.status == StepState.ERROR.value
    assert step.error_class == "ITEM_FAILED"
    assert "item 2" in str(step.last_error)
    items = {r.idx: r for r in await StepItem.filter(step_id=step.id)}
    assert items[2].status == StepState.ERROR.value
    before = {i: r.completed_at for i, r in items.items() if r.status == StepState.COMPLETE.value}
    # Fix the input of the failed item, then retry: only it runs again.
    await StepItem.filter(id=items[2].id).update(item='"fixed"')
    await engine.tasks.retry_task(view.id)
    done = await wait_for_task(engine, view.id, {TaskState.COMPLETE, TaskState.ERROR})
    assert done.status is TaskState.COMPLETE
    assert (await step_of(view.id, "double")).results == [2, 4, "fixed", 8, 10]
    after = {r.idx: r for r in await StepItem.filter(step_id=step.id)}
    assert {i: after[i].completed_at for i in before} == before
    assert after[2].attempts == 1


async def test_rest_shows_item_progress_and_pages_items(engine: Services) -> None:
    import httpx

    from server.app import create_app

    view, _ = await engine.tasks.create_task(numbers([5, 6, 7, 8, 9]))
    await wait_for_task(engine, view.id)
    base = f"/tasker/tasks/{view.id}/workflow_steps"
    transport = httpx.ASGITransport(app=create_app(services=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        step = (await client.get(f"{base}/double")).json()
        assert step["items"] == {"total": 5, "complete": 5, "error": 0, "in_progress": 0}
        listed = (await client.get(base)).json()["workflow_steps"]
        assert [s["items"] is None for s in listed] == [False, True]
        first = (await client.get(f"{base}/double/items", params={"first": 2})).json()
        assert [i["index"] for i in first["items"]] == [0, 1]
        assert first["items"][1]["item"] == 6 and first["items"][1]["results"] == 12
        assert first["next_after"] == 1
        rest = (await client.get(f"{base}/double/items", params={"after": 1})).json()
        assert [i["results"] for i in rest["items"]] == [14, 16, 18]
        assert rest["next_after"] is None
        assert rest["items"][0]["attempts"] == 3  # 7 failed twice first
        bad = await client.get(f"{base}/double/items", params={"first": 0})
        assert bad.status_code == 422, bad.text
        missing = await client.get(f"{base}/nope/items")
        assert missing.status_code == 404


async def test_graphql_shows_item_progress_and_pages_items(engine: Services) -> None:
    import httpx

    from server.app import create_app

    view, _ = await engine.tasks.create_task(numbers([1, 2, 3]))
    await wait_for_task(engine, view.id)
    query = """query($id: ID!) { task(id: $id) { steps { name
        items(first: 2, after: 0) { total complete error inProgress nextAfter
          nodes { index status attempts item results } } } } }"""
    transport = httpx.ASGITransport(app=create_app(services=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        reply = await client.post(
            "/tasker/graphql", json={"query": query, "variables": {"id": str(view.id)}}
        )
    steps = {s["name"]: s["items"] for s in reply.json()["data"]["task"]["steps"]}
    assert steps["total"] is None
    items = steps["double"]
    assert (items["total"], items["complete"], items["error"], items["inProgress"]) == (3, 3, 0, 0)
    assert [(n["index"], n["item"], n["results"]) for n in items["nodes"]] == [(1, 2, 4), (2, 3, 6)]
    assert items["nextAfter"] is None
    assert items["nodes"][0]["status"] == "COMPLETE"


async def test_the_python_client_pages_items_and_the_cli_shows_progress(engine: Services) -> None:
    import httpx
    from rich.console import Console

    from server.app import create_app
    from server.cli.dynamic_view import dynamic_lines
    from server.client.aio import AsyncTaskerClient

    view, _ = await engine.tasks.create_task(numbers([4, 5, 6]))
    await wait_for_task(engine, view.id)
    transport = httpx.ASGITransport(app=create_app(services=engine))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
        AsyncTaskerClient("http://testserver", http=http) as tasker,
    ):
        page = await tasker.list_step_items(str(view.id), "double", first=2)
        assert [i["results"] for i in page["items"]] == [8, 10]
        more = await tasker.list_step_items(str(view.id), "double", after=page["next_after"])
        assert [i["results"] for i in more["items"]] == [12]
        task = await tasker.get_task(str(view.id))
        steps = await tasker.list_steps(str(view.id))
    lines = dynamic_lines(task, steps)
    assert lines is not None
    out = Console(width=100, record=True)
    out.print(lines)
    assert "double  items 3/3 complete" in out.export_text()
