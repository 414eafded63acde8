"""The JSON shapes the REST API answers with (seed/REST_API.md and DESIGN §5.5), as TypedDicts.

Responses stay plain dicts (nothing is copied or lost when the server adds a field) while
type checkers and editors know their keys. Timestamps are ISO-8601 strings, as sent.
"""

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

Status = Literal["pending", "in_progress", "complete", "error", "cancelled", "resolved_manually"]
TERMINAL: frozenset[str] = frozenset({"complete", "error", "cancelled", "resolved_manually"})


class Namespace(TypedDict):
    name: str
    description: str | None
    handler_count: int
    handlers: list[str]


class HandlerSummary(TypedDict):
    id: str
    namespace: str
    version: str
    description: str | None
    step_count: int
    step_names: list[str]


class StepTemplate(TypedDict):
    name: str
    description: str | None
    handler_class: str
    depends_on_step: str | None
    default_retryable: bool
    default_retry_limit: int
    skippable: bool
    custom_events: list[str]


GraphEdge = TypedDict("GraphEdge", {"from": str, "to": str})


class DependencyGraph(TypedDict):
    nodes: list[str]
    edges: list[GraphEdge]
    execution_order: list[str]


class HandlerDetail(TypedDict):
    id: str
    namespace: str
    version: str
    description: str | None
    step_templates: list[StepTemplate]
    dependency_graph: DependencyGraph
    paused: NotRequired[bool]


class HandlerPause(TypedDict):
    """A handler's pauses after `pause_handler` / `resume_handler`."""

    namespace: str
    name: str
    version: str | None
    paused: bool
    paused_versions: list[str]


class BlockedReason(TypedDict):
    code: str
    message: str
    waiting_on: list[str]
    until: str | None
    signal: NotRequired[str | None]


class TaskStep(TypedDict):
    name: str
    status: Status
    results: Any
    attempts: int
    started_at: str | None
    completed_at: str | None
    skipped: NotRequired[bool]


class Dependencies(TypedDict):
    analysis: str
    blocked_steps: list[str]
    ready_steps: list[str]
    completed_steps: list[str]
    blocked_reasons: dict[str, BlockedReason]


class Task(TypedDict):
    id: str
    name: str
    namespace: str
    version: str
    full_name: str
    status: Status
    context: Any
    created_at: str
    updated_at: str
    initiator: NotRequired[str | None]
    source_system: NotRequired[str | None]
    reason: NotRequired[str | None]
    tags: NotRequired[list[str]]
    bypass_steps: NotRequired[list[str]]
    completed_at: NotRequired[str | None]
    run_at: NotRequired[str | None]
    schedule_id: NotRequired[str | None]
    scheduled_for: NotRequired[str | None]
    paused: NotRequired[bool]
    priority: NotRequired[int]
    forked_from: NotRequired[str | None]
    parent_task_id: NotRequired[str | None]
    parent_step: NotRequired[str | None]
    steps: NotRequired[list[TaskStep]]
    dependencies: NotRequired[Dependencies]


class ErrorDetail(TypedDict):
    type: str
    message: str
    details: NotRequired[dict[str, Any]]
    code: str


class BatchItem(TypedDict):
    """One entry's result: `task` (status 201 created, 200 an earlier task with its key) or
    `error` (the envelope POST /tasker/tasks would answer, with its status)."""

    index: int
    status: int
    task: NotRequired[Task]
    error: NotRequired[ErrorDetail]


class BatchResult(TypedDict):
    results: list[BatchItem]
    created: int
    existing: int
    failed: int


class Pagination(TypedDict):
    current_page: int
    per_page: int
    total_pages: int
    total_count: int


class TaskList(TypedDict):
    tasks: list[Task]
    pagination: Pagination


class ItemCounts(TypedDict):
    total: int
    complete: int
    error: int
    in_progress: int


class Step(TypedDict):
    id: int
    task_id: str
    name: str
    status: Status
    attempts: int
    retry_limit: int
    retryable: bool
    skippable: bool
    skipped: NotRequired[bool]
    inputs: Any
    results: Any
    last_error: str | None
    error_class: str | None
    next_attempt_at: str | None
    started_at: str | None
    completed_at: str | None
    created_at: str
    updated_at: str
    parents: list[str]
    children: list[str]
    blocked_reason: BlockedReason | None
    items: NotRequired[ItemCounts | None]


class StepItem(TypedDict):
    index: int
    status: Status
    attempts: int
    item: Any
    results: Any
    last_error: str | None
    error_class: str | None
    next_attempt_at: str | None
    started_at: str | None
    completed_at: str | None


class ItemPage(TypedDict):
    step_id: int
    counts: ItemCounts
    items: list[StepItem]
    next_after: int | None


class Diagram(TypedDict):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    direction: str
    title: str
    attributes: dict[str, Any]


class PerformanceReport(TypedDict):
    system_health_score: float
    performance_trends: dict[str, dict[str, Any]]
    task_statistics: dict[str, int]
    processing_times: dict[str, int | None]


class BottleneckReport(TypedDict):
    analysis_period: str
    scope: dict[str, str]
    slowest_tasks: list[dict[str, Any]]
    slowest_steps: list[dict[str, Any]]
    error_patterns: list[dict[str, Any]]
    recommendations: list[dict[str, Any]]


class TransitionEvent(TypedDict):
    cursor: int
    task_id: str
    namespace: str
    step_id: int | None
    step_name: str | None
    from_status: Status | None
    to_status: Status
    reason: str | None
    occurred_at: str


@dataclass(frozen=True, slots=True)
class EventFrame:
    """One server-sent event: `event` is `message` for transitions and `end` at the end."""

    event: str
    id: str | None
    data: Any


class SignalDelivery(TypedDict):
    task_id: str
    name: str
    signal_id: str
    payload: Any
    received_at: str
    consumed_by: str | None


class BulkResult(TypedDict):
    count: int
    ids: list[str]
    next_cursor: NotRequired[str | None]
