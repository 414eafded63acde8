"""Relations are batched: a page of 50 tasks costs the same SQL queries as a page of 1."""

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest

from server.app import create_app
from server.container import Services
from server.domain.views import CreateTask

PAGE = """{ tasks(first: 100) { totalCount edges { cursor node {
  id status fullName
  transitions { toStatus }
  dependencies { analysis blockedSteps { step reason { code } } }
  steps { id name status parents children
          blockedReason { code waitingOn }
          transitions { fromStatus toStatus } } } } } }"""


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().lstrip().upper()
        if text.startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            self.statements.append(text)


@contextmanager
def counting_queries() -> Iterator[list[str]]:
    logger = logging.getLogger("tortoise.db_client")
    counter, level = _Counter(), logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    try:
        yield counter.statements
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)


@pytest.fixture
async def idle_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def page_cost(client: httpx.AsyncClient) -> tuple[int, int]:
    with counting_queries() as statements:
        response = await client.post("/tasker/graphql", json={"query": PAGE})
    body = response.json()
    assert "errors" not in body, body
    return len(body["data"]["tasks"]["edges"]), len(statements)


async def add_tasks(services: Services, count: int) -> list[str]:
    """The ids of `count` new payment tasks."""
    ids = []
    for i in range(count):
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="payments", name="process_payment", context={"payment_id": i})
        )
        ids.append(str(task.id))
    return ids


async def test_a_page_of_50_tasks_costs_the_same_queries_as_a_page_of_1(idle_client, services):
    await add_tasks(services, 1)
    one, cost_of_one = await page_cost(idle_client)
    await add_tasks(services, 49)
    fifty, cost_of_fifty = await page_cost(idle_client)
    assert (one, fifty) == (1, 50)
    assert cost_of_one == cost_of_fifty
    assert cost_of_one <= 8


async def test_one_task_with_everything_is_a_handful_of_queries(idle_client, services):
    await add_tasks(services, 1)
    task_id = (await services.tasks.list_tasks_after(_all(), first=1)).items[0].id
    query = PAGE.replace("tasks(first: 100) { totalCount edges { cursor node {", "task(id: $id) {")
    query = "query($id: ID!) " + query.removesuffix(" } } } }") + " } }"
    with counting_queries() as statements:
        response = await idle_client.post(
            "/tasker/graphql", json={"query": query, "variables": {"id": str(task_id)}}
        )
    assert "errors" not in response.json(), response.json()
    assert len(statements) <= 6, statements


def _all():
    from server.domain.views import TaskFilter

    return TaskFilter()
