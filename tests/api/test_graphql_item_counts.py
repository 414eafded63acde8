"""`Step.items` on a page of tasks reads every step's item counts in one grouped query: a page
of ten map tasks costs the same SQL as a page of one (their items' pages aside: one each)."""

from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.container import Services
from server.db.models import StepItem, WorkflowStep
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.api.test_graphql_loaders import counting_queries
from tests.conftest import WORKFLOWS

MAPPING = Path(__file__).resolve().parent.parent / "fixtures" / "mapping"

COUNTS = """{ tasks(first: 100) { edges { node { steps { name
  items(first: 1) { total complete error inProgress } } } } } }"""


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, MAPPING], examples=True)


async def started_maps(services: Services, count: int) -> None:
    for _ in range(count):
        view, _ = await services.tasks.create_task(
            CreateTask(namespace="dynamic", name="map_numbers", context={"numbers": [1, 2, 3]})
        )
        step = await WorkflowStep.get(task_id=view.id, name="double")
        assert await services.runner.run_step(step.id) == "awaiting"


async def cost(services: Services) -> tuple[int, int, list[dict[str, object]]]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with counting_queries() as statements:
            body = (await client.post("/tasker/graphql", json={"query": COUNTS})).json()
    assert "errors" not in body, body
    edges = body["data"]["tasks"]["edges"]
    counted = [s for s in statements if "COUNT" in s and "TASKER_STEP_ITEMS" in s]
    return len(statements), len(counted), [s for e in edges for s in e["node"]["steps"]]


async def test_item_counts_of_a_page_of_steps_are_one_query(services: Services) -> None:
    await started_maps(services, 1)
    one, counted_one, _ = await cost(services)
    await started_maps(services, 9)
    ten, counted_ten, steps = await cost(services)
    assert counted_one == counted_ten == 1
    assert ten - one == 9  # one page of items per map step more, nothing per step else
    maps = [s["items"] for s in steps if s["name"] == "double"]
    assert maps == [{"total": 3, "complete": 0, "error": 0, "inProgress": 0}] * 10
    assert [s["items"] for s in steps if s["name"] == "total"] == [None] * 10
    assert await StepItem.all().count() == 30
