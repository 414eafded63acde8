"""Rate limiting at its edges: websocket operations count, a client cannot pick its own key
with X-Forwarded-For, and a hung store costs a bounded wait, a metric and a log line.
"""

import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import prometheus_client
import pytest
from starlette.websockets import WebSocketDisconnect

from server.infra import metrics
from tests.conftest import remember_secret
from tests.security.conftest import SECRET, AppMaker, claims
from tests.security.test_http_guard import free_port, start, stop

URL = "/tasker/graphql"
SUBSCRIPTION = 'subscription { taskEvents(id: "00000000-0000-0000-0000-000000000009") { cursor } }'


def token(subject: str, permissions: list[str] | None = None) -> str:
    payload = claims(permissions or [], sub=subject)
    return remember_secret(jwt.encode(payload, SECRET, "HS256"))


# --- websockets ---------------------------------------------------------------------------------


def test_each_subscribe_on_a_websocket_counts(app_with: AppMaker):
    client = app_with(rate_limit="3/minute")
    subject = f"ws-{uuid.uuid4()}"
    answers = []
    with client.websocket_connect(URL, subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": token(subject)}})
        assert ws.receive_json() == {"type": "connection_ack"}
        for n in range(5):
            ws.send_json({"id": str(n), "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
            answers.append(ws.receive_json())
    codes = [a["payload"][0]["extensions"]["code"] for a in answers]
    # The token holds no permission: allowed operations are refused by the gate, the rest
    # never get that far.
    assert codes == ["AUTHORIZATION_FAILED"] * 3 + ["RATE_LIMITED"] * 2
    assert [a["id"] for a in answers] == ["0", "1", "2", "3", "4"]
    assert all(a["type"] == "error" for a in answers)
    assert answers[3]["payload"][0]["message"].startswith("Rate limit exceeded; retry in ")
    # The operations counted for the subject, so HTTP requests with the token are limited too.
    refused = client.get(
        "/tasker/api-docs.json", headers={"Authorization": f"Bearer {token(subject)}"}
    )
    assert refused.status_code == 429


def test_websocket_connections_count(app_with: AppMaker):
    client = app_with(rate_limit="2/minute")
    for _ in range(2):
        with client.websocket_connect(URL, subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": {"token": token("x")}})
            assert ws.receive_json() == {"type": "connection_ack"}
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(URL, subprotocols=["graphql-transport-ws"]),
    ):
        pass
    assert closed.value.code == 1008


def test_other_websocket_messages_are_not_counted(app_with: AppMaker):
    client = app_with(rate_limit="2/minute")
    with client.websocket_connect(URL, subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": token(f"p-{uuid.uuid4()}")}})
        assert ws.receive_json() == {"type": "connection_ack"}
        for _ in range(5):
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}


# --- X-Forwarded-For ----------------------------------------------------------------------------


def statuses_with_forwarded_for(workdir: Path, **env: str) -> list[int]:
    port = free_port()
    tasker = str(Path(sys.executable).parent / "tasker")
    process = start(
        [tasker, "serve", "--host", "127.0.0.1", "--port", str(port)],
        workdir,
        port,
        TASKER_RATE_LIMIT="3/minute",
        **env,
    )
    try:
        url = f"http://127.0.0.1:{port}/tasker/api-docs.json"
        return [
            httpx.get(url, headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=5).status_code
            for n in range(1, 6)
        ]
    finally:
        stop(process)


def test_x_forwarded_for_from_loopback_does_not_change_the_key(tmp_path: Path):
    assert statuses_with_forwarded_for(tmp_path) == [200, 200, 200, 429, 429]


def test_a_configured_proxy_is_trusted(tmp_path: Path):
    statuses = statuses_with_forwarded_for(tmp_path, TASKER_FORWARDED_ALLOW_IPS="127.0.0.1")
    assert statuses == [200] * 5  # each forwarded client has its own count


# --- a hung store -------------------------------------------------------------------------------


@pytest.fixture
def hung_store() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stopping.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        stopping.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def errors_counted() -> float:
    return sum(
        sample.value
        for metric in metrics.RATE_LIMIT_ERRORS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_a_hung_store_costs_a_bounded_wait_a_metric_and_a_log_line(
    app_with: AppMaker, hung_store: str, caplog: pytest.LogCaptureFixture
):
    client = app_with(rate_limit="100/minute", rate_limit_storage_url=hung_store)
    before = errors_counted()
    with caplog.at_level(logging.WARNING, logger="tasker.ratelimit"):
        first = time.perf_counter()
        assert client.get("/tasker/api-docs.json").status_code == 200
        first = time.perf_counter() - first
        rest = time.perf_counter()
        assert [client.get("/tasker/api-docs.json").status_code for _ in range(20)] == [200] * 20
        rest = time.perf_counter() - rest
    assert first < 1.0, first  # the store's timeout (0.25 s), not redis-py's retries
    assert rest < 2.0, rest  # after a failure the store is left alone for a while
    assert errors_counted() >= before + 1
    assert "rate limiting skipped" in caplog.text and "storage unavailable" in caplog.text


def test_the_metric_is_exposed(app_with: AppMaker, hung_store: str):
    client = app_with(rate_limit="100/minute", rate_limit_storage_url=hung_store)
    client.get("/tasker/api-docs.json")
    text = prometheus_client.generate_latest().decode()
    assert 'tasker_rate_limit_errors_total{error="TimeoutError"}' in text
