"""POST /tasker/tasks/batch: many tasks in one request, one result per entry, in order."""

from rest_compat.batch import MAX_BATCH
from tests.api.rest_support import PAYMENT, wait_until

BATCH = "/tasker/tasks/batch"
GOOD = {"name": "process_payment", "namespace": "payments", "context": PAYMENT}


async def test_creates_every_entry_and_answers_in_input_order(client):
    body = {"tasks": [{**GOOD, "reason": f"r{i}"} for i in range(5)]}
    response = await client.post(BATCH, json=body)
    assert response.status_code == 200
    reply = response.json()
    assert [r["index"] for r in reply["results"]] == [0, 1, 2, 3, 4]
    assert {r["status"] for r in reply["results"]} == {201}
    assert (reply["created"], reply["existing"], reply["failed"]) == (5, 0, 0)
    for result in reply["results"]:
        task = result["task"]
        assert task["status"] == "pending"
        shown = await client.get(f"/tasker/tasks/{task['id']}")
        assert shown.json()["id"] == task["id"]
    # The tasks run like any other: their steps were written and dispatched.
    done = await wait_until(client, reply["results"][-1]["task"]["id"])
    assert done["status"] == "complete"


async def test_a_bad_entry_fails_alone_with_the_single_create_error(client):
    bad_context = {**GOOD, "context": {"amount": "not a number"}}
    entries = [GOOD, {"name": 3}, "text", {**GOOD, "namespace": "nope"}, bad_context, GOOD]
    reply = (await client.post(BATCH, json={"tasks": entries})).json()
    statuses = [r["status"] for r in reply["results"]]
    assert statuses == [201, 422, 422, 404, 422, 201]
    assert reply["failed"] == 4
    single = await client.post("/tasker/tasks", json=bad_context)
    assert reply["results"][4]["error"] == single.json()["error"]
    assert reply["results"][1]["error"]["code"] == "INVALID_TASK_CONFIG"
    assert "name" in reply["results"][1]["error"]["details"]
    assert "task" not in reply["results"][1]


async def test_idempotency_keys_are_honoured_per_entry(client):
    keyed = {**GOOD, "idempotency_key": "batch-1"}
    other = {**GOOD, "context": {**PAYMENT, "amount": 1.5}, "idempotency_key": "batch-1"}
    first = (await client.post(BATCH, json={"tasks": [keyed, keyed, other]})).json()
    assert [r["status"] for r in first["results"]] == [201, 200, 409]
    task_id = first["results"][0]["task"]["id"]
    assert first["results"][1]["task"]["id"] == task_id
    again = (await client.post(BATCH, json={"tasks": [keyed]})).json()
    assert again["results"][0]["status"] == 200
    assert again["results"][0]["task"]["id"] == task_id
    # The single endpoint's header and the batch's field are the same key.
    single = await client.post("/tasker/tasks", json=GOOD, headers={"Idempotency-Key": "batch-1"})
    assert (single.status_code, single.json()["id"]) == (200, task_id)


async def test_a_batch_over_the_cap_is_refused_before_any_work(client):
    before = (await client.get("/tasker/tasks")).json()["pagination"]["total_count"]
    response = await client.post(BATCH, json={"tasks": [GOOD] * (MAX_BATCH + 1)})
    assert response.status_code == 422
    assert "tasks" in response.json()["error"]["details"]
    after = (await client.get("/tasker/tasks")).json()["pagination"]["total_count"]
    assert after == before
    empty = await client.post(BATCH, json={"tasks": []})
    assert empty.status_code == 422


async def test_delayed_and_bypassing_entries_keep_their_rules(client):
    entries = [
        {**GOOD, "delay_seconds": 3600},
        {**GOOD, "bypass_steps": ["send_confirmation"]},
        {**GOOD, "run_at": "yesterday"},
    ]
    reply = (await client.post(BATCH, json={"tasks": entries})).json()
    assert [r["status"] for r in reply["results"]] == [201, 201, 422]
    assert reply["results"][0]["task"]["run_at"] is not None
    bypassed = reply["results"][1]["task"]["id"]
    step = await client.get(f"/tasker/tasks/{bypassed}/workflow_steps/send_confirmation")
    assert step.json()["status"] == "resolved_manually"
