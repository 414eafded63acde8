"""`TaskerClient`: the blocking client (scripts, the CLI, notebooks)."""

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import httpx

from server.client import calls
from server.client.endpoints import Endpoints
from server.client.errors import TaskerError, TransportError
from server.client.transport import DEFAULT_URL, RetryPolicy, SyncTransport, raise_for_status
from server.client.types import (
    TERMINAL,
    EventFrame,
    Task,
)


class TaskerClient(Endpoints):
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
        http: httpx.Client | None = None,
    ) -> None:
        self._t = SyncTransport(
            url, token, timeout=timeout, retry=retry or RetryPolicy(), http=http
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._t.close()

    # --- what loops, pages or streams (the plain requests are the shared `Endpoints`) ---
    def iter_tasks(self, *, per_page: int = 100, **filters: str | None) -> Iterator[Task]:
        """Every task matching the filters, page after page."""
        page = 1
        while True:
            found = self.list_tasks(page=page, per_page=per_page, **filters)
            yield from found["tasks"]
            if page >= found["pagination"]["total_pages"]:
                return
            page += 1

    def wait_for_task(self, task_id: str, timeout: float | None = None, poll: float = 0.5) -> Task:
        """Poll until the task stops (complete, error, cancelled); TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.get_task(task_id)
            if found["status"] in TERMINAL:
                return found
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {found['status']} after {timeout}s")
            time.sleep(poll)

    def events(self, task_id: str, after: int | None = None) -> Iterator[EventFrame]:
        """The task's transitions as they happen (server-sent events), ending with `end`."""
        params = {"after": after} if after is not None else None
        http = self._t.http
        try:
            with http.stream("GET", calls.events_path(task_id), params=params, timeout=None) as r:
                if r.status_code >= 400:
                    r.read()
                    raise_for_status(r)
                yield from calls.parse_sse(r.iter_lines())
        except httpx.TransportError as exc:
            raise TransportError(f"event stream broke: {exc}") from exc


__all__ = ["TaskerClient", "TaskerError"]
