"""GraphQL streams over graphql-transport-ws: `taskEvents` replays a task's history by default
(as REST's event stream does), `namespaceEvents` carries creations, and one connection runs at
most the configured number of operations at once."""

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from tests.api.test_graphql_subscriptions import CREATE, EVENTS, HISTORY, URL, drain
from tests.conftest import fast_settings

CAP = 3
NAMESPACE = """subscription { namespaceEvents(namespace: "payments") {
  cursor taskId stepName fromStatus toStatus reason } }"""


@pytest.fixture
def app_client(database_url: str) -> Iterator[TestClient]:
    settings = fast_settings(database_url, graphql_max_subscriptions_per_connection=CAP)
    with TestClient(create_app(settings)) as client:
        yield client


def gql(client: TestClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = client.post(URL, json={"query": query, "variables": variables}).json()
    assert "errors" not in body, body
    return body["data"]


def create(client: TestClient, **context: Any) -> str:
    payload = {"namespace": "payments", "name": "process_payment"}
    payload["context"] = {"payment_id": 1, **context}
    return str(gql(client, CREATE, {"input": payload})["createTask"]["id"])


def history(client: TestClient, task_id: str) -> list[tuple[str, str | None, str]]:
    rows = gql(client, HISTORY, {"id": task_id})["task"]["transitions"]
    return [(r["cursor"], r["stepName"], r["toStatus"]) for r in rows]


class Socket:
    """One graphql-transport-ws connection, acknowledged."""

    def __init__(self, client: TestClient) -> None:
        self.session = client.websocket_connect(URL, subprotocols=["graphql-transport-ws"])
        self.conn = self.session.__enter__()
        self.conn.send_json({"type": "connection_init"})
        assert self.conn.receive_json() == {"type": "connection_ack"}

    def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        payload = {"query": query, "variables": variables or {}}
        self.conn.send_json({"id": op_id, "type": "subscribe", "payload": payload})

    def close(self) -> None:
        self.session.__exit__(None, None, None)


@pytest.fixture
def socket(app_client: TestClient) -> Iterator[Socket]:
    ws = Socket(app_client)
    try:
        yield ws
    finally:
        ws.close()


def test_task_events_without_after_replay_everything_right_after_creation(
    app_client: TestClient, socket: Socket
) -> None:
    task_id = create(app_client, simulate_sleep={"validate_payment": 0.3})
    socket.subscribe("1", EVENTS, {"id": task_id})
    events, last = drain(socket.conn)
    assert last == {"id": "1", "type": "complete"}
    got = [(e["cursor"], e["stepName"], e["toStatus"]) for e in events]
    assert got == history(app_client, task_id)
    assert got[0][1:] == (None, "PENDING") and got[-1][1:] == (None, "COMPLETE")


def test_task_events_on_a_finished_task_replay_its_whole_history(
    app_client: TestClient, socket: Socket
) -> None:
    task_id = create(app_client)
    socket.subscribe("1", EVENTS, {"id": task_id, "after": "0"})
    drain(socket.conn)  # the task has finished once this completes
    socket.subscribe("2", EVENTS, {"id": task_id})
    events, last = drain(socket.conn)
    assert last == {"id": "2", "type": "complete"}
    assert [(e["cursor"], e["stepName"], e["toStatus"]) for e in events] == history(
        app_client, task_id
    )
    assert len(events) > 10


def test_namespace_events_include_the_created_transitions(
    app_client: TestClient, socket: Socket
) -> None:
    socket.subscribe("1", NAMESPACE)
    task_id = create(app_client)
    events: list[dict[str, Any]] = []
    while not events or (events[-1]["stepName"], events[-1]["toStatus"]) != (None, "COMPLETE"):
        message = socket.conn.receive_json()
        assert message["type"] == "next", message
        event = message["payload"]["data"]["namespaceEvents"]
        if event["taskId"] == task_id:
            events.append(event)
    created = [e for e in events if e["reason"] == "created"]
    steps = [r[1] for r in history(app_client, task_id) if r[1] is not None]
    assert {e["stepName"] for e in created} == {None, *steps}
    assert all(e["toStatus"] == "PENDING" and e["fromStatus"] is None for e in created)
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(cursors)
    assert [(e["cursor"], e["stepName"], e["toStatus"]) for e in events] == history(
        app_client, task_id
    )


@pytest.mark.parametrize("field", ["namespaceEvents", "taskEvents"])
def test_operations_per_connection_are_capped_by_configuration(
    app_client: TestClient, socket: Socket, field: str
) -> None:
    task_id = create(app_client, simulate_sleep={"validate_payment": 5})
    query = NAMESPACE if field == "namespaceEvents" else EVENTS
    variables = {"id": task_id, "after": "999999999"} if field == "taskEvents" else {}
    for i in range(CAP):
        socket.subscribe(str(i), query, variables)
    socket.subscribe("over", query, variables)
    reply = socket.conn.receive_json()
    while reply.get("id") != "over":  # events of the running ones may come first
        reply = socket.conn.receive_json()
    assert reply["type"] == "error"
    [error] = reply["payload"]
    assert error["extensions"] == {"code": "TOO_MANY_OPERATIONS"}
    assert f"already runs {CAP} operations" in error["message"]
    assert "TASKER_GRAPHQL_MAX_SUBSCRIPTIONS_PER_CONNECTION" in error["message"]
    # Completing one frees its place.
    socket.conn.send_json({"id": "0", "type": "complete"})
    socket.subscribe("again", "{ __typename }")
    reply = socket.conn.receive_json()
    while reply.get("id") != "again":
        reply = socket.conn.receive_json()
    assert reply == {"id": "again", "type": "next", "payload": {"data": {"__typename": "Query"}}}
