"""Response bodies as pydantic models: the JSON shapes of seed/REST_API.md, and ours beside it.

Endpoints return instances of these and the OpenAPI document is generated from the same
classes, so the document cannot drift from what is served. Field order follows the seed.
Timestamps are ISO-8601 UTC with a `Z` and millisecond precision (as Rails renders them).
"""

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from server.domain.states import StepState, TaskState


def iso_z(value: datetime) -> str:
    """`2024-01-15T10:30:00.000Z`: UTC, milliseconds, as Rails renders times."""
    # Twice per task in every list: orjson formats in C, a third of `isoformat`'s cost on an
    # aware datetime (whose `utcoffset` call dominated), and a fifth of a task page's CPU was here.
    # Its RFC 3339 text is cut to milliseconds; stored times are UTC already.
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()
    # '"2024-01-15T10:30:00Z"' has no fraction; '"2024-01-15T10:30:00.123456Z"' has micros.
    return f"{text[1:24]}Z" if len(text) > 22 else f"{text[1:20]}.000Z"


Timestamp = Annotated[
    datetime,
    PlainSerializer(iso_z, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2024-01-15T10:30:00Z"]}),
]
JsonValue = Annotated[Any, Field(description="Any JSON value")]


class Shape(BaseModel):
    """Base of every response body."""

    model_config = ConfigDict(populate_by_name=True, use_enum_values=True)


# --- handler discovery -------------------------------------------------------------------


class NamespaceOut(Shape):
    name: str
    description: str | None
    handler_count: int
    handlers: list[str]


class NamespaceList(Shape):
    namespaces: list[NamespaceOut]


class HandlerSummary(Shape):
    id: str = Field(description="The handler name")
    namespace: str
    version: str
    description: str | None
    step_count: int
    step_names: list[str]
    paused: bool = Field(False, description="This handler version is paused")


class NamespaceHandlers(Shape):
    namespace: str
    handlers: list[HandlerSummary] = Field(description="The latest version of each handler")


class ConcurrencyOut(Shape):
    key: str | None = Field(description="A context path or a constant; null: one group")
    limit: int
    strategy: str | None = Field(
        None, description="queue, cancel_in_progress or cancel_newest (handler limits)"
    )


class RateLimitOut(Shape):
    key: str | None
    limit: int
    period: str = Field(description="As declared, e.g. 1m")
    period_seconds: float


class StepTemplateOut(Shape):
    name: str
    description: str | None
    handler_class: str
    depends_on_step: str | None
    default_retryable: bool
    default_retry_limit: int
    skippable: bool
    custom_events: list[str]
    concurrency: ConcurrencyOut | None = Field(None, description="Steps of it running per key")
    rate_limit: RateLimitOut | None = Field(None, description="Starts per period per key")


class GraphEdge(Shape):
    from_: str = Field(serialization_alias="from")
    to: str


class DependencyGraph(Shape):
    nodes: list[str]
    edges: list[GraphEdge]
    execution_order: list[str]


class HandlerDetail(Shape):
    id: str = Field(description="The handler name")
    namespace: str
    version: str
    description: str | None
    step_templates: list[StepTemplateOut]
    dependency_graph: DependencyGraph
    paused: bool = Field(False, description="This handler version is paused")
    concurrency: ConcurrencyOut | None = Field(None, description="Its tasks in progress per key")
    priority: int = Field(2, description="Its tasks' default priority, 1 (low) .. 3 (high)")


class HandlerPauseOut(Shape):
    """A handler's pause state after a pause or resume."""

    namespace: str
    name: str
    version: str | None = Field(description="The version acted on (null: every version)")
    paused: bool = Field(description="Whether tasks of it (of that version) now start no step")
    paused_versions: list[str] = Field(
        description="Every pause of the handler in force: versions, '' for all of them"
    )


class LimitUsageOut(Shape):
    kind: str = Field(description="task (a handler's concurrency), step (a step's) or rate")
    namespace: str
    handler: str
    step: str | None
    key: str = Field(description="The key's value ('' for a limit no key uses yet)")
    limit: int
    in_use: int = Field(description="Slots held, or starts in the current window (rate)")
    waiting: int = Field(description="Steps waiting for a slot")
    holders: list[str] = Field(description="Ids of the tasks or steps holding the slots")
    period_seconds: float | None


class LimitList(Shape):
    limits: list[LimitUsageOut]


# --- tasks -------------------------------------------------------------------------------


class TaskOut(Shape):
    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    namespace: str
    version: str
    full_name: str = Field(description="`namespace.name@version`")
    status: TaskState
    context: JsonValue
    created_at: Timestamp
    updated_at: Timestamp
    run_at: Timestamp | None = Field(
        None, description="A delayed start: no step runs before it (null: at once)"
    )
    schedule_id: str | None = Field(
        None, description="The schedule that fired this task (null: created by a caller)"
    )
    scheduled_for: Timestamp | None = Field(None, description="The schedule tick it was fired for")
    paused: bool = Field(
        False, description="Paused (the task or its handler): no new step starts until resumed"
    )
    priority: int = Field(2, description="1 (low) .. 3 (high)")
    forked_from: str | None = Field(
        None,
        description="The task this one re-runs (POST .../rerun); null for a task created directly",
        json_schema_extra={"format": "uuid"},
    )
    parent_task_id: str | None = Field(
        None, description="The task whose step started this one (a child task); null if none"
    )
    parent_step: str | None = Field(None, description="That step's name")


class TaskRecordOut(TaskOut):
    """The full task, answered by the additive task commands (update, cancel, retry)."""

    initiator: str | None
    source_system: str | None
    reason: str | None
    tags: list[str]
    bypass_steps: list[str]
    completed_at: Timestamp | None


class Pagination(Shape):
    current_page: int
    per_page: int
    total_pages: int
    total_count: int


class TaskList(Shape):
    tasks: list[TaskOut]
    pagination: Pagination


class TaskStepOut(Shape):
    name: str
    status: StepState
    results: JsonValue
    attempts: int
    started_at: Timestamp | None
    completed_at: Timestamp | None
    skipped: bool = Field(description="Completed without running its handler: its run_if was false")


class BlockedReasonOut(Shape):
    code: str = Field(
        description="waiting_on_parents, backing_off, retries_exhausted, failed_permanently, "
        "cancelled, upstream_failed, no_live_worker, queued, scheduled (the task's delayed "
        "start has not come), concurrency_limited (waiting for a slot of `key`, held by "
        "`holders`), rate_limited (until the rate window has room), sleeping (a sleep "
        "step, until `until`) or waiting_for_signal (a wait_for step: `signal`, deadline "
        "`until`)"
    )
    message: str
    waiting_on: list[str] = Field(description="Unfinished parents, for waiting_on_parents")
    until: Timestamp | None = Field(
        description="When the next attempt is due, for backing_off; when the task starts, "
        "for scheduled; when the window has room, for rate_limited; when a sleep ends; a "
        "signal wait's deadline"
    )
    key: str | None = Field(None, description="The limit's key, for concurrency_limited")
    holders: list[str] = Field(
        default_factory=list,
        description="The ids of the tasks (a handler limit) or steps (a step limit) holding "
        "the key's slots, for concurrency_limited",
    )
    signal: str | None = Field(None, description="The awaited signal, for waiting_for_signal")


class Dependencies(Shape):
    analysis: str
    blocked_steps: list[str] = Field(description="Steps that cannot run now, by name")
    ready_steps: list[str] = Field(description="Steps running or waiting only for a worker")
    completed_steps: list[str]
    blocked_reasons: dict[str, BlockedReasonOut] = Field(
        description="Why each of `blocked_steps` cannot run, by step name (beyond the seed)"
    )


class TaskWithDependencies(Shape):
    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    namespace: str
    version: str
    full_name: str
    status: TaskState
    context: JsonValue
    steps: list[TaskStepOut]
    dependencies: Dependencies
    created_at: Timestamp
    updated_at: Timestamp
    run_at: Timestamp | None = Field(
        None, description="A delayed start: no step runs before it (null: at once)"
    )
    schedule_id: str | None = Field(
        None, description="The schedule that fired this task (null: created by a caller)"
    )
    scheduled_for: Timestamp | None = Field(None, description="The schedule tick it was fired for")
    paused: bool = Field(
        False, description="Paused (the task or its handler): no new step starts until resumed"
    )
    priority: int = Field(2, description="1 (low) .. 3 (high)")
    forked_from: str | None = Field(
        None,
        description="The task this one re-runs (POST .../rerun); null for a task created directly",
        json_schema_extra={"format": "uuid"},
    )
    parent_task_id: str | None = Field(
        None, description="The task whose step started this one (a child task); null if none"
    )
    parent_step: str | None = Field(None, description="That step's name")


# --- workflow steps ----------------------------------------------------------------------


class ItemCountsOut(Shape):
    total: int
    complete: int
    error: int
    in_progress: int


class StepOut(Shape):
    id: int
    task_id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    status: StepState
    attempts: int
    retry_limit: int = Field(description="Most attempts a retryable step gets")
    retryable: bool
    skippable: bool
    inputs: JsonValue
    results: JsonValue
    last_error: str | None
    error_class: str | None
    next_attempt_at: Timestamp | None
    started_at: Timestamp | None
    completed_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    parents: list[str]
    children: list[str]
    blocked_reason: BlockedReasonOut | None = Field(
        description="Why a step that is neither running nor done is not running"
    )
    skipped: bool = Field(description="Completed without running its handler: its run_if was false")
    items: ItemCountsOut | None = Field(
        description="A map step's item progress (null for other steps)"
    )


class ItemOut(Shape):
    index: int = Field(description="Position in the mapped list")
    status: StepState
    attempts: int
    item: JsonValue
    results: JsonValue
    last_error: str | None
    error_class: str | None
    next_attempt_at: Timestamp | None
    started_at: Timestamp | None
    completed_at: Timestamp | None


class ItemPageOut(Shape):
    step_id: int
    counts: ItemCountsOut
    items: list[ItemOut] = Field(description="In input order")
    next_after: int | None = Field(description="Pass as `after` for the next page; null at the end")


class StepList(Shape):
    workflow_steps: list[StepOut]


# --- diagrams and events -----------------------------------------------------------------


class NodeAttributes(Shape):
    status: StepState
    duration_ms: int | None


class DiagramNodeOut(Shape):
    id: str
    label: str
    shape: str
    style: str
    url: str
    attributes: NodeAttributes


class DiagramEdgeOut(Shape):
    source_id: str
    target_id: str
    label: str
    type: str
    direction: str
    attributes: dict[str, Any]


class DiagramAttributes(Shape):
    task_id: str = Field(json_schema_extra={"format": "uuid"})
    status: TaskState


class DiagramOut(Shape):
    nodes: list[DiagramNodeOut]
    edges: list[DiagramEdgeOut]
    direction: str
    title: str
    attributes: DiagramAttributes


class EventOut(Shape):
    """The `data` of one server-sent event; the event's `id` is its `cursor`."""

    sse_event: ClassVar[str] = "message"
    cursor: int
    task_id: str
    namespace: str
    step_id: int | None
    step_name: str | None
    from_status: str | None
    to_status: str
    reason: str | None
    occurred_at: Timestamp


class StreamEndOut(Shape):
    """The `data` of the `end` event closing a task's stream."""

    sse_event: ClassVar[str] = "end"
    status: TaskState


# --- errors ------------------------------------------------------------------------------


class ErrorDetail(Shape):
    type: str
    message: str
    details: dict[str, Any] | None = Field(
        None, description="Present for validation errors: messages keyed by field"
    )
    code: str


class ErrorOut(Shape):
    error: ErrorDetail


class SignalOut(Shape):
    task_id: str
    name: str
    signal_id: str = Field(description="Given by the sender, or generated")
    payload: JsonValue
    received_at: Timestamp
    consumed_by: str | None = Field(
        description="The wait_for step the signal completed; null while it is kept for a step "
        "not reached yet"
    )


class BulkOut(Shape):
    count: int = Field(description="How many tasks the action changed (or, rerun, created)")
    ids: list[str] = Field(description="Their ids (rerun: the new tasks' ids)")
    next_cursor: str | None = Field(
        None, description="More tasks matched than `limit`: pass it as `cursor` to go on"
    )
