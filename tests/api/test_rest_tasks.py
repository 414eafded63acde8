"""Tasks over REST: create (with idempotency), list (filters, pagination), show, commands."""

import math

import pytest

from tests.api.rest_support import PAYMENT, create_task, wait_for_step, wait_until

# Long enough to observe the step running; teardown waits for it to finish.
SLOW_CHARGE = {**PAYMENT, "simulate_sleep": {"charge_card": 1}}
FAILING_CHARGE = {**PAYMENT, "simulate_permanent_failure": "charge_card"}


class TestCreate:
    async def test_version_defaults_to_the_latest(self, client):
        task = await create_task(
            client,
            version=None,
            name="send_email",
            namespace="notifications",
            context={"recipient": "a@example.com"},
        )
        assert task["version"] == "1.10.0"  # by semver, not 1.9.0 as text would sort

    async def test_extra_fields_are_recorded(self, client):
        task = await create_task(
            client,
            initiator="ops",
            source_system="billing",
            reason="month end",
            tags=["urgent"],
            bypass_steps=["send_confirmation"],
        )
        await wait_until(client, task["id"])
        record = (await client.patch(f"/tasker/tasks/{task['id']}", json={})).json()
        assert record["initiator"] == "ops"
        assert record["source_system"] == "billing"
        assert record["reason"] == "month end"
        assert record["tags"] == ["urgent"]
        assert record["bypass_steps"] == ["send_confirmation"]
        step = await client.get(f"/tasker/tasks/{task['id']}/workflow_steps/send_confirmation")
        assert step.json()["status"] == "resolved_manually"

    async def test_repeated_idempotency_key_returns_the_same_task(self, client):
        body = {"name": "process_payment", "namespace": "payments", "context": PAYMENT}
        headers = {"Idempotency-Key": "order-42"}
        first = await client.post("/tasker/tasks", json=body, headers=headers)
        again = await client.post("/tasker/tasks", json=body, headers=headers)
        assert first.status_code == 201
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]

    async def test_idempotency_key_reused_with_another_body_conflicts(self, client):
        headers = {"Idempotency-Key": "order-43"}
        body = {"name": "process_payment", "namespace": "payments", "context": PAYMENT}
        await client.post("/tasker/tasks", json=body, headers=headers)
        body["context"] = {**PAYMENT, "amount": 1.0}
        response = await client.post("/tasker/tasks", json=body, headers=headers)
        assert response.status_code == 409
        assert response.json()["error"]["type"] == "Conflict"

    async def test_context_is_checked_against_the_handler_schema(self, client):
        response = await client.post(
            "/tasker/tasks",
            json={"name": "process_payment", "namespace": "payments", "context": {"amount": -1}},
        )
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "INVALID_TASK_CONFIG"
        assert "context.payment_id" in error["details"]
        assert "context.amount" in error["details"]

    async def test_unknown_bypass_step_is_refused(self, client):
        response = await client.post(
            "/tasker/tasks",
            json={
                "name": "process_payment",
                "namespace": "payments",
                "context": PAYMENT,
                "bypass_steps": ["charge_card", "nope"],
            },
        )
        assert response.status_code == 422
        assert len(response.json()["error"]["details"]["bypass_steps"]) == 2

    @pytest.mark.parametrize(
        ("body", "status", "type_"),
        [
            ({"name": "nope", "namespace": "payments"}, 404, "HandlerNotFound"),
            ({"name": "process_payment", "namespace": "nope"}, 404, "NamespaceNotFound"),
            (
                {"name": "process_payment", "namespace": "payments", "version": "9.9.9"},
                404,
                "HandlerNotFound",
            ),
        ],
    )
    async def test_unknown_handler_is_not_found(self, client, body, status, type_):
        response = await client.post("/tasker/tasks", json={**body, "context": PAYMENT})
        assert response.status_code == status
        assert response.json()["error"]["type"] == type_


class TestList:
    async def test_pagination_arithmetic(self, client):
        for _ in range(7):
            await create_task(client)
        for page, per_page, count in [(1, 3, 3), (2, 3, 3), (3, 3, 1), (4, 3, 0), (1, 25, 7)]:
            body = (await client.get(f"/tasker/tasks?page={page}&per_page={per_page}")).json()
            assert len(body["tasks"]) == count
            assert body["pagination"] == {
                "current_page": page,
                "per_page": per_page,
                "total_pages": math.ceil(7 / per_page),
                "total_count": 7,
            }

    async def test_pages_do_not_overlap_and_are_newest_first(self, client):
        ids = [(await create_task(client))["id"] for _ in range(5)]
        seen = []
        for page in (1, 2, 3):
            body = (await client.get(f"/tasker/tasks?page={page}&per_page=2")).json()
            seen += [t["id"] for t in body["tasks"]]
        assert seen == list(reversed(ids))

    async def test_default_page_size_is_25_and_the_cap_is_100(self, client):
        body = (await client.get("/tasker/tasks")).json()
        assert body["pagination"]["per_page"] == 25
        assert body["pagination"]["current_page"] == 1
        body = (await client.get("/tasker/tasks?per_page=500")).json()
        assert body["pagination"]["per_page"] == 100

    async def test_each_filter(self, client):
        slow = await create_task(client, SLOW_CHARGE)
        done = await create_task(client)
        email = await create_task(
            client,
            {"recipient": "a@example.com"},
            name="send_email",
            namespace="notifications",
            version="1.9.0",
        )
        await wait_until(client, done["id"])
        await wait_until(client, email["id"])
        await wait_for_step(client, slow["id"], "charge_card", "in_progress")

        async def ids(query: str) -> set[str]:
            body = (await client.get(f"/tasker/tasks?{query}")).json()
            assert body["pagination"]["total_count"] == len(body["tasks"])
            return {t["id"] for t in body["tasks"]}

        assert await ids("namespace=payments") == {slow["id"], done["id"]}
        assert await ids("namespace=notifications") == {email["id"]}
        assert await ids("name=send_email") == {email["id"]}
        assert await ids("version=1.9.0") == {email["id"]}
        assert await ids("version=2.1.0") == {slow["id"], done["id"]}
        assert await ids("status=in_progress") == {slow["id"]}
        assert await ids("status=complete") == {done["id"], email["id"]}
        assert await ids("namespace=payments&status=complete") == {done["id"]}
        assert await ids("namespace=nowhere") == set()
        await client.delete(f"/tasker/tasks/{slow['id']}")


class TestShow:
    async def test_plain_show_has_only_the_seed_fields(self, client):
        task = await create_task(client)
        body = (await client.get(f"/tasker/tasks/{task['id']}")).json()
        assert set(body) == set(task)

    async def test_dependencies_of_a_running_task(self, client):
        task = await create_task(client, SLOW_CHARGE)
        await wait_for_step(client, task["id"], "charge_card", "in_progress")
        url = f"/tasker/tasks/{task['id']}?include_dependencies=true"
        body = (await client.get(url)).json()
        deps = body["dependencies"]
        assert deps["analysis"] == "Task is progressing normally through dependency chain"
        assert deps["completed_steps"] == ["validate_payment"]
        assert deps["ready_steps"] == ["charge_card"]
        blocked = deps["blocked_reasons"]
        assert deps["blocked_steps"] == list(blocked) == ["update_order", "send_confirmation"]
        assert blocked["update_order"]["code"] == "waiting_on_parents"
        assert blocked["update_order"]["waiting_on"] == ["charge_card"]
        assert blocked["update_order"]["message"] == "waiting on charge_card"
        steps = {s["name"]: s for s in body["steps"]}
        assert steps["charge_card"]["status"] == "in_progress"
        assert steps["charge_card"]["completed_at"] is None
        assert steps["validate_payment"]["attempts"] == 1
        await client.delete(f"/tasker/tasks/{task['id']}")

    async def test_dependencies_of_a_failed_task_name_the_reason(self, client):
        task = await create_task(client, FAILING_CHARGE)
        await wait_until(client, task["id"])
        body = (await client.get(f"/tasker/tasks/{task['id']}?include_dependencies=true")).json()
        assert body["status"] == "error"
        deps = body["dependencies"]
        blocked = {name: r["code"] for name, r in deps["blocked_reasons"].items()}
        assert deps["blocked_steps"] == list(blocked)
        assert blocked == {
            "charge_card": "failed_permanently",
            "update_order": "upstream_failed",
            "send_confirmation": "upstream_failed",
        }

    @pytest.mark.parametrize("task_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
    async def test_unknown_task_is_not_found(self, client, task_id):
        response = await client.get(f"/tasker/tasks/{task_id}")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "TaskNotFound"
        assert response.json()["error"]["code"] == "TASK_NOT_FOUND"


class TestCommands:
    async def test_update_reason_and_tags(self, client):
        task = await create_task(client)
        response = await client.patch(
            f"/tasker/tasks/{task['id']}", json={"reason": "audit", "tags": ["a", "b"]}
        )
        assert response.status_code == 200
        assert response.json()["reason"] == "audit"
        assert response.json()["tags"] == ["a", "b"]

    async def test_cancel_cascades_and_is_idempotent(self, client):
        task = await create_task(client, SLOW_CHARGE)
        await wait_for_step(client, task["id"], "charge_card", "in_progress")
        first = await client.delete(f"/tasker/tasks/{task['id']}")
        again = await client.delete(f"/tasker/tasks/{task['id']}")
        assert first.status_code == again.status_code == 200
        assert first.json()["status"] == "cancelled"
        assert first.json()["completed_at"] is not None
        steps = (await client.get(f"/tasker/tasks/{task['id']}/workflow_steps")).json()
        statuses = {s["name"]: s["status"] for s in steps["workflow_steps"]}
        assert statuses == {
            "validate_payment": "complete",
            "charge_card": "cancelled",
            "update_order": "cancelled",
            "send_confirmation": "cancelled",
        }

    async def test_cancelling_a_completed_task_conflicts(self, client):
        task = await create_task(client)
        await wait_until(client, task["id"])
        response = await client.delete(f"/tasker/tasks/{task['id']}")
        assert response.status_code == 409
        assert response.json()["error"]["type"] == "InvalidTransition"

    async def test_retry_reruns_the_failed_steps(self, client):
        task = await create_task(client, FAILING_CHARGE)
        assert (await wait_until(client, task["id"]))["status"] == "error"
        response = await client.post(f"/tasker/tasks/{task['id']}/retry")
        assert response.status_code == 200
        assert response.json()["status"] in {"pending", "in_progress", "error"}
        # The simulated failure is permanent, so the re-run fails again, after running.
        assert (await wait_until(client, task["id"]))["status"] == "error"
        events = (await client.get(f"/tasker/tasks/{task['id']}/events")).text
        assert '"step_name":"charge_card","from_status":"error","to_status":"pending"' in events
        assert events.count('"step_name":"charge_card","from_status":"pending"') == 2

    async def test_retrying_a_task_that_has_not_failed_conflicts(self, client):
        task = await create_task(client)
        await wait_until(client, task["id"])
        response = await client.post(f"/tasker/tasks/{task['id']}/retry")
        assert response.status_code == 409
