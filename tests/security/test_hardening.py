"""Bad input at the door (garbage, enormous headers, huge and unicode tokens): a clean
401/403/431, never a 500. Also the observability waivers, HS256, rate limiting, CORS, security
headers and the log guard."""

import logging
import uuid
from typing import Any

import httpx
import jwt
import pytest
from starlette.testclient import TestClient

from tests.conftest import REDIS_URL, LeakGuard, remember_secret
from tests.security.conftest import (
    AUTHENTICATION_ERROR,
    OTHER_SECRET,
    SECRET,
    AppMaker,
    Tokens,
    claims,
)


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a.b",
        "Bearer a.b.c d",
        "Token eyJhbGciOiJIUzI1NiJ9.e30.x",
        "Bearer " + "A" * 4000,
        "Bearer ....",
        "Bearer \x7f\x7f",
        "Bearer ünïcödé".encode().decode("latin-1"),
        "bearer    ",
    ],
)
def test_garbage_in_the_authorization_header_is_a_401(rs256_client: TestClient, value: str):
    for method, path, body in (
        ("GET", "/tasker/tasks", None),
        ("POST", "/tasker/graphql", {"query": "{ __typename }"}),
    ):
        response = rs256_client.request(
            method, path, json=body, headers={"Authorization": value.encode("latin-1")}
        )
        assert response.status_code == 401, (path, response.text)
    assert response.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_FAILED"


def test_two_authorization_headers_are_refused(rs256_client: TestClient, tokens: Tokens):
    token = tokens.valid(["*"])
    response = rs256_client.get(
        "/tasker/tasks",
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
    )
    assert response.status_code == 401
    assert response.json() == AUTHENTICATION_ERROR


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Padding": "x" * 1_000_000},
        {"Authorization": "Bearer " + "x" * 20_000},
        {f"X-Many-{i}": "y" * 60 for i in range(2_000)},
    ],
    ids=["one-huge-header", "huge-authorization", "many-headers"],
)
def test_enormous_headers_are_a_431(rs256_client: TestClient, extra: dict[str, str]):
    response = rs256_client.get("/tasker/tasks", headers=extra)
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "HEADERS_TOO_LARGE"


def test_a_token_with_ten_thousand_permissions_is_a_431(rs256_client: TestClient, tokens: Tokens):
    token = tokens.valid([f"tasker.task:show{i}" for i in range(10_000)])
    assert len(token) > 100_000
    for path in ("/tasker/tasks", "/tasker/graphql"):
        assert rs256_client.get(path, headers=headers(token)).status_code == 431


def test_many_permissions_within_the_header_cap_still_work(
    rs256_client: TestClient, tokens: Tokens
):
    token = tokens.valid([f"tasker.x{i}:y" for i in range(300)] + ["tasker.task:index"])
    assert rs256_client.get("/tasker/tasks", headers=headers(token)).status_code == 200


def test_unicode_claims_are_a_clean_refusal(rs256_client: TestClient, tokens: Tokens):
    token = tokens.valid(["tasker.tâche:index", "☃", "tasker.task:índex"], sub="zoë ☃ 🚀")
    response = rs256_client.get("/tasker/tasks", headers=headers(token))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Insufficient permissions for tasker.task:index"
    weird = tokens.valid(["tasker.task:index"], sub="\u202e\x00")
    assert rs256_client.get("/tasker/tasks", headers=headers(weird)).status_code == 200


def test_an_html_page_carries_the_security_headers(rs256_client: TestClient):
    page = rs256_client.get("/tasker/api-docs")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    api = rs256_client.get("/tasker/api-docs.json")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in api.headers


def test_cors_is_off_unless_origins_are_configured(rs256_client: TestClient):
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"}
    response = rs256_client.options("/tasker/tasks", headers=preflight)
    assert "access-control-allow-origin" not in response.headers


def test_auth_failures_are_logged_without_the_token(
    rs256_client: TestClient, tokens: Tokens, caplog: pytest.LogCaptureFixture
):
    token = tokens.bad("expired", "tasker.task:index")
    with caplog.at_level(logging.INFO, logger="tasker.auth"):
        assert rs256_client.get("/tasker/tasks", headers=headers(token)).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "tasker.auth"]
    assert any("ExpiredSignatureError" in line for line in lines), lines
    assert all(token not in line for line in caplog.text.splitlines())


def test_the_log_guard_would_catch_a_leak():
    guard = LeakGuard()
    guard.secrets.add(SECRET)
    token = remember_secret(jwt.encode(claims(["*"]), SECRET, "HS256"))
    for message in (f"oops {token}", f"key={SECRET}", "clean line"):
        guard.handle(logging.LogRecord("x", logging.INFO, __file__, 1, message, None, None))
    assert len(guard.leaks) == 2 and guard.seen == 3


# --- apps with other settings (HS256, defaults, rate limits, CORS): no database is needed ---


def hs256(permissions: list[str], secret: str = SECRET, **overrides: Any) -> dict[str, str]:
    return headers(remember_secret(jwt.encode(claims(permissions, **overrides), secret, "HS256")))


def gql(client: TestClient, query: str, auth: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/tasker/graphql", json={"query": query}, headers=auth or {})


def test_hs256_with_the_secret_and_without_iss_or_aud_configured(app_with: AppMaker):
    client = app_with()
    assert gql(client, "{ __typename }", hs256([], iss=None, aud=None)).status_code == 200
    assert gql(client, "{ __typename }", hs256([], OTHER_SECRET)).status_code == 401
    refused = client.get("/tasker/handlers", headers=hs256(["tasker.task:*"]))
    assert refused.status_code == 403


def test_by_default_metrics_and_analytics_are_open_and_health_status_is_not(app_with: AppMaker):
    client = app_with()
    assert gql(client, "{ analytics { __typename } }").status_code == 200
    assert gql(client, "{ health { __typename } }").status_code == 401
    assert client.get("/tasker/health/status").status_code == 401
    closed = app_with(metrics_requires_auth=True, health_status_requires_auth=False)
    assert gql(closed, "{ analytics { __typename } }").status_code == 401
    assert closed.get("/tasker/metrics").status_code == 401
    assert gql(closed, "{ health { __typename } }").status_code == 200


def test_no_websocket_without_a_token_even_for_open_fields(app_with: AppMaker):
    client = app_with()
    with client.websocket_connect("/tasker/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        with pytest.raises(Exception) as closed:
            ws.receive_json()
    assert getattr(closed.value, "code", None) == 4403


def test_cors_allows_only_the_configured_origins(app_with: AppMaker):
    client = app_with(cors_origins="https://ui.example, https://ops.example/")
    preflight = {
        "Origin": "https://ops.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = client.options("/tasker/graphql", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    refused = client.options(
        "/tasker/graphql", headers={**preflight, "Origin": "https://evil.test"}
    )
    assert refused.status_code == 400
    simple = client.post(
        "/tasker/graphql",
        json={"query": "{ __typename }"},
        headers={"Origin": "https://ui.example"},
    )
    assert simple.status_code == 401  # CORS is not authentication
    assert simple.headers["access-control-allow-origin"] == "https://ui.example"


def rate_limited(app_with: AppMaker, storage: str | None) -> None:
    client = app_with(rate_limit="3/minute", rate_limit_storage_url=storage)
    alice = hs256([], sub=f"alice-{uuid.uuid4()}")
    bob = hs256([], sub=f"bob-{uuid.uuid4()}")
    statuses = [client.get("/tasker/api-docs.json", headers=alice).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/tasker/api-docs.json", headers=alice)
    assert refused.json() == {
        "error": {
            "type": "RateLimitExceeded",
            "message": refused.json()["error"]["message"],
            "code": "RATE_LIMITED",
        }
    }
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["message"].startswith("Rate limit exceeded; retry in ")
    assert client.get("/tasker/api-docs.json", headers=bob).status_code == 200
    assert client.get("/tasker/health/live").status_code == 200  # probes are never limited


def test_rate_limiting_per_subject_in_memory(app_with: AppMaker):
    rate_limited(app_with, None)


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
def test_rate_limiting_per_subject_in_redis(app_with: AppMaker):
    rate_limited(app_with, REDIS_URL)


def test_anonymous_callers_are_limited_by_address(app_with: AppMaker):
    client = app_with(rate_limit="2/minute")
    statuses = [client.get("/tasker/api-docs.json").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_rate_limiting_is_off_by_default(app_with: AppMaker):
    client = app_with()
    assert {client.get("/tasker/api-docs.json").status_code for _ in range(30)} == {200}


def test_a_bad_rate_limit_refuses_to_start(app_with: AppMaker):
    with pytest.raises(ValueError, match="TASKER_RATE_LIMIT"):
        app_with(rate_limit="lots")


def test_an_unreachable_limiter_store_lets_requests_through(
    app_with: AppMaker, caplog: pytest.LogCaptureFixture
):
    client = app_with(rate_limit="1/minute", rate_limit_storage_url="redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="tasker.ratelimit"):
        assert [client.get("/tasker/api-docs.json").status_code for _ in range(3)] == [200] * 3
    assert "storage unavailable" in caplog.text
