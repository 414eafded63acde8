"""GraphQL commands: each returns the object or a typed error from the result union."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.container import Services
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from tests.support.waiting import wait_for_task

PAYMENT = {"payment_id": 7, "amount": 12.5}
MISSING = "00000000-0000-0000-0000-000000000000"
ERROR_FIELDS = "... on Error { __typename code message }"
TASK_RESULT = f"__typename ... on Task {{ id status fullName tags reason }} {ERROR_FIELDS}"
STEP_RESULT = (
    f"__typename ... on Step {{ id name status retryLimit inputs results attempts }} {ERROR_FIELDS}"
)

CREATE = f"""mutation($input: CreateTaskInput!) {{ createTask(input: $input) {{ {TASK_RESULT}
  ... on ValidationError {{ details {{ field messages }} }}
  ... on ConflictError {{ details {{ field messages }} }} }} }}"""


@pytest.fixture
async def idle_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client over services with no workers: created tasks stay pending."""
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def gql(client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


async def create_task(client, **fields: Any) -> dict[str, Any]:
    payload = {"namespace": "payments", "name": "process_payment", "context": PAYMENT, **fields}
    return (await gql(client, CREATE, {"input": payload}))["createTask"]


async def step_command(
    client, name: str, task_id: str, step: str, extra: str = ""
) -> dict[str, Any]:
    query = f'mutation {{ {name}(taskId: "{task_id}", step: "{step}"{extra}) {{ {STEP_RESULT} }} }}'
    return (await gql(client, query))[name]


async def task_command(client, name: str, task_id: str, extra: str = "") -> dict[str, Any]:
    query = f'mutation {{ {name}(id: "{task_id}"{extra}) {{ {TASK_RESULT} }} }}'
    return (await gql(client, query))[name]


async def failed_task(engine, step: str = "charge_card") -> str:
    task, _ = await engine.tasks.create_task(
        CreateTask(
            namespace="payments",
            name="process_payment",
            context={**PAYMENT, "simulate_permanent_failure": step},
        )
    )
    assert (await wait_for_task(engine, task.id)).status is TaskState.ERROR
    return str(task.id)


class TestCreateTask:
    async def test_creates_and_runs_a_task(self, client, engine):
        result = await create_task(
            client,
            version="2.1.0",
            tags=["x"],
            reason="because",
            initiator="me",
            sourceSystem="tests",
        )
        assert result["__typename"] == "Task"
        assert result["fullName"] == "payments.process_payment@2.1.0"
        assert result["tags"] == ["x"] and result["reason"] == "because"
        done = await wait_for_task(engine, result["id"])
        assert done.status is TaskState.COMPLETE
        assert (done.initiator, done.source_system) == ("me", "tests")

    async def test_literal_json_context_is_accepted(self, client):
        query = """mutation { createTask(input: {namespace: "payments", name: "process_payment",
                    context: {payment_id: 1, amount: 2.5}}) { __typename ... on Task { id } } }"""
        assert (await gql(client, query))["createTask"]["__typename"] == "Task"

    async def test_invalid_context_lists_each_field(self, client):
        result = await create_task(client, context={"amount": -1})
        assert result["__typename"] == "ValidationError"
        assert result["code"] == "INVALID_TASK_CONFIG"  # the seed REST code, on every surface
        fields = {d["field"]: d["messages"] for d in result["details"]}
        assert fields["context.payment_id"] == ["is required"]
        assert "context.amount" in fields

    async def test_context_must_be_an_object(self, client):
        result = await create_task(client, context=[1, 2])
        assert result["__typename"] == "ValidationError"
        assert result["details"] == [{"field": "context", "messages": ["must be a JSON object"]}]

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"name": "nope"}, "HANDLER_NOT_FOUND"),
            ({"namespace": "nope"}, "NAMESPACE_NOT_FOUND"),
            ({"version": "9.9.9"}, "HANDLER_NOT_FOUND"),
        ],
    )
    async def test_unknown_handler(self, client, fields, code):
        result = await create_task(client, **fields)
        assert (result["__typename"], result["code"]) == ("HandlerNotFoundError", code)

    async def test_bad_version_is_a_validation_error(self, client):
        result = await create_task(client, version="latest")
        assert result["__typename"] == "ValidationError"
        assert result["details"][0]["field"] == "version"

    async def test_unskippable_bypass_is_refused(self, client):
        result = await create_task(client, bypassSteps=["charge_card"])
        assert result["__typename"] == "ValidationError"
        assert result["details"][0]["field"] == "bypass_steps"

    async def test_idempotency_key_returns_the_first_task(self, client):
        first = await create_task(client, idempotencyKey="k-1")
        again = await create_task(client, idempotencyKey="k-1")
        assert again["__typename"] == "Task" and again["id"] == first["id"]

    async def test_idempotency_key_with_another_request_conflicts(self, client):
        await create_task(client, idempotencyKey="k-2")
        other = await create_task(client, idempotencyKey="k-2", context={"payment_id": 8})
        assert (other["__typename"], other["code"]) == ("ConflictError", "CONFLICT")
        assert other["details"][0]["field"] == "idempotency_key"


class TestTaskCommands:
    async def test_update_task_reason_and_tags(self, client):
        task = await create_task(client)
        query = """mutation($id: ID!) { updateTask(id: $id, input: {reason: "r2", tags: ["t"]}) {
                   __typename ... on Task { reason tags } } }"""
        result = (await gql(client, query, {"id": task["id"]}))["updateTask"]
        assert result == {"__typename": "Task", "reason": "r2", "tags": ["t"]}

    async def test_cancel_is_idempotent(self, idle_client, services):
        client = idle_client
        task = await create_task(client)
        first = await task_command(client, "cancelTask", task["id"])
        again = await task_command(client, "cancelTask", task["id"])
        assert first["status"] == again["status"] == "CANCELLED"
        steps = await services.steps.list_steps(task["id"])
        assert {s.status for s in steps} == {StepState.CANCELLED}

    async def test_cancelling_a_completed_task_is_an_invalid_transition(self, client, engine):
        task = await create_task(client)
        await wait_for_task(engine, task["id"])
        result = await task_command(client, "cancelTask", task["id"])
        assert (result["__typename"], result["code"]) == (
            "InvalidTransitionError",
            "INVALID_TRANSITION",
        )
        query = (
            f'mutation {{ cancelTask(id: "{task["id"]}") {{ '
            "... on InvalidTransitionError { currentStatus requestedStatus } } }"
        )
        assert (await gql(client, query))["cancelTask"] == {
            "currentStatus": "COMPLETE",
            "requestedStatus": "CANCELLED",
        }

    async def test_retry_task_reruns_failed_steps(self, client, engine):
        task_id = await failed_task(engine)
        result = await task_command(client, "retryTask", task_id)
        assert result["__typename"] == "Task" and result["status"] != "ERROR"
        await wait_for_task(engine, task_id)
        step = await engine.steps.get_step(task_id, "charge_card")
        history = (await engine.steps.transitions([step.id]))[step.id]
        assert [t.reason for t in history].count("retried") == 1
        assert [t.to_status for t in history].count("in_progress") == 2

    async def test_retry_of_a_pending_task_is_an_invalid_transition(self, idle_client):
        task = await create_task(idle_client)
        result = await task_command(idle_client, "retryTask", task["id"])
        assert result["__typename"] == "InvalidTransitionError"

    @pytest.mark.parametrize("name", ["cancelTask", "retryTask"])
    @pytest.mark.parametrize("task_id", [MISSING, "garbage"])
    async def test_unknown_task(self, client, name, task_id):
        result = await task_command(client, name, task_id)
        assert (result["__typename"], result["code"]) == ("NotFoundError", "TASK_NOT_FOUND")

    async def test_update_unknown_task(self, client):
        query = (
            f'mutation {{ updateTask(id: "{MISSING}", input: {{reason: "x"}}) '
            f"{{ {TASK_RESULT} }} }}"
        )
        assert (await gql(client, query))["updateTask"]["code"] == "TASK_NOT_FOUND"


class TestStepCommands:
    async def test_update_step_by_name_or_id(self, idle_client):
        client = idle_client
        task = await create_task(client)
        by_name = await step_command(
            client,
            "updateStep",
            task["id"],
            "charge_card",
            ", input: {retryLimit: 5, inputs: {k: 1}}",
        )
        assert (by_name["retryLimit"], by_name["inputs"]) == (5, {"k": 1})
        by_id = await step_command(
            client, "updateStep", task["id"], by_name["id"], ", input: {inputs: null}"
        )
        assert (by_id["name"], by_id["retryLimit"], by_id["inputs"]) == ("charge_card", 5, None)

    async def test_update_step_out_of_range_is_a_validation_error(self, client):
        task = await create_task(client)
        result = await step_command(
            client, "updateStep", task["id"], "charge_card", ", input: {retryLimit: -1}"
        )
        assert (result["__typename"], result["code"]) == ("ValidationError", "VALIDATION_ERROR")

    async def test_retry_and_resolve_a_failed_step(self, client, engine):
        task_id = await failed_task(engine)
        retried = await step_command(client, "retryStep", task_id, "charge_card")
        assert retried["__typename"] == "Step"
        await wait_for_task(engine, task_id)
        resolved = await step_command(
            client,
            "resolveStep",
            task_id,
            "charge_card",
            ', results: {by: "hand"}, reason: "fixed by hand"',
        )
        assert (resolved["status"], resolved["results"]) == ("RESOLVED_MANUALLY", {"by": "hand"})
        again = await step_command(client, "resolveStep", task_id, "charge_card")
        assert again["status"] == "RESOLVED_MANUALLY"
        done = await wait_for_task(engine, task_id, {TaskState.COMPLETE})
        assert done.status is TaskState.COMPLETE

    async def test_retry_of_a_completed_step_is_an_invalid_transition(self, client, engine):
        task = await create_task(client)
        await wait_for_task(engine, task["id"])
        result = await step_command(client, "retryStep", task["id"], "charge_card")
        assert result["__typename"] == "InvalidTransitionError"
        cancel = await step_command(client, "cancelStep", task["id"], "charge_card")
        assert cancel["__typename"] == "InvalidTransitionError"

    async def test_cancel_step_is_idempotent(self, idle_client):
        task = await create_task(idle_client)
        first = await step_command(idle_client, "cancelStep", task["id"], "send_confirmation")
        again = await step_command(idle_client, "cancelStep", task["id"], "send_confirmation")
        assert first["status"] == again["status"] == "CANCELLED"

    @pytest.mark.parametrize(
        ("name", "task_id", "step", "code"),
        [
            ("cancelStep", MISSING, "charge_card", "TASK_NOT_FOUND"),
            ("retryStep", "garbage", "charge_card", "TASK_NOT_FOUND"),
            ("resolveStep", None, "nope", "STEP_NOT_FOUND"),
            ("cancelStep", None, "999999", "STEP_NOT_FOUND"),
        ],
    )
    async def test_unknown_task_or_step(self, client, name, task_id, step, code):
        task_id = task_id or (await create_task(client))["id"]
        result = await step_command(client, name, task_id, step)
        assert (result["__typename"], result["code"]) == ("NotFoundError", code)


async def test_later_mutations_in_a_document_see_what_earlier_ones_changed(idle_client):
    task = await create_task(idle_client)
    query = """mutation($id: ID!) {
      first: updateTask(id: $id, input: {reason: "x"}) { ... on Task { steps { status } } }
      then: cancelTask(id: $id) { ... on Task { steps { status } } } }"""
    data = await gql(idle_client, query, {"id": task["id"]})
    assert {s["status"] for s in data["first"]["steps"]} == {"PENDING"}
    assert {s["status"] for s in data["then"]["steps"]} == {"CANCELLED"}
