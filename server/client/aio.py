"""`AsyncTaskerClient`: the asyncio client (services, notebooks with await, tests)."""

import asyncio
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

import httpx

from server.client import calls
from server.client.endpoints import Endpoints
from server.client.errors import TaskerError, TransportError
from server.client.transport import DEFAULT_URL, AsyncTransport, RetryPolicy, raise_for_status
from server.client.types import (
    TERMINAL,
    EventFrame,
    Task,
)


class AsyncTaskerClient(Endpoints):
    """A Tasker server's REST API (and its GraphQL endpoint), one method per endpoint.

    `url` is the server (`http://host:8000`, with or without `/tasker`); `token` is sent as
    `Authorization: Bearer`. Failures raise `TaskerError` subclasses. Idempotent calls are
    retried on 429/503 per `retry`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._t = AsyncTransport(
            url, token, timeout=timeout, retry=retry or RetryPolicy(), http=http
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._t.close()

    # --- what loops, pages or streams (the plain requests are the shared `Endpoints`) ---
    async def iter_tasks(
        self, *, per_page: int = 100, **filters: str | None
    ) -> AsyncIterator[Task]:
        """Every task matching the filters, page after page."""
        page = 1
        while True:
            found = await self.list_tasks(page=page, per_page=per_page, **filters)
            for item in found["tasks"]:
                yield item
            if page >= found["pagination"]["total_pages"]:
                return
            page += 1

    async def wait_for_task(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the same signature as TaskerClient's
        poll: float = 0.5,
    ) -> Task:
        """Poll until the task stops (complete, error, cancelled); TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = await self.get_task(task_id)
            if found["status"] in TERMINAL:
                return found
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {found['status']} after {timeout}s")
            await asyncio.sleep(poll)

    async def events(self, task_id: str, after: int | None = None) -> AsyncIterator[EventFrame]:
        """The task's transitions as they happen (server-sent events), ending with `end`."""
        params = {"after": after} if after is not None else None
        http = self._t.http
        decoder = calls.SseDecoder()
        try:
            path = calls.events_path(task_id)
            async with http.stream("GET", path, params=params, timeout=None) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise_for_status(r)
                async for line in r.aiter_lines():
                    frame = decoder.feed(line)
                    if frame is not None:
                        yield frame
        except httpx.TransportError as exc:
            raise TransportError(f"event stream broke: {exc}") from exc


__all__ = ["AsyncTaskerClient", "TaskerError"]
