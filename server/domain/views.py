"""Read models handed from the services to every adapter.

Immutable values, never ORM rows: adapters shape these into REST JSON or GraphQL types.
The two row views built by the thousand on every list (`TaskView`, `StepView`) are named
tuples: a frozen dataclass's `__init__` sets each field through `object.__setattr__`, which
made building a 17-field task view 4x dearer and a tenth of a task page's CPU.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from server.domain.states import StepState, TaskState


class TaskView(NamedTuple):
    """A task as every surface sees it."""

    id: UUID
    namespace: str
    name: str
    version: str
    status: TaskState
    context: Any
    created_at: datetime
    updated_at: datetime
    initiator: str | None = None
    source_system: str | None = None
    reason: str | None = None
    tags: tuple[str, ...] = ()
    bypass_steps: tuple[str, ...] = ()
    idempotency_key: str | None = None
    identity_hash: str | None = None
    requested_at: datetime | None = None
    completed_at: datetime | None = None
    run_at: datetime | None = None
    """When a delayed task may start (None: at once)."""
    schedule_id: UUID | None = None
    """The schedule that fired this task (None: created by a caller)."""
    scheduled_for: datetime | None = None
    """The schedule tick it was fired for."""
    paused_at: datetime | None = None
    """When the task was paused by hand (None: not paused)."""
    handler_paused_at: datetime | None = None
    """When its handler was paused (None: not paused)."""
    priority: int = 2
    """1 (low) .. 3 (high): orders the waiting steps' hand-off of limit slots."""

    forked_from: UUID | None = None
    """The task this one was forked from by a re-run (None: created directly)."""
    parent_task_id: UUID | None = None
    """The task whose step started this one (a child task), else None."""
    parent_step: str | None = None
    """That step's name."""

    @property
    def paused(self) -> bool:
        """No step of it starts: it, or its handler, is paused."""
        return self.paused_at is not None or self.handler_paused_at is not None

    @property
    def full_name(self) -> str:
        """`namespace.name@version`."""
        return f"{self.namespace}.{self.name}@{self.version}"


class StepView(NamedTuple):
    """A workflow step with its graph neighbours (by name)."""

    id: int
    task_id: UUID
    name: str
    status: StepState
    attempts: int
    retry_limit: int
    retryable: bool
    skippable: bool
    timeout_seconds: float | None
    inputs: Any
    results: Any
    last_error: str | None
    error_class: str | None
    next_attempt_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    handler_class: str
    position: int = 0
    parents: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    wake_at: datetime | None = None
    """A parked sleep or signal wait: when it wakes (its deadline)."""
    waits_for: str | None = None
    """The signal a `wait_for` step awaits."""
    skipped: bool = False
    """Completed without running its handler (its `run_if` condition was false)."""

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to completion of the last attempt, when both are known."""
        if self.started_at is None or self.completed_at is None:
            return None
        return int((self.completed_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class TransitionView:
    """One row of history: a task move (step fields None) or a step move."""

    id: int
    task_id: UUID
    step_id: int | None
    step_name: str | None
    from_status: str | None
    to_status: str
    reason: str | None
    metadata: dict[str, Any]
    occurred_at: datetime

    def as_event(self, namespace: str) -> "TransitionEvent":
        """This history row in the shape of a live event (stream replays use it)."""
        return TransitionEvent(
            cursor=self.id,
            task_id=str(self.task_id),
            namespace=namespace,
            step_id=self.step_id,
            step_name=self.step_name,
            from_status=self.from_status,
            to_status=self.to_status,
            reason=self.reason,
            occurred_at=self.occurred_at,
        )


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """A committed transition as published to subscribers (in-process or Redis)."""

    cursor: int
    task_id: str
    namespace: str
    step_id: int | None
    step_name: str | None
    from_status: str | None
    to_status: str
    reason: str | None
    occurred_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The message form on Redis pub/sub, between server processes (`from_json` reads it
        back). Not a client-facing shape: server-sent events are built by `rest_compat`."""
        return {
            "cursor": self.cursor,
            "task_id": self.task_id,
            "namespace": self.namespace,
            "step_id": self.step_id,
            "step_name": self.step_name,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "reason": self.reason,
            "occurred_at": self.occurred_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TransitionEvent":
        """Inverse of `to_json`."""
        return cls(
            cursor=int(data["cursor"]),
            task_id=str(data["task_id"]),
            namespace=str(data["namespace"]),
            step_id=data.get("step_id"),
            step_name=data.get("step_name"),
            from_status=data.get("from_status"),
            to_status=str(data["to_status"]),
            reason=data.get("reason"),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
        )


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Filters shared by REST `GET /tasks` and the GraphQL `tasks` connection."""

    namespace: str | None = None
    name: str | None = None
    version: str | None = None
    status: TaskState | None = None


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks plus the total matching the filter."""

    items: tuple[TaskView, ...]
    total_count: int
    has_next: bool = False


@dataclass(frozen=True, slots=True)
class TaskSlice:
    """The tasks after a keyset cursor (a GraphQL connection's page), with the total matching
    the filter only when the reader asked for it (None otherwise: counting costs a scan of
    every matching task, which a client paging on `hasNextPage` never reads)."""

    items: tuple[TaskView, ...]
    has_next: bool
    total_count: int | None


@dataclass(frozen=True, slots=True)
class KeptStep:
    """A step a re-run copies from the task it forks: complete, its handler not called."""

    results: Any
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Rerun:
    """Input to a re-run (fork): from which step, and what replaces the original's input."""

    from_step: str
    context: Any = None
    """Replaces the task's context when given (None: the original's)."""
    inputs: Any = None
    """Replaces the named steps' inputs: a mapping of step name to inputs, each step
    `from_step` or downstream of it (anything else is refused)."""
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Input to task creation, already parsed by the adapter."""

    namespace: str
    name: str
    context: Any
    version: str | None = None
    initiator: str | None = None
    source_system: str | None = None
    reason: str | None = None
    tags: tuple[str, ...] = ()
    bypass_steps: tuple[str, ...] = ()
    idempotency_key: str | None = None
    run_at: str | datetime | None = None
    """A delayed start: ISO 8601 text with a time zone (or a datetime), validated by the
    service; not together with `delay_seconds`."""
    delay_seconds: float | None = None
    debounce_key: str | None = None
    """Collapse creations with this key (a `context.` path or a constant) into one task;
    with `debounce_seconds`, or the handler's `debounce` (`server.services.debounce`)."""
    debounce_seconds: float | None = None
    priority: int | None = None
    """1..3; None: the handler's default priority."""
    subject: str | None = None
    """The caller's token subject: idempotency keys are its own. None (open mode): one
    scope shared by every caller."""
    fired: "ScheduleTick | None" = None
    """Set by the schedule firer only: the task is this tick's, recorded in its transaction."""

    forked_from: UUID | None = None
    """A re-run (`server.services.forks`): the task it forks."""
    kept: Mapping[str, KeptStep] = field(default_factory=dict)
    """A re-run's steps copied from the original as complete, handlers not called: results
    by step name."""
    step_inputs: Mapping[str, Any] = field(default_factory=dict)
    """Inputs of the named steps."""
    parent_task_id: UUID | None = None
    """Set by the engine for a child task: the task whose step `parent_step` started it."""
    parent_step: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleTick:
    """A schedule's tick being fired (the unique fire row is written with the task)."""

    schedule_id: UUID
    tick: datetime


@dataclass(frozen=True, slots=True)
class BlockedReason:
    """Why a step that is not running is not running (machine-readable `code`)."""

    code: str
    message: str
    waiting_on: tuple[str, ...] = ()
    until: datetime | None = None
    key: str | None = None
    """`concurrency_limited`: the limit's key."""
    holders: tuple[str, ...] = ()
    """`concurrency_limited`: the ids of the tasks (a handler limit) or steps (a step limit)
    holding the key's slots."""
    signal: str | None = None
    """The awaited signal's name (`waiting_for_signal`)."""


@dataclass(frozen=True, slots=True)
class DependencyAnalysis:
    """Which steps are done, runnable and blocked (with their reasons)."""

    analysis: str
    ready_steps: tuple[str, ...]
    completed_steps: tuple[str, ...]
    blocked_steps: tuple[tuple[str, BlockedReason], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class TaskDependencies:
    """A task, its steps, why each step that is neither running nor done is waiting, and the
    summary of all that: what REST's `include_dependencies` and `/workflow_steps` and
    GraphQL's `blockedReason` and `dependencies` are built from."""

    task: TaskView
    steps: tuple[StepView, ...]
    reasons: Mapping[str, BlockedReason]
    """By step name, only the steps that are waiting (queued ones included)."""
    analysis: DependencyAnalysis


@dataclass(frozen=True, slots=True)
class WorkerView:
    """A worker process as seen through its heartbeats."""

    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class SignalView:
    """A signal delivered to a task, and the step that consumed it (None: kept for later)."""

    task_id: UUID
    name: str
    signal_id: str
    payload: Any
    received_at: datetime
    consumed_by: str | None = None
    """The name of the `wait_for` step it completed."""
    created: bool = True
    """False when this signal_id had been delivered before (the first delivery is answered)."""


class ItemCounts(NamedTuple):
    """A map step's item progress."""

    total: int
    complete: int
    error: int
    in_progress: int


@dataclass(frozen=True, slots=True)
class ItemView:
    """One item of a map step (`index` is its position in the mapped list)."""

    index: int
    status: StepState
    attempts: int
    item: Any
    results: Any
    last_error: str | None
    error_class: str | None
    next_attempt_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None


class ItemPage(NamedTuple):
    """A page of a map step's items, in input order."""

    step_id: int
    counts: ItemCounts
    items: tuple[ItemView, ...]
    next_after: int | None
    """Pass as `after` for the next page; None on the last one."""
