"""Every REST operation (the route table itself, SSE and observability included) against every
kind of credential: refused with the seed's 401/403 bodies, or let through.

Parametrized from `rest_compat.routes.DOCUMENTED`, so a new endpoint cannot escape the matrix.
Path parameters name things that do not exist: an allowed call then fails with 404/422 inside
the endpoint, proof it went past the gate, and nothing changes between cases.
"""

import re
import uuid

import pytest
from starlette.testclient import TestClient

from rest_compat.operations import Operation
from rest_compat.routes import DOCUMENTED
from tests.security.conftest import (
    ALLOWED,
    ALSO_NEEDED,
    AUTHENTICATION_ERROR,
    BAD_CASES,
    CASES,
    Tokens,
    authorization_error,
    authorization_for,
)

MISSING_TASK = str(uuid.UUID(int=7))
PARAMS = {"id": MISSING_TASK, "task_id": MISSING_TASK, "step_id": "no_such_step",
          "namespace": "no_such_namespace", "name": "no_such_handler"}  # fmt: skip
BODIES = {"POST": {}, "PATCH": {}}


def url(operation: Operation) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], operation.path)


def call(client: TestClient, operation: Operation, authorization: str | None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": authorization} if authorization else {}
    body = BODIES.get(operation.method)
    return client.request(
        operation.method, url(operation), headers=headers, json=body if body is not None else None
    )


OPERATIONS = [pytest.param(op, id=f"{op.method} {op.path}") for op in DOCUMENTED]


def test_the_matrix_covers_the_whole_route_table():
    assert len(DOCUMENTED) >= 20
    assert {op.path for op in DOCUMENTED} >= {
        "/tasker/tasks/{id}/events",
        "/tasker/metrics",
        "/tasker/health/status",
        "/tasker/analytics/performance",
        "/tasker/analytics/bottlenecks",
    }


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_rest_operation(rs256_client: TestClient, tokens: Tokens, operation: Operation, case: str):
    also = ALSO_NEEDED.get(f"{operation.method} {operation.path}")
    response = call(
        rs256_client, operation, authorization_for(tokens, case, operation.permission, also)
    )
    if case == "no_token" or case in BAD_CASES:
        assert response.status_code == 401, response.text
        assert response.json() == AUTHENTICATION_ERROR
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    elif case == "lacking":
        assert response.status_code == 403, response.text
        assert response.json() == authorization_error(operation.permission)
    else:
        assert case in ALLOWED
        allowed_failure = 503 if operation.path == "/tasker/health/status" else None
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500 or response.status_code == allowed_failure, response.text


def test_the_seed_example_of_a_refusal(rs256_client: TestClient, tokens: Tokens):
    token = tokens.valid(["tasker.task:index"])
    response = rs256_client.get("/tasker/handlers", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "type": "AuthorizationError",
            "message": "Insufficient permissions for tasker.handler:index",
            "code": "AUTHORIZATION_FAILED",
        }
    }


def test_liveness_and_readiness_never_need_a_token(rs256_client: TestClient):
    for path in ("/tasker/health/live", "/tasker/health/ready"):
        response = rs256_client.get(path, headers={"Authorization": "Bearer garbage"})
        assert response.status_code == 200, (path, response.text)


def test_pages_and_documents_stay_open(rs256_client: TestClient):
    for path in ("/tasker/api-docs", "/tasker/api-docs.json", "/tasker/ui"):
        assert rs256_client.get(path).status_code == 200, path
    graphiql = rs256_client.get("/tasker/graphql", headers={"Accept": "text/html"})
    assert graphiql.status_code == 200
    assert "bearer" in str(rs256_client.get("/tasker/api-docs.json").json()).lower()


def test_a_server_sent_event_stream_opens_only_with_the_permission(
    rs256_client: TestClient, tokens: Tokens
):
    create = rs256_client.post(
        "/tasker/tasks",
        json={"namespace": "payments", "name": "process_payment", "context": {"payment_id": 1}},
        headers={"Authorization": f"Bearer {tokens.valid(['tasker.task:create'])}"},
    )
    assert create.status_code == 201, create.text
    path = f"/tasker/tasks/{create.json()['id']}/events"
    refused = rs256_client.get(
        path, headers={"Authorization": f"Bearer {tokens.valid(['tasker.task:index'])}"}
    )
    assert refused.status_code == 403
    assert refused.json() == authorization_error("tasker.task:show")
    show = {"Authorization": f"Bearer {tokens.valid(['tasker.task:show'])}"}
    with rs256_client.stream("GET", path, headers=show) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    assert "event: end" in text
