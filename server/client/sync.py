"""`TaskerClient`: the blocking client (scripts, the CLI, notebooks)."""

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, cast

import httpx

from server.client import calls
from server.client.errors import TaskerError, TransportError
from server.client.transport import DEFAULT_URL, RetryPolicy, SyncTransport, raise_for_status
from server.client.types import (
    TERMINAL,
    BottleneckReport,
    Diagram,
    EventFrame,
    HandlerDetail,
    HandlerSummary,
    Namespace,
    PerformanceReport,
    Step,
    Task,
    TaskList,
)

_UNSET: Any = object()


class TaskerClient:
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

    # --- handler discovery ---
    def namespaces(self) -> list[Namespace]:
        return cast(list[Namespace], self._t.send(calls.namespaces()))

    def handlers(self, namespace: str) -> list[HandlerSummary]:
        return cast(list[HandlerSummary], self._t.send(calls.handlers(namespace)))

    def handler(self, namespace: str, name: str, version: str | None = None) -> HandlerDetail:
        return cast(HandlerDetail, self._t.send(calls.handler(namespace, name, version)))

    # --- tasks ---
    def create_task(
        self,
        namespace: str,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        version: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Task:
        """Create a task; `extra` may carry initiator, source_system, reason, tags, bypass_steps."""
        call = calls.create_task(namespace, name, context or {}, version, idempotency_key, extra)
        return cast(Task, self._t.send(call))

    def list_tasks(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        version: str | None = None,
        status: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> TaskList:
        call = calls.list_tasks(namespace, name, version, status, page, per_page)
        return cast(TaskList, self._t.send(call))

    def iter_tasks(self, *, per_page: int = 100, **filters: str | None) -> Iterator[Task]:
        """Every task matching the filters, page after page."""
        page = 1
        while True:
            found = self.list_tasks(page=page, per_page=per_page, **filters)
            yield from found["tasks"]
            if page >= found["pagination"]["total_pages"]:
                return
            page += 1

    def get_task(self, task_id: str, include_dependencies: bool = False) -> Task:
        return cast(Task, self._t.send(calls.task(task_id, include_dependencies)))

    def update_task(
        self, task_id: str, *, reason: str | None = None, tags: Iterable[str] | None = None
    ) -> Task:
        return cast(Task, self._t.send(calls.update_task(task_id, reason, tags)))

    def cancel_task(self, task_id: str) -> Task:
        return cast(Task, self._t.send(calls.cancel_task(task_id)))

    def retry_task(self, task_id: str) -> Task:
        return cast(Task, self._t.send(calls.retry_task(task_id)))

    def get_task_diagram(self, task_id: str, format: str = "json") -> Diagram | str:
        """The diagram as JSON, or (format="html") a standalone HTML page."""
        return cast(Diagram | str, self._t.send(calls.diagram(task_id, format)))

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

    # --- workflow steps ---
    def list_steps(self, task_id: str) -> list[Step]:
        return cast(list[Step], self._t.send(calls.steps(task_id)))

    def get_step(self, task_id: str, step: str | int) -> Step:
        return cast(Step, self._t.send(calls.step(task_id, step)))

    def update_step(
        self, task_id: str, step: str | int, *, retry_limit: int | None = None, inputs: Any = _UNSET
    ) -> Step:
        body: dict[str, Any] = {} if retry_limit is None else {"retry_limit": retry_limit}
        if inputs is not _UNSET:
            body["inputs"] = inputs
        return cast(Step, self._t.send(calls.update_step(task_id, step, body)))

    def cancel_step(self, task_id: str, step: str | int) -> Step:
        return cast(Step, self._t.send(calls.cancel_step(task_id, step)))

    def retry_step(self, task_id: str, step: str | int) -> Step:
        return cast(Step, self._t.send(calls.retry_step(task_id, step)))

    def resolve_step(
        self, task_id: str, step: str | int, *, results: Any = None, reason: str | None = None
    ) -> Step:
        return cast(Step, self._t.send(calls.resolve_step(task_id, step, results, reason)))

    # --- analytics, health, metrics ---
    def performance_analytics(self) -> PerformanceReport:
        return cast(PerformanceReport, self._t.send(calls.performance()))

    def bottleneck_analysis(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        version: str | None = None,
        period: int | None = None,
    ) -> BottleneckReport:
        call = calls.bottlenecks(namespace, name, version, period)
        return cast(BottleneckReport, self._t.send(call))

    def health_status(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._t.send(calls.health("status")))

    def health_ready(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._t.send(calls.health("ready")))

    def health_live(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._t.send(calls.health("live")))

    def metrics(self) -> str:
        """Prometheus text exposition."""
        return cast(str, self._t.send(calls.metrics()))

    # --- GraphQL ---
    def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """Run a GraphQL operation and return its `data`; top-level `errors` raise.

        Queries are retried like other idempotent calls, mutations are not (unless
        `idempotent=True`, e.g. cancelTask). Typed union results (`... on Error`) are data.
        """
        call = calls.graphql(query, variables, operation_name, idempotent)
        return calls.graphql_data(self._t.send(call))


__all__ = ["TaskerClient", "TaskerError"]
