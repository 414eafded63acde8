"""Every endpoint the client speaks, described once as a `Call` (see `transport`).

Each builder has the public signature and docstring of the client method of the same name and
returns the request it makes, typed by what the call returns; `endpoints` turns it into a
method of both clients. The seed's JavaScript client covers handler discovery, task creation
and reading, diagrams, analytics, health and metrics; the additive endpoints (cancel, retry,
resolve, step commands, task listing) follow DESIGN §5.5.
"""

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from server.client.errors import GraphQLError, graphql_error
from server.client.schedule_calls import create_schedule as create_schedule
from server.client.schedule_calls import delete_schedule as delete_schedule
from server.client.schedule_calls import get_schedule as get_schedule
from server.client.schedule_calls import list_schedules as list_schedules
from server.client.schedule_calls import pause_schedule as pause_schedule
from server.client.schedule_calls import resume_schedule as resume_schedule
from server.client.schedule_calls import update_schedule as update_schedule
from server.client.transport import Call
from server.client.types import (
    BatchResult,
    BottleneckReport,
    BulkResult,
    Diagram,
    EventFrame,
    HandlerDetail,
    HandlerPause,
    HandlerSummary,
    ItemPage,
    Namespace,
    PerformanceReport,
    SignalDelivery,
    Step,
    Task,
    TaskList,
)

_UNSET: Any = object()
"""`update_step(inputs=...)` not given: the inputs are left alone (None is a value)."""

_MUTATION = re.compile(r"^\s*(?:#[^\n]*\n\s*)*mutation\b")


def _seg(value: object) -> str:
    return quote(str(value), safe="")


def _step(task_id: str, step: str | int) -> str:
    return f"/tasks/{_seg(task_id)}/workflow_steps/{_seg(step)}"


def namespaces() -> Call[list[Namespace]]:
    """The handler namespaces and their descriptions."""
    return Call("GET", "/handlers", unwrap="namespaces")


def handlers(namespace: str) -> Call[list[HandlerSummary]]:
    """The handlers of a namespace (latest version of each)."""
    return Call("GET", f"/handlers/{_seg(namespace)}", unwrap="handlers")


def handler(namespace: str, name: str, version: str | None = None) -> Call[HandlerDetail]:
    """One handler with its steps and dependency graph (latest version by semver if omitted)."""
    return Call("GET", f"/handlers/{_seg(namespace)}/{_seg(name)}", {"version": version})


def create_task(
    namespace: str,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    version: str | None = None,
    idempotency_key: str | None = None,
    run_at: str | datetime | None = None,
    delay_seconds: float | None = None,
    debounce_key: str | None = None,
    debounce_seconds: float | None = None,
    priority: int | None = None,
    **extra: Any,
) -> Call[Task]:
    """Create a task; `extra` may carry initiator, source_system, reason, tags, bypass_steps.

    `run_at` (ISO 8601 with a time zone, or an aware datetime) or `delay_seconds` delays its
    start: it stays pending, its steps `scheduled`, until then. `debounce_key` (a context path
    such as "context.document_id", or a constant) with `debounce_seconds` collapses creations
    with one key inside the window into one task (the joining ones get the same task back).
    `priority` 1 (low) .. 3 (high) orders its steps among those waiting for a concurrency slot
    (default: the handler's)."""
    body = {"namespace": namespace, "name": name, "context": dict(context or {}), **extra}
    if version is not None:
        body["version"] = version
    if run_at is not None:
        body["run_at"] = run_at.isoformat() if isinstance(run_at, datetime) else run_at
    if delay_seconds is not None:
        body["delay_seconds"] = delay_seconds
    if debounce_key is not None:
        body["debounce_key"] = debounce_key
    if debounce_seconds is not None:
        body["debounce_seconds"] = debounce_seconds
    if priority is not None:
        body["priority"] = priority
    # With a key, a repeated POST returns the first task: safe to retry. Without one it is not.
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return Call("POST", "/tasks", json=body, headers=headers, idempotent=bool(idempotency_key))


def create_tasks(tasks: Iterable[Mapping[str, Any]]) -> Call[BatchResult]:
    """Create up to 1,000 tasks in one request (POST /tasks/batch): each entry is the body of
    `create_task` (namespace, name, context, version, run_at, ..., idempotency_key).

    Returns one result per entry, in order: a refused entry carries its own error and does not
    stop the others. Safe to retry only when every entry has an idempotency key."""
    entries = []
    for task in tasks:
        entry = dict(task)
        if isinstance(entry.get("run_at"), datetime):
            entry["run_at"] = entry["run_at"].isoformat()
        entries.append(entry)
    keyed = bool(entries) and all(e.get("idempotency_key") for e in entries)
    return Call("POST", "/tasks/batch", json={"tasks": entries}, idempotent=keyed)


def list_tasks(
    *,
    namespace: str | None = None,
    name: str | None = None,
    version: str | None = None,
    status: str | None = None,
    page: int | None = None,
    per_page: int | None = None,
) -> Call[TaskList]:
    """One page of tasks, newest first, with its pagination."""
    params = {
        "namespace": namespace,
        "name": name,
        "version": version,
        "status": status,
        "page": page,
        "per_page": per_page,
    }
    return Call("GET", "/tasks", params)


def get_task(task_id: str, include_dependencies: bool = False) -> Call[Task]:
    """One task with its steps (and, if asked, the dependency analysis)."""
    params = {"include_dependencies": True} if include_dependencies else None
    return Call("GET", f"/tasks/{_seg(task_id)}", params)


def update_task(
    task_id: str, *, reason: str | None = None, tags: Iterable[str] | None = None
) -> Call[Task]:
    """Change a task's reason or tags."""
    body: dict[str, Any] = {}
    if reason is not None:
        body["reason"] = reason
    if tags is not None:
        body["tags"] = list(tags)
    return Call("PATCH", f"/tasks/{_seg(task_id)}", json=body)


def cancel_task(task_id: str) -> Call[Task]:
    """Cancel a task and its unfinished steps."""
    return Call("DELETE", f"/tasks/{_seg(task_id)}")  # idempotent on the server


def retry_task(task_id: str) -> Call[Task]:
    """Re-run the failed steps of a task in error (a second retry is a 409)."""
    # A second retry of a task already retried is a 409, not a no-op: never repeat it blindly.
    return Call("POST", f"/tasks/{_seg(task_id)}/retry", idempotent=False)


def pause_task(task_id: str) -> Call[Task]:
    """Pause a task: running steps finish, no new step starts (repeating is no error)."""
    return Call("POST", f"/tasks/{_seg(task_id)}/pause")  # idempotent on the server


def resume_task(task_id: str) -> Call[Task]:
    """Resume a paused task: its ready steps start at once (repeating is no error)."""
    return Call("POST", f"/tasks/{_seg(task_id)}/resume")


def pause_handler(namespace: str, name: str, *, version: str | None = None) -> Call[HandlerPause]:
    """Pause a handler (every version, or one): no step of its tasks, present and future,
    starts until it is resumed."""
    params = {"version": version} if version else None
    return Call("POST", f"/handlers/{_seg(namespace)}/{_seg(name)}/pause", params=params)


def resume_handler(namespace: str, name: str, *, version: str | None = None) -> Call[HandlerPause]:
    """Resume a paused handler (every pause of it, or one version's)."""
    params = {"version": version} if version else None
    return Call("POST", f"/handlers/{_seg(namespace)}/{_seg(name)}/resume", params=params)


def rerun_task(
    task_id: str,
    from_step: str,
    *,
    context: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Call[Task]:
    """Fork a finished task: a new task (`forked_from`) keeps the results of the steps not
    downstream of `from_step` and re-runs the rest, with `context` (replacing the task's) and
    `inputs` (by step name) when given."""
    body: dict[str, Any] = {"from_step": from_step}
    if context is not None:
        body["context"] = dict(context)
    if inputs is not None:
        body["inputs"] = dict(inputs)
    # Each call creates a task: never repeat it blindly.
    return Call("POST", f"/tasks/{_seg(task_id)}/rerun", json=body, idempotent=False)


def _bulk(
    action: str, filter: Mapping[str, Any], limit: int | None, cursor: str | None, **extra: Any
) -> Call[BulkResult]:
    body: dict[str, Any] = {"filter": dict(filter), **extra}
    if limit is not None:
        body["limit"] = limit
    if cursor is not None:
        body["cursor"] = cursor
    return Call("POST", f"/tasks/bulk/{action}", json=body, idempotent=action != "rerun")


def bulk_cancel_tasks(
    filter: Mapping[str, Any], *, limit: int | None = None, cursor: str | None = None
) -> Call[BulkResult]:
    """Cancel every task `filter` matches (namespace, name, version, status, created_after,
    created_before, ids): `{count, ids, next_cursor}`; pass `next_cursor` to go on."""
    return _bulk("cancel", filter, limit, cursor)


def bulk_retry_tasks(
    filter: Mapping[str, Any], *, limit: int | None = None, cursor: str | None = None
) -> Call[BulkResult]:
    """Retry every errored task `filter` matches: `{count, ids, next_cursor}`."""
    return _bulk("retry", filter, limit, cursor)


def bulk_rerun_tasks(
    filter: Mapping[str, Any],
    from_step: str,
    *,
    context: Mapping[str, Any] | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[BulkResult]:
    """Fork every finished task `filter` matches from `from_step`: the new tasks' ids."""
    extra: dict[str, Any] = {"from_step": from_step}
    if context is not None:
        extra["context"] = dict(context)
    return _bulk("rerun", filter, limit, cursor, **extra)


def get_task_diagram(task_id: str, format: str = "json") -> Call[Diagram | str]:
    """The diagram as JSON, or (format="html") a standalone HTML page."""
    path = f"/tasks/{_seg(task_id)}/task_diagrams"
    return Call("GET", path, {"format": format}, text=format == "html")


def list_steps(task_id: str) -> Call[list[Step]]:
    """A task's workflow steps."""
    return Call("GET", f"/tasks/{_seg(task_id)}/workflow_steps", unwrap="workflow_steps")


def get_step(task_id: str, step: str | int) -> Call[Step]:
    """One step, by name or id."""
    return Call("GET", _step(task_id, step))


def list_step_items(
    task_id: str, step: str | int, *, after: int | None = None, first: int = 100
) -> Call[ItemPage]:
    """A page of a map step's items in input order, with its progress counts; pass the
    page's `next_after` as `after` for the next one."""
    params: dict[str, Any] = {"first": first}
    if after is not None:
        params["after"] = after
    return Call("GET", f"{_step(task_id, step)}/items", params=params)


def update_step(
    task_id: str, step: str | int, *, retry_limit: int | None = None, inputs: Any = _UNSET
) -> Call[Step]:
    """Change a step's retry limit or inputs; only what is given is sent."""
    body: dict[str, Any] = {} if retry_limit is None else {"retry_limit": retry_limit}
    if inputs is not _UNSET:
        body["inputs"] = inputs
    return Call("PATCH", _step(task_id, step), json=body)


def cancel_step(task_id: str, step: str | int) -> Call[Step]:
    """Cancel one step."""
    return Call("DELETE", _step(task_id, step))


def retry_step(task_id: str, step: str | int) -> Call[Step]:
    """Run a failed step again (a second retry is a 409)."""
    return Call("POST", f"{_step(task_id, step)}/retry", json={}, idempotent=False)


def resolve_step(
    task_id: str, step: str | int, *, results: Any = None, reason: str | None = None
) -> Call[Step]:
    """Mark a step resolved by hand, with the results its dependents will see."""
    body: dict[str, Any] = {"results": results}
    if reason is not None:
        body["reason"] = reason
    return Call("POST", f"{_step(task_id, step)}/resolve", json=body)  # idempotent on the server


def send_signal(
    task_id: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    signal_id: str | None = None,
) -> Call[SignalDelivery]:
    """Deliver signal `name` to the task's wait_for step; `payload` becomes its results.

    With a `signal_id` a repeat is delivered once (safe to retry); without one it is not."""
    body: dict[str, Any] = {"payload": dict(payload or {})}
    if signal_id is not None:
        body["signal_id"] = signal_id
    path = f"/tasks/{_seg(task_id)}/signals/{_seg(name)}"
    return Call("POST", path, json=body, idempotent=signal_id is not None)


def performance_analytics() -> Call[PerformanceReport]:
    """System-wide performance figures."""
    return Call("GET", "/analytics/performance")


def bottleneck_analysis(
    *,
    namespace: str | None = None,
    name: str | None = None,
    version: str | None = None,
    period: int | None = None,
) -> Call[BottleneckReport]:
    """The slowest and most failing steps, optionally for one handler and period (hours)."""
    params = {"namespace": namespace, "name": name, "version": version, "period": period}
    return Call("GET", "/analytics/bottlenecks", params)


def health_status() -> Call[dict[str, Any]]:
    """The detailed health report."""
    return Call("GET", "/health/status")


def health_ready() -> Call[dict[str, Any]]:
    """Readiness: whether this server can take work."""
    return Call("GET", "/health/ready")


def health_live() -> Call[dict[str, Any]]:
    """Liveness: the process answers."""
    return Call("GET", "/health/live")


def metrics() -> Call[str]:
    """Prometheus text exposition."""
    return Call("GET", "/metrics", text=True)


def graphql(
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    operation_name: str | None = None,
    idempotent: bool | None = None,
) -> Call[dict[str, Any]]:
    """Run a GraphQL operation and return its `data`; top-level `errors` raise.

    Queries are retried like other idempotent calls, mutations are not (unless
    `idempotent=True`, e.g. cancelTask). Typed union results (`... on Error`) are data.
    """
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = dict(variables)
    if operation_name:
        body["operationName"] = operation_name
    safe = idempotent if idempotent is not None else not _MUTATION.match(query)
    return Call("POST", "/graphql", json=body, idempotent=safe, decode=graphql_data)


def graphql_data(body: Any) -> dict[str, Any]:
    """`data` of a GraphQL response; its top-level `errors` raised as a typed exception."""
    if not isinstance(body, dict):
        raise GraphQLError("GraphQL response is not a JSON object", [])
    if body.get("errors"):
        raise graphql_error(list(body["errors"]))
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def events_path(task_id: str) -> str:
    return f"/tasks/{_seg(task_id)}/events"


class SseDecoder:
    """Turns server-sent-event lines into frames; comments (keepalives) are skipped."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []
        self.id: str | None = None

    def _reset(self) -> None:
        self.event, self.data, self.id = "message", [], None

    def feed(self, line: str) -> EventFrame | None:
        """One line in (without its newline); a frame out when a blank line ends one."""
        if line == "":
            frame = None
            if self.data:
                data = json.loads("\n".join(self.data))
                frame = EventFrame(event=self.event, id=self.id, data=data)
            self._reset()
            return frame
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            self.event = value
        elif key == "data":
            self.data.append(value)
        elif key == "id":
            self.id = value
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[EventFrame]:
    """Frames from a stream of lines."""
    decoder = SseDecoder()
    for line in lines:
        frame = decoder.feed(line)
        if frame is not None:
            yield frame
