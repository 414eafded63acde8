"""Schedules over REST: the shape, each command, bad input as 422 naming the field (nothing
written), an unknown id as 404, and a fired task's `schedule_id` / `scheduled_for`."""

from datetime import UTC, datetime, timedelta

import httpx

from server.container import Services
from server.db.models import Schedule
from tests.api.rest_support import ISO_Z

S = "/tasker/schedules"
BODY = {"name": "five", "namespace": "shapes", "handler": "linear", "cron": "*/5 * * * *"}
KEYS = {"id", "name", "namespace", "handler", "version", "cron", "timezone", "context",
        "catch_up", "paused", "next_fire_at", "source"}  # fmt: skip


async def test_create_show_list_change_pause_resume_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(S, json=dict(BODY, context={"k": 1}, timezone="Europe/Paris"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == KEYS
    assert (body["catch_up"], body["paused"], body["source"], body["version"]) == (
        "latest", False, "api", None)  # fmt: skip
    assert ISO_Z.match(body["next_fire_at"])
    one = f"{S}/{body['id']}"
    assert (await client.get(one)).json() == body
    listed = (await client.get(S, params={"namespace": "shapes"})).json()["schedules"]
    assert [s["id"] for s in listed] == [body["id"]]
    changed = await client.patch(one, json={"cron": "0 * * * *", "catch_up": "all"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["cron"], changed.json()["catch_up"]) == ("0 * * * *", "all")
    assert (await client.post(f"{one}/pause")).json()["paused"] is True
    assert (await client.post(f"{one}/pause")).json()["paused"] is True
    assert (await client.post(f"{one}/resume")).json()["paused"] is False
    assert (await client.delete(one)).status_code == 200
    missing = await client.get(one)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "SCHEDULE_NOT_FOUND"


async def test_bad_cron_or_time_zone_is_422_and_nothing_is_written(
    client: httpx.AsyncClient,
) -> None:
    bad = await client.post(S, json=dict(BODY, cron="61 * * * *", timezone="Mars/Base"))
    assert bad.status_code == 422, bad.text
    assert set(bad.json()["error"]["details"]) == {"cron", "timezone"}
    assert bad.json()["error"]["type"] == "ValidationError"
    assert await Schedule.all().count() == 0
    unknown = await client.post(S, json=dict(BODY, handler="nope"))
    assert unknown.status_code == 404
    first = await client.post(S, json=BODY)
    assert (await client.post(S, json=BODY)).status_code == 409
    patch = await client.patch(f"{S}/{first.json()['id']}", json={"timezone": "Nowhere"})
    assert patch.status_code == 422
    assert (await client.get(f"{S}/not-a-uuid")).status_code == 404


async def test_a_fired_task_says_which_schedule_and_tick(
    client: httpx.AsyncClient, engine: Services
) -> None:
    created = (await client.post(S, json=dict(BODY, cron="* * * * * *"))).json()
    start = datetime.now(UTC)
    # Moved back in the database, as after a few seconds of downtime: the next pass fires.
    await Schedule.filter(id=created["id"]).update(next_fire_at=start - timedelta(seconds=3))
    await engine.schedules.fire_due()
    tasks = (await client.get("/tasker/tasks", params={"namespace": "shapes"})).json()["tasks"]
    fired = [t for t in tasks if t.get("schedule_id") == created["id"]]
    assert len(fired) == 1  # catch_up latest: one task for the missed ticks
    assert ISO_Z.match(fired[0]["scheduled_for"])
    shown = (await client.get(f"/tasker/tasks/{fired[0]['id']}")).json()
    assert shown["schedule_id"] == created["id"]


async def test_nulls_in_a_patch_leave_fields_alone(client: httpx.AsyncClient) -> None:
    made = (await client.post(S, json=dict(BODY, version="1.0.0"))).json()
    patched = await client.patch(
        f"{S}/{made['id']}",
        json={"name": None, "cron": None, "timezone": None, "context": None, "version": None},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["cron"], body["timezone"], body["version"]) == (
        "five", "*/5 * * * *", "UTC", None)  # fmt: skip


async def test_a_namespace_filter_with_a_nul_is_422_not_a_database_error(
    client: httpx.AsyncClient,
) -> None:
    # PostgreSQL cannot take a NUL in text: the filter is refused before the query.
    listed = await client.get("/tasker/schedules", params={"namespace": "\x00ns"})
    assert listed.status_code == 422, listed.text
    assert listed.json()["error"]["code"] == "VALIDATION_ERROR"
