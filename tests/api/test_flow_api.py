"""Flow control on every surface: priority on creation (REST, GraphQL, client, CLI), the
blocked reasons with their key and holders, discovery of limits, and the usage read."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from server.app import create_app
from server.cli import main
from server.client.aio import AsyncTaskerClient
from server.client.errors import ValidationError as ClientValidationError
from server.container import Services
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import ROOT, WORKFLOWS
from tests.support.bridge import cli_talks_to
from tests.support.recorder import Recorder

FLOW = ROOT / "tests" / "fixtures" / "flow"


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    yield HandlerRegistry.load([WORKFLOWS, FLOW], examples=False)


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    services.set_dispatcher(Recorder())
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


CREATE = """mutation($input: CreateTaskInput!) { createTask(input: $input) { __typename
  ... on Task { id priority }
  ... on ValidationError { details { field messages } } } }"""


async def test_priority_on_rest_and_graphql_and_its_bounds(client: httpx.AsyncClient) -> None:
    body = {"namespace": "flow", "name": "limited", "context": {"customer": "a"}}
    made = await client.post("/tasker/tasks", json={**body, "priority": 3})
    assert made.status_code == 201, made.text
    assert made.json()["priority"] == 3
    default = await client.post("/tasker/tasks", json=body)
    assert default.json()["priority"] == 2
    handler_default = await client.post(
        "/tasker/tasks", json={"namespace": "flow", "name": "serial", "context": {"customer": "a"}}
    )
    assert handler_default.json()["priority"] == 3
    for bad in (0, 4):
        refused = await client.post("/tasker/tasks", json={**body, "priority": bad})
        assert refused.status_code == 422, refused.text
        assert "priority" in refused.json()["error"]["details"]
    data = await gql(client, CREATE, {"input": {**body, "priority": 1}})
    assert data["createTask"] == {
        "__typename": "Task",
        "id": data["createTask"]["id"],
        "priority": 1,
    }
    data = await gql(client, CREATE, {"input": {**body, "priority": 9}})
    result = data["createTask"]
    assert result["__typename"] == "ValidationError"
    assert "priority" in {d["field"] for d in result["details"]}
    absent = await client.post(
        "/tasker/tasks", json={"namespace": "flow", "name": "limited", "context": {}}
    )
    assert absent.status_code == 422
    assert "context.customer" in absent.text


async def test_the_client_sends_priority_and_reads_the_422(client: httpx.AsyncClient) -> None:
    async with AsyncTaskerClient("http://testserver", http=client) as tasker:
        task = await tasker.create_task("flow", "limited", {"customer": "a"}, priority=1)
        with pytest.raises(ClientValidationError) as caught:
            await tasker.create_task("flow", "limited", {"customer": "a"}, priority=5)
    assert task["priority"] == 1
    assert "priority" in caught.value.details


REASONS = """query($id: ID!) { task(id: $id) { steps { name blockedReason {
  code key holders until } } } }"""


async def test_a_waiting_step_says_concurrency_limited_with_key_and_holders(
    client: httpx.AsyncClient, services: Services
) -> None:
    ids = []
    for _ in range(3):
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="flow", name="limited", context={"customer": "acme"})
        )
        ids.append(task.id)
    steps = [(await services.steps.get_step(i, "sync")).id for i in ids]
    assert await services.runner.claim(steps[0]) is not None
    assert await services.runner.claim(steps[1]) is not None
    assert await services.runner.claim(steps[2]) is None
    shown = await client.get(f"/tasker/tasks/{ids[2]}?include_dependencies=true")
    reason = shown.json()["dependencies"]["blocked_reasons"]["sync"]
    assert reason["code"] == "concurrency_limited" and reason["key"] == "acme"
    assert sorted(reason["holders"]) == sorted(str(s) for s in steps[:2])
    listed = await client.get(f"/tasker/tasks/{ids[2]}/workflow_steps")
    assert listed.json()["workflow_steps"][0]["blocked_reason"]["code"] == "concurrency_limited"
    data = await gql(client, REASONS, {"id": str(ids[2])})
    (step,) = data["task"]["steps"]
    assert step["blockedReason"]["code"] == "concurrency_limited"
    assert step["blockedReason"]["key"] == "acme"
    assert len(step["blockedReason"]["holders"]) == 2

    usage = await client.get("/tasker/limits", params={"handler": "flow/limited"})
    assert usage.status_code == 200, usage.text
    (row,) = usage.json()["limits"]
    assert (row["kind"], row["key"], row["limit"], row["in_use"], row["waiting"]) == (
        "step",
        "acme",
        2,
        2,
        1,
    )
    data = await gql(client, '{ limits(handler: "flow") { kind handler key inUse waiting } }', {})
    assert {"kind": "step", "handler": "limited", "key": "acme", "inUse": 2, "waiting": 1} in data[
        "limits"
    ]
    unknown = await client.get("/tasker/limits", params={"handler": "flow/nope"})
    assert unknown.status_code == 404

    metrics = (await client.get("/tasker/metrics")).text
    assert 'tasker_limit_in_use{limit="step:flow/limited/sync"} 2.0' in metrics
    assert 'tasker_limit_waiting{limit="step:flow/limited/sync"} 1.0' in metrics


async def test_discovery_shows_the_limits(client: httpx.AsyncClient) -> None:
    serial = (await client.get("/tasker/handlers/flow/serial")).json()
    assert serial["concurrency"] == {"key": "context.customer", "limit": 1, "strategy": "queue"}
    assert serial["priority"] == 3
    rated = (await client.get("/tasker/handlers/flow/rated")).json()
    assert rated["step_templates"][0]["rate_limit"] == {
        "key": "context.tenant",
        "limit": 3,
        "period": "10s",
        "period_seconds": 10.0,
    }
    data = await gql(
        client,
        """{ handler(namespace: "flow", name: "limited") { priority concurrency { limit }
             stepTemplates { concurrency { key limit strategy } rateLimit { limit } } } }""",
        {},
    )
    handler = data["handler"]
    assert handler["concurrency"] is None and handler["priority"] == 2
    assert handler["stepTemplates"][0]["concurrency"] == {
        "key": "context.customer",
        "limit": 2,
        "strategy": None,
    }


async def test_the_cli_takes_priority(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:

    cli_talks_to(client, monkeypatch)
    args = ["task", "create", "flow", "limited", "--context", '{"customer": "a"}']
    args += ["--url", "http://testserver", "--json"]

    def run(*extra: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, [*args, *extra])

    made = await asyncio.to_thread(run, "--priority", "3")
    assert made.exit_code == 0, made.output
    assert httpx.Response(200, content=made.stdout).json()["priority"] == 3
    refused = await asyncio.to_thread(run, "--priority", "7")
    assert refused.exit_code == 1
    assert "priority" in refused.stderr
