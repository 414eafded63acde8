"""The HTTP edge against a browser used by another site, and what a real server shows.

In-process (httpx against the ASGI app): Content-Type on bodies (415), the Origin of state
changes (403), the Host header (400), open mode on a non-loopback socket (403).
Against `tasker serve` / `uvicorn --factory` in a subprocess, with real clients (httpx and the
`websockets` library): websockets from a foreign Origin or Host are refused before they are
accepted, no `server: uvicorn` header, no query string in the access log.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from websockets.exceptions import InvalidStatus

from server.app import create_app
from server.auth.browser import BrowserGuardMiddleware
from server.cli import main
from tests.conftest import ROOT, fast_settings
from tests.security.conftest import secured_database

TASKS = "/tasker/tasks"
BODY = {"namespace": "shapes", "name": "diamond", "context": {}}
RAW = json.dumps(BODY).encode()
EVIL = "https://evil.example"
CREATE = 'mutation { createTask(input: {namespace: "shapes", name: "diamond", context: {}}) ' + (
    "{ __typename } }"
)


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert set(body["error"]) == {"type", "message", "code"}
    return dict(body["error"])


@pytest.fixture(scope="module")
def open_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The whole app in open mode with the default allowed hosts, addressed as 127.0.0.1."""
    settings = fast_settings(
        secured_database(request, tmp_path_factory.mktemp("guard")), allowed_hosts=""
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        yield client


def task_total(client: TestClient) -> int:
    return int(client.get(TASKS).json()["pagination"]["total_count"])


# --- Content-Type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "text/plain;charset=UTF-8"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},  # a body with no type at all
    ],
    ids=["text", "text-charset", "form", "multipart", "untyped"],
)
@pytest.mark.parametrize("origin", [None, EVIL])
def test_a_body_that_is_not_declared_json_is_a_415(
    open_client: TestClient, headers: dict[str, str], origin: str | None
):
    before = task_total(open_client)
    sent = {**headers, **({"Origin": origin} if origin else {})}
    response = open_client.post(TASKS, content=RAW, headers=sent)
    error = envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert error["type"] == "UnsupportedMediaType"
    assert task_total(open_client) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_graphql_posts_need_json_too(open_client: TestClient, content_type: str):
    before = task_total(open_client)
    body = json.dumps({"query": CREATE}).encode()
    response = open_client.post(
        "/tasker/graphql", content=body, headers={"Content-Type": content_type, "Origin": EVIL}
    )
    envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert task_total(open_client) == before


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_other_methods_with_a_body_need_json(open_client: TestClient, method: str):
    response = open_client.request(
        method, f"{TASKS}/x", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_with_parameters_and_any_case_is_json(open_client: TestClient):
    response = open_client.post(
        TASKS, content=RAW, headers={"Content-Type": "Application/JSON; charset=utf-8"}
    )
    assert response.status_code == 201, response.text


def test_a_bodiless_post_needs_no_content_type(open_client: TestClient):
    created = open_client.post(TASKS, json=BODY).json()
    response = open_client.post(f"{TASKS}/{created['id']}/retry")
    assert response.status_code == 409, response.text  # past the guard: not in error


# --- Origin -------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:9999", "file://"])
def test_a_foreign_origin_cannot_change_state(open_client: TestClient, origin: str):
    before = task_total(open_client)
    response = open_client.post(TASKS, json=BODY, headers={"Origin": origin})
    envelope(response, 403, "ORIGIN_NOT_ALLOWED")
    created = open_client.post(TASKS, json=BODY).json()
    retry = open_client.post(f"{TASKS}/{created['id']}/retry", headers={"Origin": origin})
    envelope(retry, 403, "ORIGIN_NOT_ALLOWED")
    cancel = open_client.delete(f"{TASKS}/{created['id']}", headers={"Origin": origin})
    envelope(cancel, 403, "ORIGIN_NOT_ALLOWED")
    assert task_total(open_client) == before + 1


def test_the_same_origin_and_reads_pass(open_client: TestClient):
    same = open_client.post(TASKS, json=BODY, headers={"Origin": "http://127.0.0.1:8000"})
    assert same.status_code == 201, same.text
    assert open_client.get(TASKS, headers={"Origin": EVIL}).status_code == 200


async def test_a_cors_origin_may_change_state():
    async def created(request: Any) -> PlainTextResponse:
        return PlainTextResponse("created", status_code=201)

    app = BrowserGuardMiddleware(
        Starlette(routes=[Route(TASKS, created, methods=["POST"])]),
        hosts=["localhost"],
        cors_origins=["https://ui.example"],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as c:
        ok = await c.post(TASKS, json=BODY, headers={"Origin": "https://ui.example"})
        assert ok.status_code == 201, ok.text
        refused = await c.post(TASKS, json=BODY, headers={"Origin": EVIL})
        envelope(refused, 403, "ORIGIN_NOT_ALLOWED")


def test_a_websocket_from_a_foreign_origin_is_refused_in_process(open_client: TestClient):
    from starlette.websockets import WebSocketDisconnect

    with (
        pytest.raises(WebSocketDisconnect) as closed,
        open_client.websocket_connect(
            "/tasker/graphql", subprotocols=["graphql-transport-ws"], headers={"Origin": EVIL}
        ),
    ):
        pass
    assert closed.value.code == 1008


# --- Host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.1.2.3", ""])
def test_a_foreign_host_is_a_400_in_open_mode(open_client: TestClient, host: str):
    response = open_client.get(TASKS, headers={"Host": host})
    error = envelope(response, 400, "INVALID_HOST")
    assert "TASKER_ALLOWED_HOSTS" in error["message"]


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]:8000"])
def test_loopback_names_are_answered(open_client: TestClient, host: str):
    assert open_client.get(TASKS, headers={"Host": host}).status_code == 200


async def test_configured_hosts_and_the_wildcard(tmp_path: Path):
    async def status(allowed: str, host: str, **extra: Any) -> int:
        settings = fast_settings(f"sqlite://{tmp_path / 'h.db'}", allowed_hosts=allowed, **extra)
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return (await c.get("/tasker/health/live", headers={"Host": host})).status_code

    assert await status("tasker.example,*.corp.example", "tasker.example") == 200
    assert await status("tasker.example,*.corp.example", "a.corp.example") == 200
    assert await status("tasker.example", "localhost") == 400
    assert await status("*", "anything.example") == 200
    # Authentication on and nothing configured: any Host (tokens, not the Host, protect it).
    secret = "s" * 40
    assert await status("", "anything.example", jwt_secret=secret) == 200


# --- open mode on a non-loopback socket ---------------------------------------------------------


async def test_open_mode_answers_only_loopback_sockets(tmp_path: Path):
    async def get(base: str, **extra: Any) -> httpx.Response:
        settings = fast_settings(f"sqlite://{tmp_path / 'o.db'}", allowed_hosts="*", **extra)
        # httpx's ASGI transport puts the URL's host in scope["server"], as a socket would.
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url=base) as c:
            return await c.get("/tasker/health/live")

    refused = await get("http://192.0.2.10:8000")
    error = envelope(refused, 403, "OPEN_MODE_LOOPBACK_ONLY")
    assert "TASKER_JWT_SECRET" in error["message"] and "TASKER_JWT_PUBLIC_KEY" in error["message"]
    assert (await get("http://127.0.0.1:8000")).status_code == 200
    assert (await get("http://[::1]:8000")).status_code == 200
    assert (await get("http://192.0.2.10:8000", insecure=True)).status_code == 200
    assert (await get("http://192.0.2.10:8000", jwt_secret="s" * 40)).status_code == 200


@pytest.mark.parametrize(
    ("host", "shown"), [("0.0.0.0", "0.0.0.0"), ("", "'' (an empty host: every interface)")]
)
def test_the_cli_refusal_names_both_keys_and_the_host(host: str, shown: str):
    result = CliRunner().invoke(main, ["serve", "--host", host])
    assert result.exit_code == 1
    assert f"refusing to listen on {shown} with authentication off" in result.output
    assert "TASKER_JWT_SECRET or TASKER_JWT_PUBLIC_KEY" in result.output


# --- real servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (None in a loopback-only sandbox)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing address
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def start(command: list[str], workdir: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    environment.update(
        TASKER_DATABASE_URL=f"sqlite://{workdir / 'tasker.db'}",
        TASKER_LOG_LEVEL="INFO",
        **env,
    )
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (workdir / "server.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/tasker/health/live", timeout=1).is_success:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`tasker serve` in open mode on 127.0.0.1; yields its port and its log file."""
    workdir = tmp_path_factory.mktemp("served")
    port = free_port()
    tasker = str(Path(sys.executable).parent / "tasker")
    command = [tasker, "serve", "--host", "127.0.0.1", "--port", str(port)]
    # Every request in the access log (successes are sampled by default): the log is checked.
    process = start(command, workdir, port, TASKER_ACCESS_LOG_SAMPLE="1")
    try:
        yield port, workdir / "server.log"
    finally:
        stop(process)


async def handshake(port: int, origin: str | None, host: str | None = None) -> Any:
    """Open a graphql-transport-ws socket with a real client; its first answer to init."""
    headers = {"Host": host} if host else None
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/tasker/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        origin=websockets.Origin(origin) if origin else None,
        additional_headers=headers,
        open_timeout=5,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://attacker.example:{port}", "attacker.example:{port}"),  # DNS rebinding
        ("http://evil.example", None),
        ("null", None),
    ],
)
async def test_a_real_websocket_from_elsewhere_is_refused_before_accept(
    served: tuple[int, Path], origin: str, host: str | None
):
    port, _log = served
    with pytest.raises(InvalidStatus) as refused:
        await handshake(port, origin.format(port=port), host.format(port=port) if host else None)
    assert refused.value.response.status_code in (400, 403)


async def test_a_real_websocket_from_the_server_origin_is_acknowledged(
    served: tuple[int, Path],
):
    port, _log = served
    assert await handshake(port, f"http://127.0.0.1:{port}") == {"type": "connection_ack"}
    assert await handshake(port, None) == {"type": "connection_ack"}


def test_no_server_header_and_no_query_string_in_the_access_log(served: tuple[int, Path]):
    port, log = served
    secret = "do-not-log-me-" + os.urandom(8).hex()
    response = httpx.get(f"http://127.0.0.1:{port}{TASKS}?access_token={secret}&page=1")
    assert response.status_code in (200, 422)
    assert "server" not in response.headers
    deadline = time.monotonic() + 5
    while f"{TASKS}?[redacted]" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert f"{TASKS}?[redacted]" in text
    assert secret not in text


def test_uvicorn_factory_in_open_mode_refuses_a_public_socket(tmp_path: Path):
    public = non_loopback_address()
    if public is None:
        pytest.skip("this machine has no non-loopback address")
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "server.app:create_app",
               "--host", "0.0.0.0", "--port", str(port)]  # fmt: skip
    process = start(command, tmp_path, port, TASKER_ALLOWED_HOSTS="*")
    try:
        refused = httpx.get(f"http://{public}:{port}{TASKS}", timeout=5)
        envelope(refused, 403, "OPEN_MODE_LOOPBACK_ONLY")
        assert httpx.get(f"http://127.0.0.1:{port}{TASKS}", timeout=5).status_code == 200
    finally:
        stop(process)
    assert "refused a connection" in (tmp_path / "server.log").read_text()
