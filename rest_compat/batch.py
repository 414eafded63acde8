"""`POST /tasker/tasks/batch`: up to `MAX_BATCH` tasks in one request, one result per task.

Each entry of `tasks` is the body of `POST /tasker/tasks` plus an optional `idempotency_key`
(the header's role, per task). An entry that cannot be read or is refused gets its own error
envelope at its index; the others are created all the same. The reply lists every entry in
input order: `{"index": i, "status": 201|200, "task": {...}}` for a created (201) or earlier
(200, same idempotency key and request) task, `{"index": i, "status": 4xx, "error": {...}}`
otherwise, then the counts. A body over the cap is refused whole (422, 413 over the byte
limit) before any task is read.
"""

from typing import Any

from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from rest_compat import serializers
from rest_compat.errors import error_body, status_for
from rest_compat.operations import _invalid, render_json, services_of
from rest_compat.params import Body, CreateTaskBody, Key
from rest_compat.shapes import ErrorDetail, Shape, TaskOut
from server.domain.errors import DomainError, InvalidTaskConfig, ValidationFailed
from server.domain.views import CreateTask
from server.services.creation import MAX_BATCH as MAX_BATCH


class BatchTaskIn(CreateTaskBody):
    idempotency_key: Key | None = Field(
        None,
        min_length=1,
        description="As the Idempotency-Key header of POST /tasker/tasks, for this task",
    )


class BatchCreateBody(Body):
    tasks: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"The tasks to create (1 to {MAX_BATCH}), each as the body of "
        "POST /tasker/tasks plus an optional idempotency_key",
        json_schema_extra={"items": BatchTaskIn.model_json_schema()},
    )


class BatchItemOut(Shape):
    index: int = Field(description="The entry's position in `tasks`")
    status: int = Field(
        description="201 created, 200 an earlier task with this key, else the error's status"
    )
    task: TaskOut | None = None
    error: ErrorDetail | None = None


class BatchOut(Shape):
    results: list[BatchItemOut] = Field(description="One per entry, in input order")
    created: int
    existing: int = Field(description="Entries answered by the task their key created earlier")
    failed: int


async def create_tasks(request: Request, body: BatchCreateBody) -> Response:
    services = services_of(request)
    subject = services.auth.subject(request.scope)
    results: list[dict[str, Any] | None] = [None] * len(body.tasks)
    reqs: list[CreateTask] = []
    positions: list[int] = []
    for index, raw in enumerate(body.tasks):
        try:
            reqs.append(_request(raw, subject))
            positions.append(index)
        except DomainError as exc:
            results[index] = _failure(index, exc)
    outcomes = await services.tasks.create_tasks(reqs)
    for index, outcome in zip(positions, outcomes, strict=True):
        if isinstance(outcome, DomainError):
            results[index] = _failure(index, outcome)
        else:
            view, created = outcome
            status = 201 if created else 200
            results[index] = {"index": index, "status": status, "task": serializers.task_json(view)}
    done = [r for r in results if r is not None]
    reply = {
        "results": done,
        "created": sum(r["status"] == 201 for r in done),
        "existing": sum(r["status"] == 200 for r in done),
        "failed": sum("task" not in r for r in done),
    }
    return render_json(reply, BatchOut)


def _request(raw: Any, subject: str | None) -> CreateTask:
    """One entry as a creation request; InvalidTaskConfig when it cannot be read."""
    if not isinstance(raw, dict):
        raise InvalidTaskConfig.of({"body": ["must be a JSON object"]})
    try:
        item = BatchTaskIn.model_validate(raw)
    except ValidationError as exc:
        error = _invalid(exc)
        details = error.details if isinstance(error, ValidationFailed) else None
        raise InvalidTaskConfig.of(details or {"body": [str(error)]}) from None
    return CreateTask(
        namespace=item.namespace,
        name=item.name,
        version=item.version,
        context=item.context,
        initiator=item.initiator,
        source_system=item.source_system,
        reason=item.reason,
        tags=tuple(item.tags),
        bypass_steps=tuple(item.bypass_steps),
        idempotency_key=item.idempotency_key,
        run_at=item.run_at,
        delay_seconds=item.delay_seconds,
        subject=subject,
    )


def _failure(index: int, exc: DomainError) -> dict[str, Any]:
    if isinstance(exc, ValidationFailed) and not isinstance(exc, InvalidTaskConfig):
        exc = InvalidTaskConfig.of(exc.details or {})  # the code POST /tasker/tasks answers
    envelope = error_body(exc.type, exc.code, exc.message, exc.details)
    return {"index": index, "status": status_for(exc), **envelope}
