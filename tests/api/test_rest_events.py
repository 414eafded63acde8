"""`GET /tasks/{id}/events`: history replay, live following, resuming, and the end of a stream.

httpx's ASGI transport hands back a response once the app finishes it, so each request here
returns when the stream ends (the task stopped); live delivery is shown by starting the stream
before the task has run.
"""

import asyncio
import json

from tests.api.rest_support import PAYMENT, create_task, wait_until


def parse(text: str) -> list[tuple[str | None, str, str]]:
    """SSE frames as (id, event, data); comments (keepalives) dropped."""
    frames = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if fields:
            frames.append((fields.get("id"), fields.get("event", "message"), fields["data"]))
    return frames


def transitions(text: str) -> list[dict]:
    return [json.loads(data) for _, event, data in parse(text) if event == "message"]


async def test_a_finished_task_replays_its_history_then_ends(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.get(f"/tasker/tasks/{task['id']}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse(response.text)
    assert frames[-1] == (None, "end", '{"status":"complete"}')
    events = transitions(response.text)
    assert [int(i) for i, _, _ in frames[:-1]] == [e["cursor"] for e in events]
    assert events == sorted(events, key=lambda e: e["cursor"])
    assert events[0]["to_status"] == "pending" and events[0]["step_name"] is None
    assert events[-1]["step_name"] is None and events[-1]["to_status"] == "complete"
    completed = [e["step_name"] for e in events if e["to_status"] == "complete" and e["step_id"]]
    assert completed == ["validate_payment", "charge_card", "update_order", "send_confirmation"]


async def test_live_events_follow_the_replay_until_the_task_stops(client):
    context = {**PAYMENT, "simulate_sleep": {"validate_payment": 0.5}}
    task = await create_task(client, context)
    stream = asyncio.create_task(client.get(f"/tasker/tasks/{task['id']}/events"))
    await asyncio.sleep(0.1)  # subscribed while the first step still sleeps
    response = await asyncio.wait_for(stream, timeout=20)
    events = transitions(response.text)
    cursors = [e["cursor"] for e in events]
    assert cursors == sorted(set(cursors))  # no duplicates between replay and live
    assert events[-1]["to_status"] == "complete"
    assert parse(response.text)[-1][1] == "end"


async def test_last_event_id_resumes_after_that_event(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    url = f"/tasker/tasks/{task['id']}/events"
    everything = transitions((await client.get(url)).text)
    middle = everything[5]["cursor"]
    resumed = await client.get(url, headers={"Last-Event-ID": str(middle)})
    assert transitions(resumed.text) == everything[6:]
    by_query = await client.get(f"{url}?after={middle}")
    assert transitions(by_query.text) == everything[6:]


async def test_reconnecting_after_the_end_gets_204(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    url = f"/tasker/tasks/{task['id']}/events"
    last = transitions((await client.get(url)).text)[-1]["cursor"]
    response = await client.get(url, headers={"Last-Event-ID": str(last)})
    assert response.status_code == 204


async def test_cancelling_streams_the_cascade_before_the_end(client):
    task = await create_task(client, {**PAYMENT, "simulate_sleep": {"charge_card": 1}})
    stream = asyncio.create_task(client.get(f"/tasker/tasks/{task['id']}/events"))
    await asyncio.sleep(0.3)
    await client.delete(f"/tasker/tasks/{task['id']}")
    response = await asyncio.wait_for(stream, timeout=20)
    events = transitions(response.text)
    cancelled = {e["step_name"] for e in events if e["to_status"] == "cancelled"}
    assert cancelled == {None, "charge_card", "update_order", "send_confirmation"}
    assert parse(response.text)[-1] == (None, "end", '{"status":"cancelled"}')


async def test_unknown_task_and_bad_cursor_are_refused(client):
    missing = await client.get("/tasker/tasks/00000000-0000-0000-0000-000000000000/events")
    assert missing.status_code == 404
    task = await create_task(client)
    bad = await client.get(f"/tasker/tasks/{task['id']}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422
    assert "Last-Event-ID" in bad.json()["error"]["details"]
