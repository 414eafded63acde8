"""A query whose document already passed everything is answered as the full path answers it.

`graphql_schema.known_documents` skips strawberry's extension runner for such queries; these
tests pin that the answers do not change, that it only takes queries it knows, and that an
answer with an error comes from the full path.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from graphql_schema.app import PATH, TaskerGraphQL
from graphql_schema.known_documents import known_query
from server.app import create_app
from server.container import Services
from server.domain.views import CreateTask

TASK = """query One($id: ID!) { task(id: $id) { id status fullName
  steps { name status attempts parents } } }"""
MUTATION = """mutation Cancel($id: ID!) { cancelTask(id: $id) {
  __typename ... on Task { id status } } }"""


@pytest.fixture
def still_app(services: Services) -> Starlette:
    """The app over services with no workers: tasks stay as created, answers stay the same."""
    return create_app(services=services)


@pytest.fixture
async def still_client(still_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=still_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def graphql_app(app: Starlette) -> TaskerGraphQL:
    route = next(r for r in app.routes if isinstance(r, Route) and r.path == PATH)
    assert isinstance(route.app, TaskerGraphQL)
    return route.app


async def post(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await client.post(PATH, json={"query": query, "variables": variables})
    return response.status_code, response.json()


async def test_a_known_query_answers_as_the_first_time(
    still_app: Starlette, still_client: httpx.AsyncClient, services: Services
):
    app, client = still_app, still_client
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="payments", name="process_payment", context={"payment_id": 1})
    )
    limits = graphql_app(app).schema.limits  # type: ignore[attr-defined]
    assert known_query(limits, TASK, "One") is None
    first = await post(client, TASK, {"id": str(task.id)})
    assert first[0] == 200 and "errors" not in first[1]
    assert known_query(limits, TASK, "One") is not None
    # The request named no operation (as most clients send one named operation): still known.
    assert known_query(limits, TASK, None) is not None
    again = await post(client, TASK, {"id": str(task.id)})
    assert again == first  # same status, same JSON
    missing = await post(client, TASK, {"id": "00000000-0000-0000-0000-000000000000"})
    assert missing == (200, {"data": {"task": None}})
    assert known_query(limits, TASK, "Other") is None  # another operation name: not known


async def test_an_answer_with_errors_comes_from_the_full_path(
    app: Starlette, client: httpx.AsyncClient, engine: Services
):
    task, _ = await engine.tasks.create_task(
        CreateTask(namespace="payments", name="process_payment", context={"payment_id": 2})
    )
    await post(client, TASK, {"id": str(task.id)})
    status, body = await post(client, TASK, {"id": {"not": "an id"}})
    assert status == 200 and body["data"] is None
    assert "ID cannot represent value" in body["errors"][0]["message"]


async def test_mutations_are_never_known(
    app: Starlette, client: httpx.AsyncClient, engine: Services
):
    task, _ = await engine.tasks.create_task(
        CreateTask(namespace="payments", name="process_payment", context={"payment_id": 3})
    )
    status, body = await post(client, MUTATION, {"id": str(task.id)})
    assert status == 200 and body["data"]["cancelTask"]["__typename"] in {"Task", "Error"}, body
    limits = graphql_app(app).schema.limits  # type: ignore[attr-defined]
    assert known_query(limits, MUTATION, "Cancel") is None
