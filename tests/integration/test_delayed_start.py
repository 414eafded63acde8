"""Delayed start: a task created with `run_at` or `delay_seconds` stays pending, its steps
`scheduled`, until then; no claim gets through before it, and it starts by itself after.

On every step store. Where time matters and nothing runs, a virtual clock moves; where the
embedded engine must start the task by itself, the delay is short and real.
"""

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from server.cli import main
from server.client.aio import AsyncTaskerClient
from server.client.errors import ValidationError as ClientValidationError
from server.container import Services
from server.db.models import WorkflowStep
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask, TaskView
from server.testing import VirtualClock
from tests.conftest import on_every_store
from tests.support.bridge import cli_talks_to
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

LINEAR = {"namespace": "shapes", "name": "linear", "context": {}}
HOUR = 3600


class Recorder:
    """A broker that keeps what it is asked to send, and sends nothing."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float]] = []

    def dispatch(self, step_ids, delay_seconds=0.0, priority=2, limited=False):  # type: ignore[no-untyped-def]
        self.sent.extend((i, delay_seconds) for i in step_ids)

    def backlog(self) -> int:
        return 0


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


CREATE = """mutation($input: CreateTaskInput!) { createTask(input: $input) { __typename
  ... on Task { id status runAt steps { name status blockedReason { code until } } }
  ... on Error { code message }
  ... on ValidationError { details { field messages } } } }"""


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def delayed_an_hour(services: Services) -> tuple[VirtualClock, Recorder, TaskView]:
    """A LINEAR task created to start in an hour, on a clock the test moves and a dispatcher
    that only records what it is asked to send."""
    clock = VirtualClock()
    services.changes.clock = clock
    recorder = Recorder()
    services.set_dispatcher(recorder)
    task, _ = await services.tasks.create_task(CreateTask(**LINEAR, delay_seconds=HOUR))
    return clock, recorder, task


# --- the engine ----------------------------------------------------------------------------


async def test_no_claim_gets_through_before_the_start_and_the_sweeper_sends_it_once_due(
    services: Services,
) -> None:
    clock, recorder, task = await delayed_an_hour(services)
    assert task.status is TaskState.PENDING
    assert task.run_at is not None
    assert abs((task.run_at - clock.now()).total_seconds() - HOUR) < 5
    root = await services.steps.get_step(task.id, "a")
    # The root step is sent once, as a message delayed until the start.
    assert len(recorder.sent) == 1
    assert recorder.sent[0][0] == root.id
    assert abs(recorder.sent[0][1] - HOUR) < 5

    deps = await services.tasks.dependencies(task.id)
    reason = deps.reasons["a"]
    assert (reason.code, reason.until) == ("scheduled", task.run_at)

    # A duplicate or stale message before the start: refused, nothing moves.
    assert await services.runner.claim(root.id) is None
    clock.advance_to(task.run_at - timedelta(minutes=1))
    assert await services.runner.claim(root.id) is None
    # ...and the sweeper does not re-send it early (its stamp is the start time).
    recorder.sent.clear()
    assert await services.sweeper.redispatch_idle() == 0
    assert recorder.sent == []
    assert (await services.tasks.get_task(task.id)).status is TaskState.PENDING
    assert (await services.steps.get_step(task.id, "a")).status is StepState.PENDING

    # The delayed message was lost: once due, the sweeper sends it, and the claim succeeds.
    clock.advance_to(task.run_at + timedelta(seconds=5))
    assert await services.sweeper.redispatch_idle() == 1
    assert [i for i, _ in recorder.sent] == [root.id]
    claim = await services.runner.claim(root.id)
    assert claim is not None
    assert (await services.tasks.get_task(task.id)).status is TaskState.IN_PROGRESS


async def test_a_step_resolved_by_hand_before_the_start_sends_its_children_delayed(
    services: Services,
) -> None:
    clock, recorder, task = await delayed_an_hour(services)
    assert task.run_at is not None
    recorder.sent.clear()
    await services.steps.resolve_step(task.id, "a", results={"by": "hand"})
    child = await services.steps.get_step(task.id, "b")
    assert len(recorder.sent) == 1 and recorder.sent[0][0] == child.id
    assert abs(recorder.sent[0][1] - HOUR) < 5  # delayed until the start, not at once
    assert await services.runner.claim(child.id) is None
    clock.advance_to(task.run_at - timedelta(minutes=1))
    assert await services.sweeper.redispatch_idle() == 0  # no re-send before the start
    clock.advance_to(task.run_at + timedelta(seconds=5))
    assert await services.runner.claim(child.id) is not None


async def test_a_past_run_at_starts_at_once(services: Services) -> None:
    recorder = Recorder()
    services.set_dispatcher(recorder)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    task, _ = await services.tasks.create_task(CreateTask(**LINEAR, run_at=past))
    assert task.run_at is None
    root = await services.steps.get_step(task.id, "a")
    assert recorder.sent == [(root.id, 0.0)]
    assert await services.runner.claim(root.id) is not None


async def test_a_delayed_task_starts_by_itself(engine: Services) -> None:
    task, _ = await engine.tasks.create_task(CreateTask(**LINEAR, delay_seconds=1))
    assert task.run_at is not None
    await asyncio.sleep(0.3)
    assert (await engine.tasks.get_task(task.id)).status is TaskState.PENDING
    done = await wait_for_task(engine, task.id)
    assert done.status is TaskState.COMPLETE
    first = await engine.steps.get_step(task.id, "a")
    assert first.started_at is not None and first.started_at >= task.run_at
    # Started by its delayed message: a lost one is re-sent only once its stamp (the start)
    # is `redispatch_after` (1 s here) old.
    assert (first.started_at - task.run_at).total_seconds() < 1.0


async def test_the_sweeper_starts_it_when_the_delayed_message_is_lost(engine: Services) -> None:
    broker = engine.changes.dispatcher
    engine.set_dispatcher(Recorder())  # the delayed message goes nowhere
    try:
        task, _ = await engine.tasks.create_task(CreateTask(**LINEAR, delay_seconds=0.5))
    finally:
        engine.set_dispatcher(broker)
    done = await wait_for_task(engine, task.id)
    assert done.status is TaskState.COMPLETE
    first = await engine.steps.get_step(task.id, "a")
    assert task.run_at is not None and first.started_at is not None
    assert first.started_at >= task.run_at


# --- REST and GraphQL ----------------------------------------------------------------------


async def test_rest_create_with_a_delay_shows_scheduled(client: httpx.AsyncClient) -> None:
    response = await client.post("/tasker/tasks", json={**LINEAR, "delay_seconds": HOUR})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "pending"
    run_at = parse(created["run_at"])
    assert abs((run_at - datetime.now(UTC)).total_seconds() - HOUR) < 10

    shown = (await client.get(f"/tasker/tasks/{created['id']}?include_dependencies=true")).json()
    assert shown["status"] == "pending"
    assert shown["run_at"] == created["run_at"]
    assert shown["dependencies"]["analysis"].startswith("Task is scheduled to start at ")
    reason = shown["dependencies"]["blocked_reasons"]["a"]
    assert reason["code"] == "scheduled"
    assert reason["until"] == created["run_at"]
    step = (await client.get(f"/tasker/tasks/{created['id']}/workflow_steps/a")).json()
    assert step["status"] == "pending"
    assert step["blocked_reason"]["code"] == "scheduled"
    # A second step waits on its parent, as before.
    later = (await client.get(f"/tasker/tasks/{created['id']}/workflow_steps/b")).json()
    assert later["blocked_reason"]["code"] == "waiting_on_parents"


async def test_graphql_create_with_run_at_shows_scheduled(client: httpx.AsyncClient) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    # Another offset, the same instant.
    given = start.astimezone(timezone(timedelta(hours=2))).isoformat()
    data = await gql(client, CREATE, {"input": {**LINEAR, "runAt": given}})
    task = data["createTask"]
    assert task["__typename"] == "Task", task
    assert task["status"] == "PENDING"
    assert parse(task["runAt"]) == start
    reasons = {s["name"]: s["blockedReason"] for s in task["steps"]}
    assert reasons["a"]["code"] == "scheduled"
    assert parse(reasons["a"]["until"]) == start


BAD = [
    pytest.param({"run_at": "2030-01-01T00:00:00Z", "delay_seconds": 5}, "run_at", id="both"),
    pytest.param({"delay_seconds": -1}, "delay_seconds", id="negative delay"),
    pytest.param({"delay_seconds": 10 * 366 * 86400}, "delay_seconds", id="delay over a year"),
    pytest.param({"run_at": "next tuesday"}, "run_at", id="not ISO 8601"),
    pytest.param({"run_at": "2030-01-01T00:00:00"}, "run_at", id="no time zone"),
    pytest.param({"run_at": "2999-01-01T00:00:00Z"}, "run_at", id="run_at over a year"),
]


@pytest.mark.parametrize(("fields", "field"), BAD)
async def test_a_bad_start_is_refused_alike_on_rest_and_graphql(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str
) -> None:
    response = await client.post("/tasker/tasks", json={**LINEAR, **fields})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_TASK_CONFIG"
    assert field in error["details"], error

    camel = {"run_at": "runAt", "delay_seconds": "delaySeconds"}
    variables = {"input": {**LINEAR, **{camel[k]: v for k, v in fields.items()}}}
    result = (await gql(client, CREATE, variables))["createTask"]
    assert result["__typename"] == "ValidationError", result
    assert result["code"] == error["code"]
    assert {d["field"]: d["messages"] for d in result["details"]} == error["details"]

    assert (await client.get("/tasker/tasks")).json()["pagination"]["total_count"] == 0


# --- the Python client and the CLI ---------------------------------------------------------


async def test_the_python_client_creates_a_delayed_task(client: httpx.AsyncClient) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    async with AsyncTaskerClient("http://testserver", http=client) as tasker:
        by_delay = await tasker.create_task("shapes", "linear", {}, delay_seconds=HOUR)
        by_time = await tasker.create_task("shapes", "linear", {}, run_at=start)
        with pytest.raises(ClientValidationError) as caught:
            await tasker.create_task("shapes", "linear", {}, delay_seconds=-5)
        shown = await tasker.get_task(by_time["id"], include_dependencies=True)
    assert by_delay["run_at"] is not None
    assert parse(by_time["run_at"]) == start
    assert shown["dependencies"]["blocked_reasons"]["a"]["code"] == "scheduled"
    assert caught.value.code == "INVALID_TASK_CONFIG"
    assert "delay_seconds" in caught.value.details


async def test_the_cli_creates_a_delayed_task(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:

    cli_talks_to(client, monkeypatch)
    args = ["task", "create", "shapes", "linear", "--url", "http://testserver", "--json"]

    def run(*extra: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, [*args, *extra])

    delayed = await asyncio.to_thread(run, "--delay", str(HOUR))
    assert delayed.exit_code == 0, delayed.output
    created = httpx.Response(200, content=delayed.stdout).json()
    assert created["status"] == "pending" and created["run_at"] is not None

    start = "2099-01-01T00:00:00Z"
    refused = await asyncio.to_thread(run, "--run-at", start)
    assert refused.exit_code == 1
    assert "run_at" in refused.stderr and "INVALID_TASK_CONFIG" in refused.stderr

    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    timed = await asyncio.to_thread(run, "--run-at", at.isoformat())
    assert timed.exit_code == 0, timed.output
    assert parse(httpx.Response(200, content=timed.stdout).json()["run_at"]) == at
    assert await WorkflowStep.filter(status=StepState.IN_PROGRESS.value).count() == 0
