"""Workflow steps over REST: list, show (by name and by id), update, cancel, retry, resolve."""

import pytest

from tests.api.rest_support import (
    PAYMENT,
    assert_timestamps,
    create_task,
    wait_for_step,
    wait_until,
)

STEP_FIELDS = {
    "id", "task_id", "name", "status", "attempts", "retry_limit", "retryable", "skippable",
    "inputs", "results", "last_error", "error_class", "next_attempt_at", "started_at",
    "completed_at", "created_at", "updated_at", "parents", "children", "blocked_reason",
    "skipped",
    "items",
}  # fmt: skip
SLOW_CHARGE = {**PAYMENT, "simulate_sleep": {"charge_card": 1}}


def steps_url(task_id: str, step: object = None) -> str:
    base = f"/tasker/tasks/{task_id}/workflow_steps"
    return base if step is None else f"{base}/{step}"


async def test_list_gives_every_step_in_template_order(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    body = (await client.get(steps_url(task["id"]))).json()
    steps = body["workflow_steps"]
    assert [s["name"] for s in steps] == [
        "validate_payment", "charge_card", "update_order", "send_confirmation",
    ]  # fmt: skip
    for step in steps:
        assert set(step) == STEP_FIELDS
        assert step["task_id"] == task["id"]
        assert step["status"] == "complete"
        assert step["blocked_reason"] is None
    assert_timestamps(body)
    assert steps[1]["parents"] == ["validate_payment"]
    assert steps[1]["children"] == ["update_order"]
    assert (steps[1]["retryable"], steps[1]["retry_limit"]) == (True, 3)
    assert (steps[0]["retryable"], steps[0]["retry_limit"]) == (False, 0)


async def test_a_step_is_addressed_by_name_or_by_id(client):
    task = await create_task(client)
    by_name = (await client.get(steps_url(task["id"], "charge_card"))).json()
    by_id = (await client.get(steps_url(task["id"], by_name["id"]))).json()
    assert by_id["name"] == "charge_card"
    assert by_id["id"] == by_name["id"]


async def test_a_step_of_another_task_is_not_found_by_id(client):
    first, second = await create_task(client), await create_task(client)
    step_id = (await client.get(steps_url(first["id"], "charge_card"))).json()["id"]
    response = await client.get(steps_url(second["id"], step_id))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "StepNotFound"
    assert response.json()["error"]["code"] == "STEP_NOT_FOUND"


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_unknown_step_and_task_are_not_found(client, method):
    task = await create_task(client)
    missing_step = await client.request(method, steps_url(task["id"], "nope"), json={})
    assert missing_step.status_code == 404
    assert missing_step.json()["error"]["type"] == "StepNotFound"
    missing_task = await client.request(
        method, steps_url("00000000-0000-0000-0000-000000000000", "charge_card"), json={}
    )
    assert missing_task.status_code == 404
    assert missing_task.json()["error"]["type"] == "TaskNotFound"


async def test_blocked_reason_explains_a_waiting_step(client):
    task = await create_task(client, SLOW_CHARGE)
    await wait_for_step(client, task["id"], "charge_card", "in_progress")
    waiting = (await client.get(steps_url(task["id"], "update_order"))).json()
    assert waiting["blocked_reason"] == {
        "code": "waiting_on_parents",
        "message": "waiting on charge_card",
        "waiting_on": ["charge_card"],
        "until": None,
        "signal": None,
        "key": None,
        "holders": [],
    }
    running = (await client.get(steps_url(task["id"], "charge_card"))).json()
    assert running["blocked_reason"] is None
    await client.delete(f"/tasker/tasks/{task['id']}")


async def test_update_changes_retry_limit_and_inputs(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    url = steps_url(task["id"], "update_order")
    only_limit = await client.patch(url, json={"retry_limit": 7})
    assert only_limit.status_code == 200
    assert (only_limit.json()["retry_limit"], only_limit.json()["inputs"]) == (7, None)
    both = (await client.patch(url, json={"inputs": {"timeout": 30}})).json()
    assert (both["retry_limit"], both["inputs"]) == (7, {"timeout": 30})
    cleared = (await client.patch(url, json={"inputs": None})).json()
    assert cleared["inputs"] is None


@pytest.mark.parametrize("inputs", ["__main__", "", 3, [1, "a"], "{not json"])
async def test_any_json_value_is_accepted_as_inputs(client, inputs):
    # schemathesis found a plain string answered with a 500: the ORM took it for encoded JSON.
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.patch(steps_url(task["id"], "update_order"), json={"inputs": inputs})
    assert response.status_code == 200
    assert response.json()["inputs"] == inputs
    shown = await client.get(steps_url(task["id"], "update_order"))
    assert shown.json()["inputs"] == inputs


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"retry_limit": -1}, "retry_limit"),
        ({"retry_limit": 1001}, "retry_limit"),
        ({"retry_limit": "5"}, "retry_limit"),
        ({"retry_limit": 2.5}, "retry_limit"),
        ({"retry_limit": True}, "retry_limit"),
    ],
)
async def test_update_refuses_bad_values_by_field(client, body, field):
    task = await create_task(client)
    response = await client.patch(steps_url(task["id"], "charge_card"), json=body)
    assert response.status_code == 422
    assert list(response.json()["error"]["details"]) == [field]


async def test_delete_cancels_a_pending_step_and_is_idempotent(client):
    task = await create_task(client, SLOW_CHARGE)
    await wait_for_step(client, task["id"], "charge_card", "in_progress")
    first = await client.delete(steps_url(task["id"], "send_confirmation"))
    again = await client.delete(steps_url(task["id"], "send_confirmation"))
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert first.json()["blocked_reason"]["code"] == "cancelled"
    await client.delete(f"/tasker/tasks/{task['id']}")


async def test_cancelling_a_completed_step_conflicts(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.delete(steps_url(task["id"], "validate_payment"))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["type"] == "InvalidTransition"
    assert error["details"] == {"current_status": "complete", "requested_status": "cancelled"}


async def test_retry_reruns_a_failed_step(client):
    context = {**PAYMENT, "simulate_permanent_failure": "charge_card"}
    task = await create_task(client, context)
    await wait_until(client, task["id"])
    failed = (await client.get(steps_url(task["id"], "charge_card"))).json()
    assert failed["status"] == "error"
    assert failed["error_class"] is not None
    assert "simulated permanent failure" in failed["last_error"]
    response = await client.post(steps_url(task["id"], "charge_card") + "/retry")
    assert response.status_code == 200
    assert response.json()["status"] in {"pending", "in_progress", "error"}
    await wait_until(client, task["id"])
    assert (await client.get(steps_url(task["id"], "charge_card"))).json()["attempts"] == 1


async def test_retrying_a_step_that_has_not_failed_conflicts(client):
    task = await create_task(client)
    await wait_until(client, task["id"])
    response = await client.post(steps_url(task["id"], "charge_card") + "/retry")
    assert response.status_code == 409


async def test_resolving_a_failed_step_lets_the_task_finish(client):
    context = {**PAYMENT, "simulate_permanent_failure": "charge_card"}
    task = await create_task(client, context)
    assert (await wait_until(client, task["id"]))["status"] == "error"
    url = steps_url(task["id"], "charge_card") + "/resolve"
    response = await client.post(url, json={"results": {"charge_id": "manual"}, "reason": "ok"})
    assert response.status_code == 200
    assert response.json()["status"] == "resolved_manually"
    assert response.json()["results"] == {"charge_id": "manual"}
    assert (await client.post(url)).status_code == 200  # idempotent, and the body is optional
    assert (await wait_until(client, task["id"], {"complete"}))["status"] == "complete"


async def test_a_step_can_be_resolved_with_a_plain_string_as_results(client):
    context = {**PAYMENT, "simulate_permanent_failure": "charge_card"}
    task = await create_task(client, context)
    assert (await wait_until(client, task["id"]))["status"] == "error"
    url = steps_url(task["id"], "charge_card") + "/resolve"
    response = await client.post(url, json={"results": "paid by phone"})
    assert response.status_code == 200
    assert response.json()["results"] == "paid by phone"
