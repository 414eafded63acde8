"""GraphiQL in a real browser, offline: headless Chromium runs a query on a uvicorn server.

Chromium is driven over the DevTools protocol; every host name except the server's address
resolves to nothing, so the page can only work with the vendored files.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

from server.assets import missing

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is not installed (apt-get install -y chromium)",
    ),
    pytest.mark.skipif(
        bool(missing()), reason="vendored browser assets not fetched (python -m server.assets)"
    ),
]


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "TASKER_DATABASE_URL": f"sqlite://{tmp_path / 'tasker.db'}",
        "TASKER_EXAMPLES": "true",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "server.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/tasker/health/live"), 30, "the server")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        port = wait_for(
            lambda: port_file.exists() and port_file.read_text().split()[0],
            30,
            "Chromium's DevTools port",
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    def __init__(self, devtools: str) -> None:
        targets = json.loads(http_get(f"{devtools}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return dict(message["result"])

    def close(self) -> None:
        self.ws.close()

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@pytest.fixture
def page(browser: str) -> Iterator[Page]:
    page = Page(browser)
    try:
        yield page
    finally:
        page.close()


def test_graphiql_runs_a_query_offline(server: str, page: Page) -> None:
    query = '{ namespace(name: "payments") { name handlerCount } }'
    page.call("Page.navigate", url=f"{server}/tasker/graphql?q={quote(query)}")
    wait_for(
        lambda: page.evaluate("!!document.querySelector('.graphiql-execute-button')"),
        30,
        "GraphiQL to render (it stays at 'Loading...' when its scripts fail)",
    )
    page.evaluate("document.querySelector('.graphiql-execute-button').click()")
    text = wait_for(
        lambda: (
            (t := page.evaluate("document.querySelector('.result-window')?.innerText || ''"))
            and "handlerCount" in t
            and t
        ),
        30,
        "the result pane",
    )
    assert '"name": "payments"' in text
    assert '"handlerCount": 5' in text
