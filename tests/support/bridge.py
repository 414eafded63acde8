"""The CLI against the in-process app: a synchronous httpx transport that forwards each request
to the app on the test's event loop (the CLI's sync client runs in a worker thread)."""

import asyncio
import importlib

import httpx
import pytest

from server.client.sync import TaskerClient


class Bridge(httpx.BaseTransport):
    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def forward() -> httpx.Response:
            sent = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.read()
            )
            answer = await self.client.send(sent)
            await answer.aread()
            return answer

        answer = asyncio.run_coroutine_threadsafe(forward(), self.loop).result(30)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def cli_talks_to(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `tasker ...` commands reach the app behind `client` (call from the test's loop)."""
    bridge = Bridge(client, asyncio.get_running_loop())

    def bridged(url: str, token: str | None = None) -> TaskerClient:
        return TaskerClient(url, token, http=httpx.Client(transport=bridge, base_url=url))

    # The package names a click group `tasks`, hiding the module: import it by its path.
    monkeypatch.setattr(importlib.import_module("server.cli.tasks"), "TaskerClient", bridged)
