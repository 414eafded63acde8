"""A time with any offset ISO 8601 allows is taken, on every surface and both backends.

A filter bound that leaves the calendar once in UTC is the calendar's first or last moment.

Python parses offsets up to ±23:59, PostgreSQL stores up to ±15:59: `+16:51` passed
validation and reached the database as written, a 500 there and a 200 on SQLite (found by
schemathesis on `POST /tasker/tasks/bulk/cancel`). The core converts every time to UTC first.
"""

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.rest_support import PAYMENT

FAR_OFFSET = "+16:51"
BULK_CANCEL = """mutation($filter: TaskFilter!) { bulkCancelTasks(filter: $filter) {
  __typename ... on BulkResult { count } ... on ValidationError { details { field } } } }"""


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize(
    ("moment", "status"),
    [
        ("0279-02-08T07:07:01" + FAR_OFFSET, 200),
        ("2026-02-08T07:07:01-18:30", 200),
        # Before year 1 in UTC, after year 9999: the calendar's first or last moment, as
        # schemathesis expects of a valid date-time (no task is created before or after it).
        ("0001-01-01T00:00:00" + FAR_OFFSET, 200),
        ("0001-01-01T00:01:00+00:03", 200),
        ("9999-12-31T23:59:59-00:01", 200),
        ("2026-02-08T07:07:01", 422),  # no time zone
    ],
)
async def test_a_bulk_filter_time_with_a_far_offset(client, field, moment, status):
    body = {"filter": {field: moment, "namespace": "nowhere"}, "limit": 10}
    rest = await client.post("/tasker/tasks/bulk/cancel", json=body)
    assert rest.status_code == status, rest.text
    gql = await client.post(
        "/tasker/graphql",
        json={"query": BULK_CANCEL, "variables": {"filter": {_camel(field): moment}}},
    )
    answer = gql.json()["data"]["bulkCancelTasks"]
    expected = "BulkResult" if status == 200 else "ValidationError"
    assert answer["__typename"] == expected, answer


async def test_a_run_at_with_a_far_offset_is_the_same_instant_in_utc(client):
    later = datetime.now(UTC) + timedelta(hours=2)
    offset = timedelta(hours=16, minutes=51)
    written = (later + offset).replace(tzinfo=None).isoformat(timespec="seconds") + FAR_OFFSET
    body = {"namespace": "payments", "name": "process_payment", "context": PAYMENT}
    created = await client.post("/tasker/tasks", json={**body, "run_at": written})
    assert created.status_code == 201, created.text
    task = (await client.get(f"/tasker/tasks/{created.json()['id']}")).json()
    stored = datetime.fromisoformat(task["run_at"])
    assert abs((stored - later).total_seconds()) < 2
    assert stored.utcoffset() == timedelta(0)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def test_a_filter_bound_before_the_calendar_is_its_first_moment(client):
    body = {"namespace": "payments", "name": "process_payment", "context": PAYMENT}
    created = await client.post("/tasker/tasks", json={**body, "run_at": _in_an_hour()})
    assert created.status_code == 201, created.text
    before_year_one = "0001-01-01T00:01:00+00:03"  # 0000-12-31T23:58 in UTC
    none = {"filter": {"namespace": "payments", "created_before": before_year_one}}
    every = {"filter": {"namespace": "payments", "created_after": before_year_one}}
    answer = await client.post("/tasker/tasks/bulk/cancel", json=none)
    assert answer.status_code == 200 and answer.json()["count"] == 0, answer.text
    answer = await client.post("/tasker/tasks/bulk/cancel", json=every)
    assert answer.status_code == 200 and answer.json()["count"] == 1, answer.text


def _in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def test_a_run_at_before_the_calendar_in_utc_runs_at_once(client):
    body = {"namespace": "payments", "name": "process_payment", "context": PAYMENT}
    created = await client.post("/tasker/tasks", json={**body, "run_at": "0001-01-01T00:01+00:03"})
    assert created.status_code == 201, created.text
    assert created.json()["run_at"] is None
