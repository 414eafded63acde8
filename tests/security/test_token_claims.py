"""Validly signed tokens whose time claims are not numbers: refused (401), never a 500.

PyJWT checks `exp`, `nbf` and `iat` through `int(value)`, so a string of digits passes its
checks; the server must still refuse the token as malformed, on every path that sees it.
"""

from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.auth.tokens import principal_from_claims
from server.domain.errors import AuthenticationFailed
from tests.security.conftest import AUTHENTICATION_ERROR, Tokens, claims

FAR = 4_000_000_000
ODD_TIMES = {
    "exp_string": {"exp": str(FAR)},
    "nbf_string": {"nbf": "1"},
    "iat_string": {"iat": "1"},
    "exp_list": {"exp": [FAR]},
    "exp_bool": {"exp": True},
}


def token(tokens: Tokens, case: str) -> str:
    return tokens.valid(["*"], **ODD_TIMES[case])


@pytest.mark.parametrize("case", sorted(ODD_TIMES))
def test_rest_refuses_with_401(rs256_client: TestClient, tokens: Tokens, case: str):
    headers = {"Authorization": f"Bearer {token(tokens, case)}"}
    response = rs256_client.get("/tasker/tasks", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json() == AUTHENTICATION_ERROR


@pytest.mark.parametrize("case", sorted(ODD_TIMES))
def test_graphql_refuses_with_401(rs256_client: TestClient, tokens: Tokens, case: str):
    headers = {"Authorization": f"Bearer {token(tokens, case)}"}
    response = rs256_client.post(
        "/tasker/graphql", json={"query": "{ tasks(first: 1) { totalCount } }"}, headers=headers
    )
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_FAILED"


@pytest.mark.parametrize("path", ["/tasker/health/live", "/tasker/ui", "/tasker/api-docs.json"])
def test_paths_needing_no_token_still_answer(rs256_client: TestClient, tokens: Tokens, path: str):
    headers = {"Authorization": f"Bearer {token(tokens, 'exp_string')}"}
    response = rs256_client.get(path, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", sorted(ODD_TIMES))
def test_websocket_init_closes_with_4403(rs256_client: TestClient, tokens: Tokens, case: str):
    payload: dict[str, Any] = {"Authorization": f"Bearer {token(tokens, case)}"}
    with rs256_client.websocket_connect(
        "/tasker/graphql", subprotocols=["graphql-transport-ws"]
    ) as ws:
        ws.send_json({"type": "connection_init", "payload": payload})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403


@pytest.mark.parametrize("value", [FAR, float(FAR), 1.5e9 + 0.25])
def test_numbers_are_still_times(value: float):
    principal = principal_from_claims(claims(["*"], exp=value))
    assert principal.expires_at == float(value)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1", None, [], {}, True, float("nan"), float("inf")])
def test_every_time_claim_must_be_a_finite_number(claim: str, value: object):
    values = claims(["*"])
    values[claim] = value
    with pytest.raises(AuthenticationFailed):
        principal_from_claims(values)
