"""Validly signed tokens whose time claims are not numbers: refused (401), never a 500.
And weak verification keys: refused at start-up, naming the setting.

PyJWT checks `exp`, `nbf` and `iat` through `int(value)`, so a string of digits passes its
checks; the server must still refuse the token as malformed, on every path that sees it.
"""

from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from server.auth.keys import KeyConfigError
from server.auth.tokens import principal_from_claims
from server.cli import main
from server.domain.errors import AuthenticationFailed
from tests.conftest import fast_settings
from tests.security.conftest import AUTHENTICATION_ERROR, Tokens, claims, pem_public

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


# --- key strength -------------------------------------------------------------------------------


def public_pem(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def rsa_512() -> rsa.RSAPublicKey:
    """A 512-bit RSA public key (cryptography no longer generates them; PEM files exist)."""
    modulus = 2 * (2**255 - 19) * (2**256 - 189) + 1  # odd, 512 bits: enough to load
    return rsa.RSAPublicNumbers(65537, modulus).public_key()


WEAK_KEYS = {
    "rsa-512": (rsa_512, "at least 2048 bits (this one has 512)"),
    "rsa-1024": (lambda: rsa.generate_private_key(65537, 1024).public_key(), "at least 2048"),
    "ec-secp256k1": (lambda: ec.generate_private_key(ec.SECP256K1()).public_key(), "secp256k1"),
    "ec-secp224r1": (lambda: ec.generate_private_key(ec.SECP224R1()).public_key(), "secp224r1"),
}


@pytest.mark.parametrize("kind", sorted(WEAK_KEYS))
def test_a_weak_public_key_stops_the_app_naming_the_setting(kind: str):
    make, reason = WEAK_KEYS[kind]
    public = public_pem(make())  # type: ignore[no-untyped-call]
    with pytest.raises(KeyConfigError) as refused:
        create_app(fast_settings("sqlite://:memory:", jwt_public_key=public))
    assert str(refused.value).startswith("TASKER_JWT_PUBLIC_KEY: ")
    assert reason in str(refused.value)
    assert public not in str(refused.value)


def test_a_weak_public_key_stops_tasker_serve(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TASKER_JWT_PUBLIC_KEY", pem_public(rsa.generate_private_key(65537, 1024)))
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "TASKER_JWT_PUBLIC_KEY: an RSA key must have at least 2048 bits" in result.output


@pytest.mark.parametrize("make", [lambda: rsa.generate_private_key(65537, 2048),
                                  lambda: ec.generate_private_key(ec.SECP384R1())])  # fmt: skip
def test_standard_keys_are_accepted(make: Any):
    create_app(fast_settings("sqlite://:memory:", jwt_public_key=pem_public(make())))
