"""Every endpoint the client speaks, described once as a `Call` (see `transport`).

The seed's JavaScript client covers handler discovery, task creation and reading, diagrams,
analytics, health and metrics; the additive endpoints (cancel, retry, resolve, step commands,
task listing) follow DESIGN §5.5. Both clients build their requests here.
"""

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from server.client.errors import GraphQLError, graphql_error
from server.client.transport import Call
from server.client.types import EventFrame

_MUTATION = re.compile(r"^\s*(?:#[^\n]*\n\s*)*mutation\b")


def _seg(value: object) -> str:
    return quote(str(value), safe="")


def _step(task_id: str, step: str | int) -> str:
    return f"/tasks/{_seg(task_id)}/workflow_steps/{_seg(step)}"


def namespaces() -> Call:
    return Call("GET", "/handlers", unwrap="namespaces")


def handlers(namespace: str) -> Call:
    return Call("GET", f"/handlers/{_seg(namespace)}", unwrap="handlers")


def handler(namespace: str, name: str, version: str | None) -> Call:
    return Call("GET", f"/handlers/{_seg(namespace)}/{_seg(name)}", {"version": version})


def create_task(
    namespace: str,
    name: str,
    context: Mapping[str, Any],
    version: str | None,
    idempotency_key: str | None,
    extra: Mapping[str, Any],
) -> Call:
    body = {"namespace": namespace, "name": name, "context": dict(context), **extra}
    if version is not None:
        body["version"] = version
    # With a key, a repeated POST returns the first task: safe to retry. Without one it is not.
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return Call("POST", "/tasks", json=body, headers=headers, idempotent=bool(idempotency_key))


def list_tasks(
    namespace: str | None,
    name: str | None,
    version: str | None,
    status: str | None,
    page: int | None,
    per_page: int | None,
) -> Call:
    params = {
        "namespace": namespace,
        "name": name,
        "version": version,
        "status": status,
        "page": page,
        "per_page": per_page,
    }
    return Call("GET", "/tasks", params)


def task(task_id: str, include_dependencies: bool) -> Call:
    params = {"include_dependencies": True} if include_dependencies else None
    return Call("GET", f"/tasks/{_seg(task_id)}", params)


def update_task(task_id: str, reason: str | None, tags: Iterable[str] | None) -> Call:
    body: dict[str, Any] = {}
    if reason is not None:
        body["reason"] = reason
    if tags is not None:
        body["tags"] = list(tags)
    return Call("PATCH", f"/tasks/{_seg(task_id)}", json=body)


def cancel_task(task_id: str) -> Call:
    return Call("DELETE", f"/tasks/{_seg(task_id)}")  # idempotent on the server


def retry_task(task_id: str) -> Call:
    # A second retry of a task already retried is a 409, not a no-op: never repeat it blindly.
    return Call("POST", f"/tasks/{_seg(task_id)}/retry", idempotent=False)


def diagram(task_id: str, fmt: str) -> Call:
    return Call("GET", f"/tasks/{_seg(task_id)}/task_diagrams", {"format": fmt}, text=fmt == "html")


def steps(task_id: str) -> Call:
    return Call("GET", f"/tasks/{_seg(task_id)}/workflow_steps", unwrap="workflow_steps")


def step(task_id: str, step: str | int) -> Call:
    return Call("GET", _step(task_id, step))


def update_step(task_id: str, step: str | int, body: Mapping[str, Any]) -> Call:
    return Call("PATCH", _step(task_id, step), json=dict(body))


def cancel_step(task_id: str, step: str | int) -> Call:
    return Call("DELETE", _step(task_id, step))


def retry_step(task_id: str, step: str | int) -> Call:
    return Call("POST", f"{_step(task_id, step)}/retry", json={}, idempotent=False)


def resolve_step(task_id: str, step: str | int, results: Any, reason: str | None) -> Call:
    body: dict[str, Any] = {"results": results}
    if reason is not None:
        body["reason"] = reason
    return Call("POST", f"{_step(task_id, step)}/resolve", json=body)  # idempotent on the server


def performance() -> Call:
    return Call("GET", "/analytics/performance")


def bottlenecks(
    namespace: str | None, name: str | None, version: str | None, period: int | None
) -> Call:
    params = {"namespace": namespace, "name": name, "version": version, "period": period}
    return Call("GET", "/analytics/bottlenecks", params)


def health(kind: str) -> Call:
    return Call("GET", f"/health/{kind}")


def metrics() -> Call:
    return Call("GET", "/metrics", text=True)


def graphql(
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    idempotent: bool | None,
) -> Call:
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = dict(variables)
    if operation_name:
        body["operationName"] = operation_name
    safe = idempotent if idempotent is not None else not _MUTATION.match(query)
    return Call("POST", "/graphql", json=body, idempotent=safe)


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
