"""Every GraphQL query, mutation and subscription against every kind of credential, over HTTP
and over websockets (graphql-transport-ws), plus the document walk (aliases, fragments,
several operations, several resources).

Parametrized from `FIELD_PERMISSIONS`: a root field without a document here fails the suite.
"""

import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from graphql_schema.permissions import FIELD_PERMISSIONS
from tests.security.conftest import ALSO_NEEDED, BAD_CASES, CASES, Tokens, authorization_for

URL = "/tasker/graphql"
NOPE = str(uuid.UUID(int=9))
DOCUMENTS = {
    "Query.namespaces": "{ namespaces { name } }",
    "Query.namespace": '{ namespace(name: "nope") { name } }',
    "Query.handler": '{ handler(namespace: "nope", name: "nope") { name } }',
    "Query.task": f'{{ task(id: "{NOPE}") {{ id }} }}',
    "Query.tasks": "{ tasks(first: 1) { edges { node { id } } } }",
    "Query.analytics": "{ analytics { __typename } }",
    "Query.health": "{ health { __typename } }",
    "Query.tasksByIdPrefix": '{ tasksByIdPrefix(prefix: "0") { id } }',
    "Query.hourlyTaskOutcomes": "{ hourlyTaskOutcomes(periodHours: 1) { hour } }",
    "Query.limits": "{ limits { kind key } }",
    "Mutation.createTask": 'mutation { createTask(input: {namespace: "nope", name: "nope", '
    "context: {}}) { __typename } }",
    "Mutation.updateTask": f'mutation {{ updateTask(id: "{NOPE}", input: {{reason: "r"}}) '
    "{ __typename } }",
    "Mutation.cancelTask": f'mutation {{ cancelTask(id: "{NOPE}") {{ __typename }} }}',
    "Mutation.retryTask": f'mutation {{ retryTask(id: "{NOPE}") {{ __typename }} }}',
    "Mutation.updateStep": f'mutation {{ updateStep(taskId: "{NOPE}", step: "s", '
    "input: {retryLimit: 1}) { __typename } }",
    "Mutation.cancelStep": f'mutation {{ cancelStep(taskId: "{NOPE}", step: "s") '
    "{ __typename } }",
    "Mutation.retryStep": f'mutation {{ retryStep(taskId: "{NOPE}", step: "s") {{ __typename }} }}',
    "Mutation.resolveStep": f'mutation {{ resolveStep(taskId: "{NOPE}", step: "s") '
    "{ __typename } }",
    "Query.schedules": "{ schedules { id } }",
    "Query.schedule": f'{{ schedule(id: "{NOPE}") {{ id }} }}',
    "Mutation.createSchedule": 'mutation { createSchedule(input: {name: "n", namespace: "nope", '
    'handler: "nope", cron: "* * * * *"}) { __typename } }',
    "Mutation.updateSchedule": f'mutation {{ updateSchedule(id: "{NOPE}", '
    'input: {cron: "* * * * *"}) { __typename } }',
    "Mutation.pauseSchedule": f'mutation {{ pauseSchedule(id: "{NOPE}") {{ __typename }} }}',
    "Mutation.resumeSchedule": f'mutation {{ resumeSchedule(id: "{NOPE}") {{ __typename }} }}',
    "Mutation.deleteSchedule": f'mutation {{ deleteSchedule(id: "{NOPE}") {{ __typename }} }}',
    "Mutation.createTasks": "mutation { createTasks(inputs: "
    '[{namespace: "nope", name: "nope", context: {}}]) { __typename } }',
    "Mutation.rerunTask": f'mutation {{ rerunTask(id: "{NOPE}", input: {{fromStep: "a"}}) '
    "{ __typename } }",
    "Mutation.bulkCancelTasks": 'mutation { bulkCancelTasks(filter: {namespace: "nope"}) '
    "{ __typename } }",
    "Mutation.bulkRetryTasks": 'mutation { bulkRetryTasks(filter: {namespace: "nope"}) '
    "{ __typename } }",
    "Mutation.bulkRerunTasks": 'mutation { bulkRerunTasks(filter: {namespace: "nope"}, '
    'fromStep: "a") { __typename } }',
    "Mutation.pauseTask": f'mutation {{ pauseTask(id: "{NOPE}") {{ __typename }} }}',
    "Mutation.resumeTask": f'mutation {{ resumeTask(id: "{NOPE}") {{ __typename }} }}',
    "Mutation.pauseHandler": 'mutation { pauseHandler(namespace: "nope", name: "nope") '
    "{ __typename } }",
    "Mutation.resumeHandler": 'mutation { resumeHandler(namespace: "nope", name: "nope") '
    "{ __typename } }",
    "Mutation.sendSignal": f'mutation {{ sendSignal(taskId: "{NOPE}", name: "go") '
    "{ __typename } }",
    "Subscription.taskEvents": f'subscription {{ taskEvents(id: "{NOPE}") {{ cursor }} }}',
    "Subscription.namespaceEvents": 'subscription { namespaceEvents(namespace: "nope") '
    "{ cursor } }",
}
ROOTS = [k for k in FIELD_PERMISSIONS if k.split(".")[0] in ("Query", "Mutation", "Subscription")]
HTTP_FIELDS = [k for k in ROOTS if not k.startswith("Subscription.")]
SUBSCRIPTIONS = [k for k in ROOTS if k.startswith("Subscription.")]
AUTH_CODES = {"AUTHENTICATION_FAILED", "AUTHORIZATION_FAILED"}


def post(client: TestClient, query: str, authorization: str | None, **extra: Any) -> Any:
    headers = {"Authorization": authorization} if authorization else {}
    return client.post(URL, json={"query": query, **extra}, headers=headers)


def codes(body: dict[str, Any]) -> set[str]:
    return {e.get("extensions", {}).get("code") for e in body.get("errors") or []}


def test_every_root_field_has_a_document():
    assert sorted(ROOTS) == sorted(DOCUMENTS)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("field", HTTP_FIELDS)
def test_graphql_over_http(rs256_client: TestClient, tokens: Tokens, field: str, case: str):
    permission = FIELD_PERMISSIONS[field]
    authorization = authorization_for(tokens, case, permission, ALSO_NEEDED.get(field))
    response = post(rs256_client, DOCUMENTS[field], authorization)
    body = response.json()
    if case == "no_token" or case in BAD_CASES:
        assert response.status_code == 401, body
        assert body == {
            "data": None,
            "errors": [
                {
                    "message": "Invalid or expired authentication token",
                    "extensions": {"code": "AUTHENTICATION_FAILED"},
                }
            ],
        }
    elif case == "lacking":
        assert response.status_code == 403, body
        assert body == {
            "data": None,
            "errors": [
                {
                    "message": f"Insufficient permissions for {permission}",
                    "extensions": {"code": "AUTHORIZATION_FAILED"},
                }
            ],
        }
    else:
        assert response.status_code == 200, body
        assert body.get("data") is not None and not codes(body) & AUTH_CODES, body


def subscribe(client: TestClient, payload: dict[str, Any] | None, query: str) -> dict[str, Any]:
    """Connect, init with `payload`, subscribe; the first answer (or the close code)."""
    with client.websocket_connect(URL, subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", **({"payload": payload} if payload else {})})
        try:
            ack = ws.receive_json()
        except WebSocketDisconnect as closed:
            return {"closed": closed.code, "reason": closed.reason}
        assert ack == {"type": "connection_ack"}
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        first: dict[str, Any] = ws.receive_json()
        ws.send_json({"id": "1", "type": "complete"})
        return first


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("field", SUBSCRIPTIONS)
def test_subscription_over_websocket(
    rs256_client: TestClient, tokens: Tokens, field: str, case: str
):
    permission = FIELD_PERMISSIONS[field]
    authorization = authorization_for(tokens, case, permission)
    payload = {"Authorization": authorization} if authorization else None
    first = subscribe(rs256_client, payload, DOCUMENTS[field])
    if case == "no_token" or case in BAD_CASES:
        # graphql-transport-ws: a refused connection_init closes with 4403 Forbidden.
        assert first == {"closed": 4403, "reason": "Forbidden"}
    elif case == "lacking":
        assert first["type"] == "error", first
        assert first["payload"] == [
            {
                "message": f"Insufficient permissions for {permission}",
                "extensions": {"code": "AUTHORIZATION_FAILED"},
            }
        ]
    else:
        # Past the gate: the subscription itself runs and reports the missing task/namespace.
        errors = first["payload"] if first["type"] == "error" else first["payload"].get("errors")
        assert not {e.get("extensions", {}).get("code") for e in errors or []} & AUTH_CODES


@pytest.mark.parametrize(
    "payload",
    [
        {"authorization": "Bearer {token}"},
        {"token": "{token}"},
    ],
    ids=["lowercase-key", "token-key"],
)
def test_connection_init_accepts_the_documented_payload_keys(
    rs256_client: TestClient, tokens: Tokens, payload: dict[str, str]
):
    token = tokens.valid(["tasker.task:show"])
    filled = {k: v.format(token=token) for k, v in payload.items()}
    first = subscribe(rs256_client, filled, DOCUMENTS["Subscription.taskEvents"])
    assert "closed" not in first


@pytest.mark.parametrize(
    "payload", [{"Authorization": 42}, {"Authorization": "Basic abc"}, {"token": ["x"]}]
)
def test_malformed_connection_init_credentials_close_with_4403(
    rs256_client: TestClient, payload: dict[str, Any]
):
    assert subscribe(rs256_client, payload, "subscription { x }")["closed"] == 4403


def test_the_handshake_header_serves_when_the_payload_has_no_token(
    rs256_client: TestClient, tokens: Tokens
):
    token = tokens.valid(["tasker.task:show"])
    with rs256_client.websocket_connect(
        URL, subprotocols=["graphql-transport-ws"], headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json() == {"type": "connection_ack"}


def test_queries_over_the_websocket_are_checked_per_operation(
    rs256_client: TestClient, tokens: Tokens
):
    payload = {"Authorization": f"Bearer {tokens.valid(['tasker.handler:index'])}"}
    with rs256_client.websocket_connect(URL, subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": payload})
        assert ws.receive_json() == {"type": "connection_ack"}
        ws.send_json(
            {"id": "a", "type": "subscribe", "payload": {"query": "{ namespaces { name } }"}}
        )
        assert ws.receive_json()["type"] == "next"
        assert ws.receive_json() == {"id": "a", "type": "complete"}
        ws.send_json(
            {"id": "b", "type": "subscribe", "payload": {"query": DOCUMENTS["Query.tasks"]}}
        )
        refused = ws.receive_json()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"] == {"code": "AUTHORIZATION_FAILED"}


def test_the_legacy_graphql_ws_protocol_refuses_too(rs256_client: TestClient):
    with rs256_client.websocket_connect(URL, subprotocols=["graphql-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})
        assert ws.receive_json()["type"] == "connection_error"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1011
