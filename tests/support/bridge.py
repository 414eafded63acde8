"""A synchronous httpx transport that forwards to an app on the test's event loop, so the
CLI (sync client, run in a thread) can talk to the in-process server."""

import asyncio

import httpx


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
