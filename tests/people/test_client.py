"""The Python client against a running server: every REST endpoint, GraphQL, typed errors."""

import uuid
from pathlib import Path

import pytest

from server.client import (
    AsyncTaskerClient,
    ConflictError,
    GraphQLError,
    NotFoundError,
    RetryPolicy,
    TaskerClient,
    TransportError,
    ValidationError,
)
from tests.people.conftest import Server

PAYMENT = {"payment_id": 101, "amount": 12.5, "currency": "EUR"}


@pytest.fixture
def client(server: Server):  # type: ignore[no-untyped-def]
    with TaskerClient(server.url, timeout=10) as c:
        yield c


def test_handler_discovery_matches_the_seed(client: TaskerClient) -> None:
    names = [ns["name"] for ns in client.namespaces()]
    assert names[:3] == ["payments", "inventory", "notifications"]
    handlers = {h["id"]: h for h in client.handlers("payments")}
    assert handlers["process_payment"]["step_count"] == 4
    detail = client.handler("payments", "process_payment", "2.1.0")
    assert detail["dependency_graph"]["execution_order"][0] == "validate_payment"
    assert client.handler("notifications", "send_email")["version"] == "1.10.0"  # semver latest


def test_create_wait_and_read_a_task(client: TaskerClient) -> None:
    task = client.create_task("payments", "process_payment", PAYMENT, version="2.1.0")
    assert task["full_name"] == "payments.process_payment@2.1.0"
    done = client.wait_for_task(task["id"], timeout=30, poll=0.1)
    assert done["status"] == "complete"
    detailed = client.get_task(task["id"], include_dependencies=True)
    assert [s["status"] for s in detailed["steps"]] == ["complete"] * 4
    assert detailed["dependencies"]["completed_steps"][-1] == "send_confirmation"
    steps = client.list_steps(task["id"])
    assert steps[1]["name"] == "charge_card" and steps[1]["parents"] == ["validate_payment"]
    assert client.get_step(task["id"], "charge_card")["attempts"] == 1
    diagram = client.get_task_diagram(task["id"])
    assert isinstance(diagram, dict) and diagram["title"] == "payments.process_payment@2.1.0"
    assert "<html" in str(client.get_task_diagram(task["id"], format="html")).lower()


def test_list_tasks_filters_and_pages(client: TaskerClient) -> None:
    for i in range(3):
        client.create_task("inventory", "check_availability", {"items": [{"sku": f"SKU-{i}"}]})
    page = client.list_tasks(namespace="inventory", name="check_availability", per_page=2)
    assert page["pagination"]["per_page"] == 2 and len(page["tasks"]) == 2
    assert page["pagination"]["total_count"] >= 3
    # The same filters as the page counted (the live server is shared with other tests, which
    # create other inventory handlers' tasks).
    every = list(client.iter_tasks(namespace="inventory", name="check_availability", per_page=2))
    assert len(every) == page["pagination"]["total_count"]
    assert all(t["name"] == "check_availability" for t in every)


def test_events_stream_until_the_end(client: TaskerClient) -> None:
    task = client.create_task("payments", "process_payment", {"payment_id": 7})
    frames = list(client.events(task["id"]))
    assert frames[-1].event == "end" and frames[-1].data["status"] == "complete"
    assert frames[-2].data["to_status"] == "complete" and frames[-2].data["step_name"] is None


def test_cancel_retry_resolve(client: TaskerClient, gate: Path) -> None:
    slow = client.create_task(
        "payments", "process_payment", {"payment_id": 8, "simulate_sleep": {"validate_payment": 5}}
    )
    assert client.cancel_task(slow["id"])["status"] == "cancelled"
    assert client.cancel_task(slow["id"])["status"] == "cancelled"  # idempotent

    failed = client.create_task("people_tests", "gated", {"gate": str(gate)})
    assert client.wait_for_task(failed["id"], timeout=30, poll=0.1)["status"] == "error"
    step = client.get_step(failed["id"], "pass_gate")
    assert step["status"] == "error" and "closed" in (step["last_error"] or "")
    gate.touch()
    assert client.retry_task(failed["id"])["status"] in ("pending", "in_progress")
    assert client.wait_for_task(failed["id"], timeout=30, poll=0.1)["status"] == "complete"

    other = client.create_task("people_tests", "gated", {"gate": str(gate) + ".never"})
    client.wait_for_task(other["id"], timeout=30, poll=0.1)
    resolved = client.resolve_step(other["id"], "pass_gate", results={"by": "hand"}, reason="ok")
    assert resolved["status"] == "resolved_manually"
    assert client.wait_for_task(other["id"], timeout=30, poll=0.1)["status"] == "complete"


def test_step_commands(client: TaskerClient, gate: Path) -> None:
    task = client.create_task("people_tests", "gated", {"gate": str(gate)})
    client.wait_for_task(task["id"], timeout=30, poll=0.1)
    updated = client.update_step(task["id"], "pass_gate", retry_limit=4, inputs={"k": 1})
    assert updated["retry_limit"] == 4 and updated["inputs"] == {"k": 1}
    gate.touch()
    assert client.retry_step(task["id"], "pass_gate")["status"] in ("pending", "in_progress")
    assert client.wait_for_task(task["id"], timeout=30, poll=0.1)["status"] == "complete"
    with pytest.raises(ConflictError) as caught:
        client.cancel_step(task["id"], "finish")
    assert caught.value.status == 409 and caught.value.code == "INVALID_TRANSITION"
    tagged = client.update_task(task["id"], reason="audit", tags=["people"])
    assert tagged["reason"] == "audit" and tagged["tags"] == ["people"]


def test_errors_are_typed_with_the_envelope(client: TaskerClient) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get_task(str(uuid.uuid4()))
    assert missing.value.type == "TaskNotFound" and missing.value.code == "TASK_NOT_FOUND"
    with pytest.raises(ValidationError) as invalid:
        client.create_task("payments", "process_payment", {"amount": 1})
    assert invalid.value.status == 422
    assert "context.payment_id" in invalid.value.details
    with pytest.raises(NotFoundError) as unknown:
        client.handler("payments", "nope")
    assert unknown.value.code == "HANDLER_NOT_FOUND"


def test_idempotency_key_makes_create_safe_to_repeat(client: TaskerClient) -> None:
    key = f"people-{uuid.uuid4()}"
    first = client.create_task(
        "payments", "process_payment", {"payment_id": 9}, idempotency_key=key
    )
    again = client.create_task(
        "payments", "process_payment", {"payment_id": 9}, idempotency_key=key
    )
    assert again["id"] == first["id"]
    with pytest.raises(ConflictError):
        client.create_task("payments", "process_payment", {"payment_id": 10}, idempotency_key=key)


def test_graphql_helper(client: TaskerClient) -> None:
    data = client.graphql(
        "mutation($input: CreateTaskInput!) { createTask(input: $input) {"
        " __typename ... on Task { id status } ... on Error { code message } } }",
        {
            "input": {
                "namespace": "payments",
                "name": "process_payment",
                "context": {"payment_id": 3},
            }
        },
    )
    assert data["createTask"]["__typename"] == "Task"
    query = "query($id: ID!) { task(id: $id) { fullName steps { name } } }"
    task = client.graphql(query, {"id": data["createTask"]["id"]})["task"]
    assert next(s["name"] for s in task["steps"]) == "validate_payment"
    with pytest.raises(GraphQLError) as bad:
        client.graphql("{ noSuchField }")
    assert "noSuchField" in bad.value.message


def test_analytics_health_and_metrics(client: TaskerClient) -> None:
    assert client.health_live()
    try:
        report = client.performance_analytics()
    except NotFoundError as exc:
        pytest.skip(f"analytics endpoints have not landed on this server yet: {exc}")
    assert 0 <= report["system_health_score"] <= 100
    bottlenecks = client.bottleneck_analysis(namespace="payments", period=24)
    assert bottlenecks["scope"] == {"namespace": "payments"}
    assert client.health_ready()
    assert "tasker" in client.metrics()


def test_unreachable_server_is_a_transport_error() -> None:
    policy = RetryPolicy(attempts=2, base_seconds=0.01)
    with TaskerClient("http://127.0.0.1:9", retry=policy) as c, pytest.raises(TransportError):
        c.namespaces()


async def test_async_client(server: Server, gate: Path) -> None:
    async with AsyncTaskerClient(server.url) as client:
        assert next(ns["name"] for ns in await client.namespaces()) == "payments"
        task = await client.create_task("payments", "process_payment", {"payment_id": 55})
        frames = [frame async for frame in client.events(task["id"])]
        assert frames[-1].data == {"status": "complete"}
        assert (await client.get_task(task["id"]))["status"] == "complete"
        failed = await client.create_task("people_tests", "gated", {"gate": str(gate)})
        assert (await client.wait_for_task(failed["id"], timeout=30, poll=0.1))["status"] == "error"
        gate.touch()
        await client.retry_task(failed["id"])
        assert (await client.wait_for_task(failed["id"], timeout=30, poll=0.1))[
            "status"
        ] == "complete"
        with pytest.raises(NotFoundError):
            await client.get_step(failed["id"], "no_such_step")
        data = await client.graphql("{ namespaces { name handlerCount } }")
        assert data["namespaces"][0]["handlerCount"] == 5
        listed = [t async for t in client.iter_tasks(namespace="people_tests", per_page=1)]
        assert failed["id"] in {t["id"] for t in listed}
