"""Pause, resume and debounce on the surfaces: REST (+ discovery), GraphQL, the Python client
and the CLI answer alike, over the same core."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from server.app import create_app
from server.cli import main
from server.client.aio import AsyncTaskerClient
from server.container import Services
from tests.support.bridge import cli_talks_to

LINEAR = {"namespace": "shapes", "name": "linear", "context": {}}


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_rest_pause_and_resume_a_task(client: httpx.AsyncClient) -> None:
    created = (await client.post("/tasker/tasks", json=LINEAR)).json()
    assert created["paused"] is False
    for _ in range(2):  # idempotent
        paused = await client.post(f"/tasker/tasks/{created['id']}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True
    shown = await client.get(f"/tasker/tasks/{created['id']}?include_dependencies=true")
    assert shown.json()["paused"] is True
    assert shown.json()["dependencies"]["blocked_reasons"]["a"]["code"] == "paused"
    step = (await client.get(f"/tasker/tasks/{created['id']}/workflow_steps/a")).json()
    assert step["blocked_reason"]["code"] == "paused"
    for _ in range(2):
        resumed = await client.post(f"/tasker/tasks/{created['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
    missing = await client.post("/tasker/tasks/00000000-0000-0000-0000-000000000000/pause")
    assert missing.status_code == 404
    await client.delete(f"/tasker/tasks/{created['id']}")
    refused = await client.post(f"/tasker/tasks/{created['id']}/pause")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["type"] == "InvalidTransition"


async def test_rest_pause_and_resume_a_handler_and_discovery_shows_it(
    client: httpx.AsyncClient,
) -> None:
    base = "/tasker/handlers/shapes/linear"
    paused = await client.post(f"{base}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json() == {
        "namespace": "shapes",
        "name": "linear",
        "version": None,
        "paused": True,
        "paused_versions": [""],
    }
    assert (await client.get(base)).json()["paused"] is True
    listed = (await client.get("/tasker/handlers/shapes")).json()["handlers"]
    assert {h["id"]: h["paused"] for h in listed}["linear"] is True
    task = (await client.post("/tasker/tasks", json=LINEAR)).json()
    assert task["status"] == "pending" and task["paused"] is True
    resumed = await client.post(f"{base}/resume")
    assert resumed.json()["paused"] is False
    assert (await client.get(f"/tasker/tasks/{task['id']}")).json()["paused"] is False
    assert (await client.post("/tasker/handlers/shapes/nope/pause")).status_code == 404
    bad = await client.post(f"{base}/pause?version=not-semver")
    assert bad.status_code == 422, bad.text


PAUSE_TASK = """mutation($id: ID!) { pauseTask(id: $id) { __typename
  ... on Task { id paused steps { name blockedReason { code } } } ... on Error { code } } }"""
RESUME_TASK = """mutation($id: ID!) { resumeTask(id: $id) { __typename
  ... on Task { id paused } ... on Error { code } } }"""
PAUSE_HANDLER = """mutation($ns: String!, $name: String!, $version: String) {
  pauseHandler(namespace: $ns, name: $name, version: $version) { __typename
  ... on HandlerPause { paused pausedVersions } ... on Error { code } } }"""
RESUME_HANDLER = """mutation($ns: String!, $name: String!) {
  resumeHandler(namespace: $ns, name: $name) { __typename
  ... on HandlerPause { paused pausedVersions } ... on Error { code } } }"""


async def test_graphql_pause_and_resume(client: httpx.AsyncClient) -> None:
    created = (await client.post("/tasker/tasks", json=LINEAR)).json()
    paused = (await gql(client, PAUSE_TASK, {"id": created["id"]}))["pauseTask"]
    assert paused["paused"] is True
    assert {s["name"]: s["blockedReason"]["code"] for s in paused["steps"]}["a"] == "paused"
    resumed = (await gql(client, RESUME_TASK, {"id": created["id"]}))["resumeTask"]
    assert resumed["paused"] is False
    missing = await gql(client, PAUSE_TASK, {"id": "00000000-0000-0000-0000-000000000000"})
    assert missing["pauseTask"]["__typename"] == "NotFoundError"

    handler = {"ns": "shapes", "name": "linear"}
    state = (await gql(client, PAUSE_HANDLER, handler))["pauseHandler"]
    assert state == {"__typename": "HandlerPause", "paused": True, "pausedVersions": [""]}
    shown = await gql(
        client,
        'query { handler(namespace: "shapes", name: "linear") { paused } }',
        {},
    )
    assert shown["handler"]["paused"] is True
    state = (await gql(client, RESUME_HANDLER, handler))["resumeHandler"]
    assert state["paused"] is False
    unknown = await gql(client, PAUSE_HANDLER, {"ns": "shapes", "name": "nope"})
    assert unknown["pauseHandler"]["__typename"] == "HandlerNotFoundError"


async def test_the_python_client(client: httpx.AsyncClient) -> None:
    async with AsyncTaskerClient("http://testserver", http=client) as tasker:
        task = await tasker.create_task("shapes", "linear", {})
        assert (await tasker.pause_task(task["id"]))["paused"] is True
        assert (await tasker.resume_task(task["id"]))["paused"] is False
        state = await tasker.pause_handler("shapes", "linear", version="1.0.0")
        assert state["paused"] is True and state["paused_versions"] == ["1.0.0"]
        assert (await tasker.resume_handler("shapes", "linear"))["paused"] is False
        first = await tasker.create_task(
            "shapes", "linear", {"doc": 1}, debounce_key="context.doc", debounce_seconds=60
        )
        joined = await tasker.create_task(
            "shapes", "linear", {"doc": 1}, debounce_key="context.doc", debounce_seconds=60
        )
        assert joined["id"] == first["id"]


async def test_the_cli(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:

    task = (await client.post("/tasker/tasks", json=LINEAR)).json()

    cli_talks_to(client, monkeypatch)
    url = ["--url", "http://testserver"]

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, [*args, *url])

    out = await asyncio.to_thread(run, "task", "pause", task["id"])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip().endswith("paused")
    out = await asyncio.to_thread(run, "task", "resume", task["id"])
    assert out.exit_code == 0 and not out.stdout.strip().endswith("paused"), out.output
    out = await asyncio.to_thread(run, "handlers", "pause", "shapes/linear")
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "shapes/linear  paused"
    out = await asyncio.to_thread(run, "handlers", "resume", "shapes/linear")
    assert out.stdout.strip() == "shapes/linear  running"
    out = await asyncio.to_thread(run, "handlers", "pause", "no-slash")
    assert out.exit_code == 2
    created = await asyncio.to_thread(
        run,
        "task", "create", "shapes", "linear", "--context", '{"doc": 2}', "--json",
        "--debounce-key", "context.doc", "--debounce-seconds", "60",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    again = await asyncio.to_thread(
        run,
        "task", "create", "shapes", "linear", "--context", '{"doc": 2}', "--json",
        "--debounce-key", "context.doc", "--debounce-seconds", "60",
    )  # fmt: skip
    first_id = httpx.Response(200, content=created.stdout).json()["id"]
    assert httpx.Response(200, content=again.stdout).json()["id"] == first_id
