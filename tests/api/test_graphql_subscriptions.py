"""Subscriptions over graphql-transport-ws, against the full app (lifespan, embedded workers)."""

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from tests.conftest import fast_settings

URL = "/tasker/graphql"
EVENTS = """subscription($id: ID!, $after: String) { taskEvents(id: $id, after: $after) {
  cursor taskId namespace stepId stepName fromStatus toStatus reason occurredAt } }"""
HISTORY = (
    """query($id: ID!) { task(id: $id) { status transitions { cursor stepName toStatus } } }"""
)
CREATE = """mutation($input: CreateTaskInput!) { createTask(input: $input) {
  __typename ... on Task { id } } }"""


@pytest.fixture
def app_client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(fast_settings(database_url))) as client:
        yield client


def gql(client: TestClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = client.post(URL, json={"query": query, "variables": variables}).json()
    assert "errors" not in body, body
    return body["data"]


def create(client: TestClient, namespace="payments", name="process_payment", **context: Any) -> str:
    payload = {"namespace": namespace, "name": name, "context": {"payment_id": 1, **context}}
    if namespace == "inventory":
        payload["context"] = {"items": [{"sku": "A", "quantity": 1}]}
    return gql(client, CREATE, {"input": payload})["createTask"]["id"]


def subscribe(client: TestClient, query: str, variables: dict[str, Any]) -> Any:
    ws = client.websocket_connect(URL, subprotocols=["graphql-transport-ws"])
    conn = ws.__enter__()
    conn.send_json({"type": "connection_init"})
    assert conn.receive_json() == {"type": "connection_ack"}
    conn.send_json(
        {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
    )
    return ws, conn


def drain(conn: Any, limit: int = 200) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`next` payloads until a message of another type (complete or error)."""
    events = []
    for _ in range(limit):
        message = conn.receive_json()
        if message["type"] != "next":
            return events, message
        assert "errors" not in message["payload"], message
        events.append(message["payload"]["data"]["taskEvents"])
    raise AssertionError("the subscription did not complete")


def follow(client: TestClient, task_id: str, after: str | None = None) -> list[dict[str, Any]]:
    ws, conn = subscribe(client, EVENTS, {"id": task_id, "after": after})
    try:
        events, last = drain(conn)
        assert last == {"id": "1", "type": "complete"}
        return events
    finally:
        ws.__exit__(None, None, None)


def test_replay_from_the_start_yields_the_whole_history_then_completes(app_client):
    task_id = create(app_client)
    events = follow(app_client, task_id, after="0")
    history = gql(app_client, HISTORY, {"id": task_id})["task"]
    assert history["status"] == "COMPLETE"
    assert [(e["cursor"], e["stepName"], e["toStatus"]) for e in events] == [
        (t["cursor"], t["stepName"], t["toStatus"]) for t in history["transitions"]
    ]
    assert {e["taskId"] for e in events} == {task_id}
    assert {e["namespace"] for e in events} == {"payments"}
    assert (events[-1]["stepName"], events[-1]["toStatus"]) == (None, "COMPLETE")


def test_live_events_arrive_in_order_and_end_with_the_final_transition(app_client):
    task_id = create(app_client, simulate_sleep={"validate_payment": 0.5})
    events = follow(app_client, task_id)
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(set(cursors))
    seen = {(e["stepName"], e["toStatus"]) for e in events}
    assert ("send_confirmation", "COMPLETE") in seen
    assert (events[-1]["stepName"], events[-1]["toStatus"]) == (None, "COMPLETE")


def test_resuming_after_a_cursor_yields_only_what_followed(app_client):
    task_id = create(app_client)
    everything = follow(app_client, task_id, after="0")
    middle = everything[len(everything) // 2]["cursor"]
    rest = follow(app_client, task_id, after=middle)
    assert rest == everything[len(everything) // 2 + 1 :]


def test_a_finished_task_replays_its_history_then_completes(app_client):
    """Without `after`, the whole history (as REST's event stream sends it), then complete."""
    task_id = create(app_client)
    everything = follow(app_client, task_id, after="0")
    events = follow(app_client, task_id)
    assert events == everything
    assert [(e["stepName"], e["toStatus"]) for e in events][-1] == (None, "COMPLETE")


def test_resuming_a_finished_task_after_its_last_event_completes_empty(app_client):
    """Regression: with nothing after the cursor, the stream waited forever for live events."""
    task_id = create(app_client)
    everything = follow(app_client, task_id, after="0")
    assert follow(app_client, task_id, after=everything[-1]["cursor"]) == []


def test_a_failed_task_ends_the_stream_with_error(app_client):
    task_id = create(app_client, simulate_permanent_failure="charge_card")
    events = follow(app_client, task_id, after="0")
    assert (events[-1]["stepName"], events[-1]["toStatus"]) == (None, "ERROR")


@pytest.mark.parametrize(
    ("task_id", "after", "message"),
    [
        (
            "00000000-0000-0000-0000-000000000000",
            None,
            "Task '00000000-0000-0000-0000-000000000000' not found",
        ),
        ("garbage", None, "Task 'garbage' not found"),
        (None, "not-a-cursor", "Invalid cursor"),
    ],
)
def test_bad_subscriptions_end_with_an_error_message(app_client, task_id, after, message):
    task_id = task_id or create(app_client)
    ws, conn = subscribe(app_client, EVENTS, {"id": task_id, "after": after})
    try:
        reply = conn.receive_json()
        errors = reply["payload"] if reply["type"] == "error" else reply["payload"]["errors"]
        assert [e["message"] for e in errors] == [message]
        if reply["type"] == "next":
            assert conn.receive_json() == {"id": "1", "type": "complete"}
    finally:
        ws.__exit__(None, None, None)


def test_namespace_events_carry_only_that_namespace(app_client):
    query = """subscription { namespaceEvents(namespace: "payments") {
      taskId namespace stepName toStatus } }"""
    ws, conn = subscribe(app_client, query, {})
    try:
        other = create(app_client, namespace="inventory", name="check_availability")
        task_id = create(app_client)
        events = []
        while not events or (
            events[-1]["taskId"],
            events[-1]["stepName"],
            events[-1]["toStatus"],
        ) != (task_id, None, "COMPLETE"):
            message = conn.receive_json()
            assert message["type"] == "next", message
            events.append(message["payload"]["data"]["namespaceEvents"])
        assert {e["namespace"] for e in events} == {"payments"}
        assert other not in {e["taskId"] for e in events}
    finally:
        ws.__exit__(None, None, None)


def test_unknown_namespace_is_an_error(app_client):
    query = 'subscription { namespaceEvents(namespace: "nope") { taskId } }'
    ws, conn = subscribe(app_client, query, {})
    try:
        reply = conn.receive_json()
        errors = reply["payload"] if reply["type"] == "error" else reply["payload"]["errors"]
        assert errors[0]["message"] == "Namespace 'nope' does not exist"
    finally:
        ws.__exit__(None, None, None)


def test_queries_work_over_the_socket_too(app_client):
    ws, conn = subscribe(app_client, '{ namespace(name: "payments") { name } }', {})
    try:
        assert conn.receive_json()["payload"] == {"data": {"namespace": {"name": "payments"}}}
        assert conn.receive_json() == {"id": "1", "type": "complete"}
    finally:
        ws.__exit__(None, None, None)


def test_cross_origin_handshakes_are_refused(app_client):
    with (
        pytest.raises(WebSocketDisconnect),
        app_client.websocket_connect(
            URL, subprotocols=["graphql-transport-ws"], headers={"Origin": "http://evil.example"}
        ),
    ):
        pass
