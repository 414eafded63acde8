"""GraphQL createTasks: one typed result per input, in order; a refused input only itself."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.container import Services
from server.services.creation import MAX_BATCH

PAYMENT = {"payment_id": 7, "amount": 12.5}
GOOD = {"namespace": "payments", "name": "process_payment", "context": PAYMENT}
CREATE_TASKS = """mutation($inputs: [CreateTaskInput!]!) { createTasks(inputs: $inputs) {
  __typename
  ... on CreateTasksPayload { created existing failed results { index created result {
    __typename ... on Task { id status reason } ... on Error { code message }
    ... on ValidationError { details { field messages } } } } }
  ... on ValidationError { code details { field messages } } } }"""


@pytest.fixture
async def idle_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client over services with no workers: created tasks stay pending."""
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def create_tasks(client: httpx.AsyncClient, inputs: list[Any]) -> dict[str, Any]:
    body = {"query": CREATE_TASKS, "variables": {"inputs": inputs}}
    response = await client.post("/tasker/graphql", json=body)
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.json()
    return response.json()["data"]["createTasks"]


async def test_every_input_gets_its_result_in_order(idle_client):
    inputs = [
        {**GOOD, "reason": "first"},
        {**GOOD, "namespace": "nope"},
        {**GOOD, "context": {"amount": "x"}},
        {**GOOD, "reason": "last", "idempotencyKey": "gql-batch"},
        {**GOOD, "reason": "last", "idempotencyKey": "gql-batch"},
    ]
    payload = await create_tasks(idle_client, inputs)
    assert payload["__typename"] == "CreateTasksPayload"
    assert (payload["created"], payload["existing"], payload["failed"]) == (2, 1, 2)
    results = payload["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    kinds = [r["result"]["__typename"] for r in results]
    assert kinds == ["Task", "HandlerNotFoundError", "ValidationError", "Task", "Task"]
    assert [r["created"] for r in results] == [True, False, False, True, False]
    assert results[0]["result"]["reason"] == "first"
    assert results[3]["result"]["id"] == results[4]["result"]["id"]
    assert results[2]["result"]["code"] == "INVALID_TASK_CONFIG"


async def test_the_same_input_is_refused_alike_by_create_task(idle_client):
    bad = {**GOOD, "context": {"amount": "x"}}
    single = await idle_client.post(
        "/tasker/graphql",
        json={
            "query": "mutation($i: CreateTaskInput!) { createTask(input: $i) { __typename "
            "... on ValidationError { code details { field messages } } } }",
            "variables": {"i": bad},
        },
    )
    one = single.json()["data"]["createTask"]
    many = (await create_tasks(idle_client, [bad]))["results"][0]["result"]
    assert many["code"] == one["code"]
    assert many["details"] == one["details"]


async def test_too_many_or_no_inputs_is_a_validation_error(idle_client):
    for inputs in ([], [GOOD] * (MAX_BATCH + 1)):
        payload = await create_tasks(idle_client, inputs)
        assert payload["__typename"] == "ValidationError"
        assert payload["details"][0]["field"] == "inputs"
