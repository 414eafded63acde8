"""Tokens from a person's side: the console's token field, the CLI and the client on 401."""

import subprocess
from pathlib import Path

import pytest

from server.client import AuthenticationError, TaskerClient
from tests.people.browser import open_page
from tests.people.conftest import CHROMIUM, TASKER, Server, mint


def test_client_raises_authentication_error(auth_server: Server) -> None:
    with (
        TaskerClient(auth_server.url, token=mint(-60)) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.list_tasks()
    assert caught.value.status == 401 and caught.value.code == "AUTHENTICATION_FAILED"
    with (
        TaskerClient(auth_server.url, token=mint(-60)) as client,
        pytest.raises(AuthenticationError),
    ):
        client.graphql("{ namespaces { name } }")
    with TaskerClient(auth_server.url, token=mint(600)) as client:
        assert client.list_tasks()["pagination"]["current_page"] == 1


def test_cli_reports_an_expired_token(auth_server: Server) -> None:
    env = auth_server.env(TASKER_TOKEN=mint(-60))
    run = subprocess.run(
        [TASKER, "tasks", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 1
    assert run.stderr.startswith("Error:") and "AUTHENTICATION_FAILED" in run.stderr
    assert "Traceback" not in run.stderr
    ok = subprocess.run(
        [TASKER, "tasks", "list", "--token", mint(600)],
        capture_output=True,
        text=True,
        env=auth_server.env(),
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
async def test_console_sends_an_expired_token_back_to_the_token_field(
    auth_server: Server, artifacts: Path
) -> None:
    async with open_page() as page:
        await page.goto(f"{auth_server.url}/tasker/ui#/token")
        await page.wait_for("!!document.querySelector('#token-input')")
        await page.eval(f"sessionStorage.setItem('tasker.token', {mint(-60)!r})")
        await page.goto(f"{auth_server.url}/tasker/ui#/tasks")
        await page.wait_for("!!document.querySelector('#token-expired')")
        assert location_is_token(await page.eval("location.hash"))
        assert await page.eval("sessionStorage.getItem('tasker.token')") is None
        await page.screenshot(artifacts / "console-token-expired.png")
        await page.fill("#token-input", mint(600))
        await page.click("#token-save")
        await page.wait_for("!!document.querySelector('#task-table, #no-tasks')")
        assert await page.eval("location.hash") == "#/tasks"
        assert page.errors == []


def location_is_token(hash_: str) -> bool:
    return hash_.startswith("#/token?expired=1")
