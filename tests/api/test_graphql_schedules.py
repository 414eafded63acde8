"""Schedules over GraphQL: the camelCase shape, each mutation, typed errors for bad input
(nothing written), and a fired task's scheduleId / scheduledFor."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from server.container import Services
from server.db.models import Schedule

SHAPE = "id name namespace handler version cron timezone context catchUp paused nextFireAt source"
CREATE = f"""mutation($input: CreateScheduleInput!) {{ createSchedule(input: $input) {{
  __typename ... on Schedule {{ {SHAPE} }}
  ... on ValidationError {{ code details {{ field messages }} }}
  ... on Error {{ code message }} }} }}"""
COMMAND = """mutation($id: ID!) {{ {name}(id: $id) {{ __typename
  ... on Schedule {{ id paused nextFireAt }} ... on Error {{ code message }} }} }}"""
UPDATE = """mutation($id: ID!, $input: UpdateScheduleInput!) {
  updateSchedule(id: $id, input: $input) {
  __typename ... on Schedule { id cron timezone catchUp }
  ... on ValidationError { code details { field messages } } ... on Error { code } } }"""
INPUT = {"name": "five", "namespace": "shapes", "handler": "linear", "cron": "*/5 * * * *"}


async def gql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_create_query_update_pause_resume_delete(client: httpx.AsyncClient) -> None:
    made = (await gql(client, CREATE, input=dict(INPUT, catchUp="ALL", context={"a": 1})))[
        "createSchedule"
    ]
    assert made["__typename"] == "Schedule"
    assert (made["catchUp"], made["paused"], made["timezone"], made["context"]) == (
        "ALL", False, "UTC", {"a": 1})  # fmt: skip
    sid = made["id"]
    listed = (await gql(client, f"{{ schedules {{ {SHAPE} }} }}"))["schedules"]
    assert listed == [{k: v for k, v in made.items() if k != "__typename"}]
    one = await gql(client, "query($id: ID!) { schedule(id: $id) { id name } }", id=sid)
    assert one["schedule"] == {"id": sid, "name": "five"}
    changed = await gql(client, UPDATE, id=sid, input={"timezone": "Asia/Tokyo"})
    assert changed["updateSchedule"]["timezone"] == "Asia/Tokyo"
    paused = await gql(client, COMMAND.format(name="pauseSchedule"), id=sid)
    assert paused["pauseSchedule"]["paused"] is True
    resumed = await gql(client, COMMAND.format(name="resumeSchedule"), id=sid)
    assert resumed["resumeSchedule"]["paused"] is False
    deleted = await gql(client, COMMAND.format(name="deleteSchedule"), id=sid)
    assert deleted["deleteSchedule"]["__typename"] == "Schedule"
    gone = await gql(client, COMMAND.format(name="pauseSchedule"), id=sid)
    assert gone["pauseSchedule"] == {
        "__typename": "NotFoundError",
        "code": "SCHEDULE_NOT_FOUND",
        "message": f"Schedule '{sid}' not found",
    }
    assert (await gql(client, "query($id: ID!) { schedule(id: $id) { id } }", id=sid)) == {
        "schedule": None
    }


async def test_bad_input_is_a_typed_error_and_writes_nothing(client: httpx.AsyncClient) -> None:
    bad = await gql(client, CREATE, input=dict(INPUT, cron="* * *", timezone="Nope/Nope"))
    result = bad["createSchedule"]
    assert result["__typename"] == "ValidationError"
    assert {d["field"] for d in result["details"]} == {"cron", "timezone"}
    missing = (await gql(client, CREATE, input=dict(INPUT, handler="nope")))["createSchedule"]
    assert missing["__typename"] == "HandlerNotFoundError"
    assert await Schedule.all().count() == 0
    await gql(client, CREATE, input=INPUT)
    again = (await gql(client, CREATE, input=INPUT))["createSchedule"]
    assert again["__typename"] == "ConflictError"


async def test_a_fired_task_shows_its_schedule_and_tick(
    client: httpx.AsyncClient, engine: Services
) -> None:
    made = (await gql(client, CREATE, input=INPUT))["createSchedule"]
    due = datetime.now(UTC) - timedelta(minutes=6)
    await Schedule.filter(id=made["id"]).update(next_fire_at=due)
    await engine.schedules.fire_due()
    tasks = await gql(
        client, '{ tasks(namespace: "shapes") { edges { node { id scheduleId scheduledFor } } } }'
    )
    fired = [e["node"] for e in tasks["tasks"]["edges"] if e["node"]["scheduleId"] == made["id"]]
    assert len(fired) == 1
    assert fired[0]["scheduledFor"]
