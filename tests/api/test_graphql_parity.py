"""REST and GraphQL are two views of one core: what one writes the other reads, and the same
mistake gets the same error (kind, code and per-field details) from both."""

from datetime import datetime
from typing import Any

import pytest

from tests.api.rest_support import PAYMENT, wait_until

MISSING = "00000000-0000-0000-0000-000000000000"
TASK = """query($id: ID!) { task(id: $id) {
  id name namespace version fullName status context createdAt updatedAt completedAt
  initiator sourceSystem reason tags
  steps { name status attempts results startedAt completedAt }
  dependencies { analysis readySteps completedSteps blockedSteps { step reason { code } } } } }"""
CREATE = """mutation($input: CreateTaskInput!) { createTask(input: $input) { __typename
  ... on Task { id } ... on Error { code message }
  ... on ValidationError { details { field messages } }
  ... on ConflictError { details { field messages } } } }"""
CANCEL = """mutation($id: ID!) { cancelTask(id: $id) { __typename ... on Task { status }
  ... on Error { code message } } }"""

# GraphQL result type for each REST status.
KIND_BY_STATUS = {
    404: {"NotFoundError", "HandlerNotFoundError"},
    409: {"InvalidTransitionError", "ConflictError"},
    422: {"ValidationError"},
}


async def gql(client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = (
        await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    ).json()
    assert "errors" not in body, body
    return body["data"]


async def rest_task(client, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/tasker/tasks/{task_id}", params={"include_dependencies": "true"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def instant(text: str | None) -> datetime | None:
    """The moment, to the millisecond (REST's timestamps carry milliseconds)."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def assert_same_task(rest: dict[str, Any], graphql: dict[str, Any]) -> None:
    for rest_key, gql_key in [
        ("id", "id"),
        ("name", "name"),
        ("namespace", "namespace"),
        ("version", "version"),
        ("full_name", "fullName"),
        ("context", "context"),
    ]:
        assert rest[rest_key] == graphql[gql_key], rest_key
    assert rest["status"].upper() == graphql["status"]
    assert instant(rest["created_at"]) == instant(graphql["createdAt"])
    assert instant(rest["updated_at"]) == instant(graphql["updatedAt"])
    assert [
        (s["name"], s["status"].upper(), s["attempts"], s["results"]) for s in rest["steps"]
    ] == [(s["name"], s["status"], s["attempts"], s["results"]) for s in graphql["steps"]]
    for rest_step, gql_step in zip(rest["steps"], graphql["steps"], strict=True):
        assert instant(rest_step["started_at"]) == instant(gql_step["startedAt"])
        assert instant(rest_step["completed_at"]) == instant(gql_step["completedAt"])
    deps, gql_deps = rest["dependencies"], graphql["dependencies"]
    assert deps["analysis"] == gql_deps["analysis"]
    assert deps["ready_steps"] == gql_deps["readySteps"]
    assert deps["completed_steps"] == gql_deps["completedSteps"]
    assert [(name, deps["blocked_reasons"][name]["code"]) for name in deps["blocked_steps"]] == [
        (b["step"], b["reason"]["code"]) for b in gql_deps["blockedSteps"]
    ]


async def test_created_through_rest_reads_the_same_through_graphql(client):
    response = await client.post(
        "/tasker/tasks",
        json={
            "namespace": "payments",
            "name": "process_payment",
            "version": "2.1.0",
            "context": PAYMENT,
            "initiator": "rest",
            "reason": "parity",
            "tags": ["p"],
        },
    )
    assert response.status_code == 201
    task_id = response.json()["id"]
    await wait_until(client, task_id)
    graphql = (await gql(client, TASK, {"id": task_id}))["task"]
    assert (graphql["initiator"], graphql["reason"], graphql["tags"]) == ("rest", "parity", ["p"])
    assert_same_task(await rest_task(client, task_id), graphql)


async def test_created_through_graphql_reads_the_same_through_rest(client):
    created = (
        await gql(
            client,
            CREATE,
            {
                "input": {
                    "namespace": "payments",
                    "name": "process_payment",
                    "context": PAYMENT,
                }
            },
        )
    )["createTask"]
    assert created["__typename"] == "Task"
    rest = await wait_until(client, created["id"])
    assert rest["full_name"] == "payments.process_payment@2.1.0"
    assert_same_task(
        await rest_task(client, created["id"]),
        (await gql(client, TASK, {"id": created["id"]}))["task"],
    )


async def test_a_failed_task_explains_itself_the_same_way(client):
    failing = {**PAYMENT, "simulate_permanent_failure": "charge_card"}
    created = (
        await gql(
            client,
            CREATE,
            {"input": {"namespace": "payments", "name": "process_payment", "context": failing}},
        )
    )["createTask"]
    assert (await wait_until(client, created["id"]))["status"] == "error"
    graphql = (await gql(client, TASK, {"id": created["id"]}))["task"]
    assert {b["reason"]["code"] for b in graphql["dependencies"]["blockedSteps"]} == {
        "failed_permanently",
        "upstream_failed",
    }
    assert_same_task(await rest_task(client, created["id"]), graphql)


async def test_cancelled_through_rest_is_cancelled_in_graphql(client):
    slow = {**PAYMENT, "simulate_sleep": {"validate_payment": 0.5}}
    task_id = (
        await client.post(
            "/tasker/tasks",
            json={
                "namespace": "payments",
                "name": "process_payment",
                "context": slow,
            },
        )
    ).json()["id"]
    assert (await client.delete(f"/tasker/tasks/{task_id}")).status_code == 200
    graphql = (await gql(client, TASK, {"id": task_id}))["task"]
    assert graphql["status"] == "CANCELLED"
    assert {s["status"] for s in graphql["steps"]} == {"CANCELLED"}
    assert_same_task(await rest_task(client, task_id), graphql)


async def test_cancelled_through_graphql_is_cancelled_in_rest(client):
    slow = {**PAYMENT, "simulate_sleep": {"validate_payment": 0.5}}
    task_id = (
        await client.post(
            "/tasker/tasks",
            json={
                "namespace": "payments",
                "name": "process_payment",
                "context": slow,
            },
        )
    ).json()["id"]
    result = (await gql(client, CANCEL, {"id": task_id}))["cancelTask"]
    assert result == {"__typename": "Task", "status": "CANCELLED"}
    rest = await rest_task(client, task_id)
    assert rest["status"] == "cancelled"
    assert {s["status"] for s in rest["steps"]} == {"cancelled"}


def assert_same_error(rest_response, graphql: dict[str, Any], rest_code: str | None = None):
    error = rest_response.json()["error"]
    assert graphql["__typename"] in KIND_BY_STATUS[rest_response.status_code]
    assert error["code"] == (rest_code or graphql["code"])
    if "details" in graphql:
        assert error.get("details") == {d["field"]: d["messages"] for d in graphql["details"]}


CREATE_MISTAKES = [
    pytest.param({"name": "nope"}, None, id="unknown handler"),
    pytest.param({"namespace": "nope"}, None, id="unknown namespace"),
    pytest.param({"version": "9.9.9"}, None, id="unknown version"),
    # The seed's REST contract names every invalid creation INVALID_TASK_CONFIG; GraphQL
    # answers the same code, and the details (which fields, which messages) are the same.
    pytest.param({"context": {"amount": -1}}, None, id="invalid context"),
    pytest.param({"version": "latest"}, None, id="malformed version"),
    pytest.param({"bypass_steps": ["charge_card"]}, None, id="bad bypass"),
]


@pytest.mark.parametrize(("change", "rest_code"), CREATE_MISTAKES)
async def test_creation_mistakes_get_the_same_error(client, change, rest_code):
    body = {"namespace": "payments", "name": "process_payment", "context": PAYMENT, **change}
    rest = await client.post("/tasker/tasks", json=body)
    gql_input = {("bypassSteps" if k == "bypass_steps" else k): v for k, v in body.items()}
    graphql = (await gql(client, CREATE, {"input": gql_input}))["createTask"]
    assert_same_error(rest, graphql, rest_code)
    if rest.status_code == 422:
        assert graphql["code"] == "INVALID_TASK_CONFIG"
        assert graphql["message"] == rest.json()["error"]["message"]


async def test_a_reused_idempotency_key_gets_the_same_conflict(client):
    body = {"namespace": "payments", "name": "process_payment", "context": PAYMENT}
    first = await client.post("/tasker/tasks", json=body, headers={"Idempotency-Key": "p-1"})
    assert first.status_code == 201
    other = {**body, "context": {**PAYMENT, "amount": 1.0}}
    rest = await client.post("/tasker/tasks", json=other, headers={"Idempotency-Key": "p-1"})
    graphql = await gql(client, CREATE, {"input": {**other, "idempotencyKey": "p-1"}})
    assert_same_error(rest, graphql["createTask"])


@pytest.mark.parametrize("task_id", [MISSING, "not-a-uuid"])
async def test_cancelling_an_unknown_task_gets_the_same_error(client, task_id):
    rest = await client.delete(f"/tasker/tasks/{task_id}")
    assert_same_error(rest, (await gql(client, CANCEL, {"id": task_id}))["cancelTask"])


async def test_cancelling_a_completed_task_gets_the_same_error(client):
    task_id = (
        await client.post(
            "/tasker/tasks",
            json={
                "namespace": "payments",
                "name": "process_payment",
                "context": PAYMENT,
            },
        )
    ).json()["id"]
    await wait_until(client, task_id)
    rest = await client.delete(f"/tasker/tasks/{task_id}")
    graphql = (await gql(client, CANCEL, {"id": task_id}))["cancelTask"]
    assert_same_error(rest, graphql)
    assert rest.json()["error"]["message"] == graphql["message"]


async def test_step_mistakes_get_the_same_error(client):
    task_id = (
        await client.post(
            "/tasker/tasks",
            json={
                "namespace": "payments",
                "name": "process_payment",
                "context": PAYMENT,
            },
        )
    ).json()["id"]
    await wait_until(client, task_id)
    query = """mutation($id: ID!, $step: String!) { retryStep(taskId: $id, step: $step) {
      __typename ... on Error { code message } } }"""
    for step in ("nope", "charge_card"):
        rest = await client.post(f"/tasker/tasks/{task_id}/workflow_steps/{step}/retry")
        graphql = (await gql(client, query, {"id": task_id, "step": step}))["retryStep"]
        assert_same_error(rest, graphql)
        assert rest.json()["error"]["message"] == graphql["message"]
