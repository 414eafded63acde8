"""Retries: idempotent calls repeat on 429/503 with backoff, honouring Retry-After; others don't.

A real (tiny) HTTP server on loopback plays the overloaded Tasker: it answers from a script of
statuses, so the client's timing and request counts can be checked exactly.
"""

import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from server.client import (
    AsyncTaskerClient,
    RateLimitedError,
    RetryPolicy,
    ServiceUnavailableError,
    TaskerClient,
)
from server.client.transport import retry_after_seconds

FAST = RetryPolicy(attempts=4, base_seconds=0.05, max_seconds=2.0, jitter=0.0)


class Flaky:
    """Answers each request with the next scripted (status, headers); then 200 forever."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.seen: list[tuple[str, str, float]] = []
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                flaky.seen.append((self.command, self.path, time.monotonic()))
                status, headers = flaky.script.pop(0) if flaky.script else (200, {})
                body = (
                    {"namespaces": [], "id": "t1", "status": "pending"}
                    if status < 400
                    else {"error": {"type": "Busy", "message": "try later", "code": "BUSY"}}
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def gaps(self) -> list[float]:
        times = [t for _, _, t in self.seen]
        return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    server = Flaky()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_get_waits_for_retry_after_then_succeeds(flaky: Flaky) -> None:
    flaky.script = [(429, {"Retry-After": "1"})]
    with TaskerClient(flaky.url, retry=FAST) as client:
        assert client.namespaces() == []
    assert len(flaky.seen) == 2
    assert flaky.gaps()[0] >= 0.95  # the server's 1 s, not the client's 0.05 s


def test_503_backs_off_exponentially(flaky: Flaky) -> None:
    flaky.script = [(503, {}), (503, {}), (503, {})]
    with TaskerClient(flaky.url, retry=FAST) as client:
        client.get_task("t1")
    assert len(flaky.seen) == 4
    first, second, third = flaky.gaps()
    assert 0.04 <= first < second < third and third >= 0.19  # 0.05, 0.1, 0.2


def test_gives_up_after_the_last_attempt(flaky: Flaky) -> None:
    flaky.script = [(429, {"Retry-After": "0"})] * 10
    with TaskerClient(flaky.url, retry=FAST) as client, pytest.raises(RateLimitedError) as caught:
        client.namespaces()
    assert len(flaky.seen) == FAST.attempts
    assert caught.value.code == "BUSY" and caught.value.message == "try later"


def test_create_without_idempotency_key_is_never_repeated(flaky: Flaky) -> None:
    flaky.script = [(503, {"Retry-After": "0"})]
    with TaskerClient(flaky.url, retry=FAST) as client, pytest.raises(ServiceUnavailableError):
        client.create_task("payments", "process_payment", {"payment_id": 1})
    assert [(m, p) for m, p, _ in flaky.seen] == [("POST", "/tasker/tasks")]


def test_create_with_idempotency_key_and_graphql_queries_are_repeated(flaky: Flaky) -> None:
    flaky.script = [(503, {"Retry-After": "0"})]
    with TaskerClient(flaky.url, retry=FAST) as client:
        client.create_task("payments", "process_payment", {"payment_id": 1}, idempotency_key="k")
        assert len(flaky.seen) == 2
        flaky.script = [(429, {"Retry-After": "0"})]
        client.graphql("{ namespaces { name } }")
        assert len(flaky.seen) == 4
        flaky.script = [(503, {"Retry-After": "0"})]
        with pytest.raises(ServiceUnavailableError):
            client.graphql('mutation { cancelTask(id: "t1") { __typename } }')
        assert len(flaky.seen) == 5


def test_cancel_is_idempotent_and_retried_but_retry_is_not(flaky: Flaky) -> None:
    flaky.script = [(503, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]
    with TaskerClient(flaky.url, retry=FAST) as client:
        client.cancel_task("t1")
        assert [m for m, _, _ in flaky.seen] == ["DELETE", "DELETE", "DELETE"]
        flaky.script = [(503, {"Retry-After": "0"})]
        with pytest.raises(ServiceUnavailableError):
            client.retry_task("t1")
        assert len(flaky.seen) == 4


async def test_async_client_retries_too(flaky: Flaky) -> None:
    flaky.script = [(429, {"Retry-After": "0.1"}), (503, {})]
    async with AsyncTaskerClient(flaky.url, retry=FAST) as client:
        assert await client.namespaces() == []
    assert len(flaky.seen) == 3


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
