"""A real `tasker serve` on a free loopback port, shared by the client, CLI and console tests.

These tests use Tasker the way people do: over HTTP, websockets and the command line, from
another process. The server runs the bundled examples plus `handlers/` here (a gated workflow
the tests can make fail and then fix), on its own SQLite file, with fast retry backoff.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.people.browser import Page, open_page

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
TASKER = str(Path(sys.executable).parent / "tasker")


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    workdir: Path

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for CLI subprocesses pointing at this server."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
        return {**base, "TASKER_URL": self.url, "NO_COLOR": "1", "COLUMNS": "200", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(workdir: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    return {
        **base,
        "PYTHONPATH": str(ROOT),  # the gated handlers live in tests.people.gate
        "TASKER_DATABASE_URL": f"sqlite://{workdir / 'tasker.db'}",
        "TASKER_EXAMPLES": "true",
        "TASKER_HANDLERS_PATH": str(HERE / "handlers"),
        "TASKER_BACKOFF_BASE_SECONDS": "0.05",
        "TASKER_BACKOFF_MAX_SECONDS": "0.5",
        "TASKER_SWEEP_INTERVAL": "0.5",
        "TASKER_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_server(workdir: Path, **extra: str) -> tuple[subprocess.Popen[bytes], Server]:
    port = free_port()
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [TASKER, "serve", "--port", str(port)],
            cwd=workdir,
            env=server_env(workdir, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", log, workdir)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{server.url}/tasker/health/live", timeout=2).status_code == 200:
                return process, server
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"tasker serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole session (tests create their own tasks and never reset it)."""
    workdir = tmp_path_factory.mktemp("tasker-server")
    process, running = start_server(workdir)
    try:
        yield running
    finally:
        stop_server(process)


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """A gate file path that does not exist yet (the gated workflow fails until it does)."""
    return tmp_path / "gate"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are kept after the run (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"
)
IN_BROWSER = [pytest.mark.browser, NEEDS_CHROMIUM]
"""The marks of a test that drives headless Chromium (skipped without it)."""


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A page in headless Chromium; the test fails on any JavaScript error the page raised."""
    async with open_page() as opened:
        yield opened
        assert opened.errors == [], f"JavaScript errors: {opened.errors}"


SECRET = "people-tests-secret-that-is-long-enough-for-hs256"


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second server with authentication on (HS256); skips while the server ignores tokens."""
    workdir = tmp_path_factory.mktemp("tasker-auth-server")
    process, running = start_server(workdir, TASKER_JWT_SECRET=SECRET)
    try:
        if httpx.get(f"{running.url}/tasker/tasks", timeout=5).status_code != 401:
            pytest.skip("this server does not enforce authentication yet (TASKER_JWT_SECRET set)")
        yield running
    finally:
        stop_server(process)


def mint(expires_in: float, permissions: list[str] | None = None) -> str:
    """A token for `auth_server`; a negative `expires_in` gives an expired one."""
    import jwt

    claims = {
        "sub": "people-tests",
        "exp": int(time.time() + expires_in),
        "permissions": permissions if permissions is not None else ["*"],
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")
