"""Signals and waiting steps on every surface: REST, GraphQL, the Python client and the CLI.

The engine runs for real (embedded workers); the waits are an hour long, so each test sends
the signal that ends them.
"""

import asyncio
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from click.testing import CliRunner

from server.cli import main
from server.client.aio import AsyncTaskerClient
from server.client.errors import ValidationError as ClientValidationError
from server.container import Services
from server.domain.states import StepState, TaskState
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import WORKFLOWS, on_every_store
from tests.integration.test_waits import WAITS
from tests.support.bridge import cli_talks_to
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

APPROVAL = {"namespace": "waits", "name": "approval", "context": {}}


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    yield HandlerRegistry.load([WORKFLOWS, WAITS], examples=True)


async def parked(client: httpx.AsyncClient, task_id: str, step: str = "approve") -> dict[str, Any]:
    """The step once it waits for its signal (its blocked reason says so)."""
    for _ in range(300):
        shown = (await client.get(f"/tasker/tasks/{task_id}/workflow_steps/{step}")).json()
        reason = shown.get("blocked_reason") or {}
        if reason.get("code") == "waiting_for_signal":
            return shown
        await asyncio.sleep(0.02)
    raise AssertionError(f"{step} never waited: {shown}")


async def test_rest_signal_completes_the_wait_and_answers_repeats_alike(
    client: httpx.AsyncClient, engine: Services
) -> None:
    created = (await client.post("/tasker/tasks", json=APPROVAL)).json()
    tid = created["id"]
    step = await parked(client, tid)
    reason = step["blocked_reason"]
    assert reason["signal"] == "approved" and reason["until"] is not None
    deps = (await client.get(f"/tasker/tasks/{tid}?include_dependencies=true")).json()
    assert deps["dependencies"]["blocked_reasons"]["approve"]["code"] == "waiting_for_signal"

    url = f"/tasker/tasks/{tid}/signals/approved"
    body = {"payload": {"approved": True}, "signal_id": "ticket-7"}
    first = await client.post(url, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["consumed_by"] == "approve"
    again = await client.post(url, json={**body, "payload": {"approved": False}})
    assert again.status_code == 200
    assert again.json() == first.json()

    done = await wait_for_task(engine, created_id(created))
    assert done.status is TaskState.COMPLETE
    approve = await engine.steps.get_step(done.id, "approve")
    assert (approve.status, approve.results) == (StepState.COMPLETE, {"approved": True})
    events = (await client.get(f"/tasker/tasks/{tid}/events", params={"after": 0})).text
    assert "signal" in events

    late = await client.post(url, json={})
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "CONFLICT"


def created_id(created: dict[str, Any]) -> UUID:
    return UUID(created["id"])


async def test_rest_refuses_unknown_signals_tasks_and_payloads(client: httpx.AsyncClient) -> None:
    tid = (await client.post("/tasker/tasks", json=APPROVAL)).json()["id"]
    unknown = await client.post(f"/tasker/tasks/{tid}/signals/rejected", json={})
    assert unknown.status_code == 422
    assert "name" in str(unknown.json())
    bad = await client.post(f"/tasker/tasks/{tid}/signals/approved", json={"payload": [1]})
    assert bad.status_code == 422
    missing = await client.post(
        "/tasker/tasks/00000000-0000-0000-0000-000000000000/signals/approved", json={}
    )
    assert missing.status_code == 404
    assert (await client.post(f"/tasker/tasks/{tid}/signals/approved")).status_code == 201


SEND = """mutation($id: ID!, $name: String!, $payload: JSON, $signalId: String) {
  sendSignal(taskId: $id, name: $name, payload: $payload, signalId: $signalId) {
    __typename
    ... on Signal { name signalId payload consumedBy repeated }
    ... on Error { code message }
    ... on ValidationError { details { field messages } } } }"""

STEPS = """query($id: ID!) { task(id: $id) { steps { name status
  blockedReason { code signal until } } } }"""


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_graphql_send_signal_and_its_typed_errors(
    client: httpx.AsyncClient, engine: Services
) -> None:
    tid = (await client.post("/tasker/tasks", json=APPROVAL)).json()["id"]
    await parked(client, tid)
    steps = (await gql(client, STEPS, {"id": tid}))["task"]["steps"]
    reason = next(s for s in steps if s["name"] == "approve")["blockedReason"]
    assert (reason["code"], reason["signal"]) == ("waiting_for_signal", "approved")

    wrong = (await gql(client, SEND, {"id": tid, "name": "nope"}))["sendSignal"]
    assert wrong["__typename"] == "ValidationError"
    sent = (await gql(client, SEND, {"id": tid, "name": "approved", "payload": {"ok": 1}}))[
        "sendSignal"
    ]
    assert sent["__typename"] == "Signal"
    assert (sent["consumedBy"], sent["payload"], sent["repeated"]) == ("approve", {"ok": 1}, False)
    done = await wait_for_task(engine, created_id({"id": tid}))
    assert done.status is TaskState.COMPLETE
    finished = (await gql(client, SEND, {"id": tid, "name": "approved"}))["sendSignal"]
    assert finished["__typename"] == "ConflictError"
    missing = (
        await gql(client, SEND, {"id": "00000000-0000-0000-0000-000000000000", "name": "approved"})
    )["sendSignal"]
    assert missing["__typename"] == "NotFoundError"


async def test_the_python_client_sends_signals(client: httpx.AsyncClient, engine: Services) -> None:
    async with AsyncTaskerClient("http://testserver", http=client) as tasker:
        task = await tasker.create_task("waits", "approval", {})
        early = await tasker.send_signal(task["id"], "approved", {"by": "client"}, signal_id="x")
        assert early["signal_id"] == "x"
        with pytest.raises(ClientValidationError):
            await tasker.send_signal(task["id"], "unknown")
    done = await wait_for_task(engine, created_id(task))
    assert done.status is TaskState.COMPLETE
    assert (await engine.steps.get_step(done.id, "approve")).results == {"by": "client"}


async def test_the_cli_sends_a_signal(
    client: httpx.AsyncClient, engine: Services, monkeypatch: pytest.MonkeyPatch
) -> None:

    cli_talks_to(client, monkeypatch)
    tid = (await client.post("/tasker/tasks", json=APPROVAL)).json()["id"]
    await parked(client, tid)

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["task", "signal", *args, "--url", "http://testserver"])

    bad = await asyncio.to_thread(run, tid, "approved", "--payload", "[1]")
    assert bad.exit_code != 0
    ok = await asyncio.to_thread(
        run, tid, "approved", "--payload", '{"approved": true}', "--signal-id", "cli-1"
    )
    assert ok.exit_code == 0, ok.output
    assert "completed step approve" in ok.stdout
    done = await wait_for_task(engine, created_id({"id": tid}))
    assert done.status is TaskState.COMPLETE
