"""The built-in HTTP step handler, against a real HTTP server on 127.0.0.1."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest

from server.domain.errors import PermanentError, RetryableError
from server.handlers.base import StepContext
from server.handlers.http import ALLOWED_HOSTS_ENV, HttpStepHandler


class _Routes(BaseHTTPRequestHandler):
    """`/echo...` echoes the request; `/status/<code>?retry_after=...`; `/text`; `/slow`."""

    def _respond(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if url.path.startswith("/echo"):
            body = json.dumps({
                "method": self.command,
                "path": url.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(raw) if raw.startswith(("{", "[")) else raw,
            })  # fmt: skip
            self._send(200, body, "application/json")
        elif url.path == "/text":
            self._send(200, "plain words", "text/plain")
        elif url.path == "/slow":
            time.sleep(0.5)
            self._send(200, "{}", "application/json")
        elif url.path.startswith("/status/"):
            retry_after = parse_qs(url.query).get("retry_after")
            extra = {"Retry-After": retry_after[0]} if retry_after else {}
            self._send(int(url.path.rsplit("/", 1)[1]), "nope", "text/plain", extra)
        else:
            self._send(404, "not found", "text/plain")

    def _send(self, status: int, body: str, kind: str, extra: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _respond  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the timeout test's client hangs up early; that is expected


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Routes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def no_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOWED_HOSTS_ENV, raising=False)


TASK_ID = UUID("12345678-1234-5678-1234-567812345678")


def step(config: dict[str, Any], **overrides: Any) -> StepContext:
    values: dict[str, Any] = {
        "task_id": TASK_ID,
        "name": "call_service",
        "attempt": 1,
        "context": {"order_id": 42, "amount": 9.5, "customer": {"email": "a b@example.com"}},
        "inputs": {"note": "hi"},
        "config": {"type": "http", **config},
        "parent_results": {"validate": {"ok": True}},
    }
    values.update(overrides)
    return StepContext(**values)


async def run(config: dict[str, Any], **overrides: Any) -> Any:
    return await HttpStepHandler().process(step(config, **overrides))


async def test_a_2xx_json_response_is_the_result_and_post_sends_the_default_body(
    base_url: str,
) -> None:
    result = await run({"url": f"{base_url}/echo"})

    assert result["method"] == "POST"
    assert result["body"] == {
        "task_id": str(TASK_ID),
        "step": "call_service",
        "context": {"order_id": 42, "amount": 9.5, "customer": {"email": "a b@example.com"}},
        "inputs": {"note": "hi"},
        "parent_results": {"validate": {"ok": True}},
    }


async def test_get_sends_no_body_and_the_configured_headers(base_url: str) -> None:
    result = await run({"url": f"{base_url}/echo", "method": "get", "headers": {"X-Key": "k"}})

    assert (result["method"], result["body"]) == ("GET", "")
    assert result["headers"]["x-key"] == "k"


async def test_a_non_json_2xx_response_is_returned_as_status_and_text(base_url: str) -> None:
    assert await run({"url": f"{base_url}/text"}) == {"status": 200, "body": "plain words"}


async def test_placeholders_fill_the_url_headers_and_body(base_url: str) -> None:
    config = {
        "url": f"{base_url}/echo/{{context.order_id}}/{{context.customer.email}}",
        "method": "PUT",
        "headers": {"X-Task": "{task_id}", "X-Step": "{step}"},
        "json": {"amount": "{context.amount}", "label": "order {context.order_id}",
                 "lines": ["{inputs.note}", "{parent_results.validate.ok}"]},
    }  # fmt: skip

    result = await run(config)

    assert result["path"] == "/echo/42/a%20b%40example.com"
    assert result["headers"]["x-task"] == str(TASK_ID)
    assert result["headers"]["x-step"] == "call_service"
    assert result["body"] == {"amount": 9.5, "label": "order 42", "lines": ["hi", True]}


async def test_a_string_body_is_sent_as_is(base_url: str) -> None:
    result = await run({"url": f"{base_url}/echo", "body": "order={context.order_id}"})

    assert result["body"] == "order=42"


async def test_a_missing_placeholder_value_fails_permanently(base_url: str) -> None:
    with pytest.raises(PermanentError) as caught:
        await run({"url": f"{base_url}/echo/{{context.nope}}"})

    assert caught.value.code == "HTTP_TEMPLATE"


async def test_429_retries_after_the_seconds_in_retry_after(base_url: str) -> None:
    with pytest.raises(RetryableError) as caught:
        await run({"url": f"{base_url}/status/429?retry_after=7"})

    assert caught.value.retry_after == 7


async def test_503_retries_after_an_http_date_in_retry_after(base_url: str) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)

    with pytest.raises(RetryableError) as caught:
        await run({"url": f"{base_url}/status/503?retry_after={when.replace(' ', '%20')}"})

    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_other_5xx_statuses_retry_with_normal_backoff(base_url: str, status: int) -> None:
    with pytest.raises(RetryableError, match=str(status)) as caught:
        await run({"url": f"{base_url}/status/{status}"})

    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 404, 422, 302])
async def test_other_statuses_fail_permanently_with_their_code(base_url: str, status: int) -> None:
    with pytest.raises(PermanentError) as caught:
        await run({"url": f"{base_url}/status/{status}"})

    assert caught.value.code == f"HTTP_{status}"


async def test_a_refused_connection_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(RetryableError):
        await run({"url": f"http://127.0.0.1:{port}/"})


async def test_a_timeout_retries(base_url: str) -> None:
    with pytest.raises(RetryableError, match="timed out"):
        await run({"url": f"{base_url}/slow", "timeout": 0.1})


async def test_the_step_timeout_is_the_default_request_timeout(base_url: str) -> None:
    with pytest.raises(RetryableError, match=r"timed out after 0\.1s"):
        await run({"url": f"{base_url}/slow"}, timeout_seconds=0.1)


async def test_hosts_outside_the_allowlist_fail_permanently(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "api.example.com, *.internal.example")

    with pytest.raises(PermanentError) as caught:
        await run({"url": f"{base_url}/echo"})

    assert caught.value.code == "HTTP_HOST_NOT_ALLOWED"


async def test_allowlisted_hosts_are_called(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "api.example.com,127.0.0.1")

    assert (await run({"url": f"{base_url}/echo"}))["method"] == "POST"


async def test_an_explicit_allowlist_overrides_the_environment(base_url: str) -> None:
    handler = HttpStepHandler(allowed_hosts=["*.example.com"])

    with pytest.raises(PermanentError, match="not allowed"):
        await handler.process(step({"url": f"{base_url}/echo"}))


@pytest.mark.parametrize(
    "config",
    [{}, {"url": ""}, {"url": "ftp://127.0.0.1/x"}, {"url": "http://"}, {"url": "http://[::1"}],
    ids=["no-url", "empty-url", "not-http", "no-host", "unparsable"],
)
async def test_a_bad_url_fails_permanently(config: dict[str, Any]) -> None:
    with pytest.raises(PermanentError) as caught:
        await run(config)

    assert caught.value.code == "HTTP_CONFIG"
