"""Readiness and explanations: which steps may run now, and why the others may not.

Pure functions over a snapshot of one task's steps, the one rule set every step store follows:
the portable store claims a step only when `is_runnable`, `progress.advance` dispatches what
`is_ready` and settles the task with `task_moves`; the PostgreSQL store's statements encode the
same rules over the readiness counters (`waiting_on` = parents not done, `remaining` = steps not
done) with the states of `CLAIMABLE_TASK_STATES` and `RETRYING`. The APIs use `explain` so that
every step that is not running carries exactly one reason.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from server.domain.states import ACTIVE_TASK_STATES, DONE_STEP_STATES, StepState, TaskState
from server.domain.views import BlockedReason
from server.domain.waits import NO_DEADLINE

WAITING_ON_PARENTS = "waiting_on_parents"
BACKING_OFF = "backing_off"
RETRIES_EXHAUSTED = "retries_exhausted"
FAILED_PERMANENTLY = "failed_permanently"
CANCELLED = "cancelled"  # not a status: a blocked-reason code
UPSTREAM_FAILED = "upstream_failed"
NO_LIVE_WORKER = "no_live_worker"
QUEUED = "queued"
SCHEDULED = "scheduled"
PAUSED = "paused"
SLEEPING = "sleeping"
WAITING_FOR_SIGNAL = "waiting_for_signal"

REASON_CODES = (
    WAITING_ON_PARENTS,
    BACKING_OFF,
    RETRIES_EXHAUSTED,
    FAILED_PERMANENTLY,
    CANCELLED,
    UPSTREAM_FAILED,
    NO_LIVE_WORKER,
    QUEUED,
    SCHEDULED,
    PAUSED,
    SLEEPING,
    WAITING_FOR_SIGNAL,
)


@dataclass(frozen=True, slots=True)
class StepSnapshot:
    """The fields readiness depends on."""

    name: str
    status: StepState
    next_attempt_at: datetime | None
    parents: tuple[str, ...]
    last_error: str | None = None
    # What tells a permanent failure from used-up retries (explanations only; the defaults
    # read as exhausted, for callers that only decide readiness).
    attempts: int = 0
    retry_limit: int = 0
    retryable: bool = True
    error_class: str | None = None
    wake_at: datetime | None = None
    """A parked sleep or signal wait wakes then (`server.domain.waits`)."""
    waits_for: str | None = None


def failed_with_retries_left(step: StepSnapshot) -> bool:
    """A step that failed for good before using its retries: its error was permanent (a
    `PermanentError`, an HTTP 4xx, ...) or the step is not retryable."""
    return is_failed_for_good(step) and (not step.retryable or step.attempts < step.retry_limit)


def is_failed_for_good(step: StepSnapshot) -> bool:
    """An errored step with no retry scheduled will not run again by itself."""
    return step.status is StepState.ERROR and step.next_attempt_at is None


CLAIMABLE_TASK_STATES = ACTIVE_TASK_STATES
"""A step is claimed only while its task is in one of these states."""

RETRYING = StepState.ERROR
"""The state of a step backing off: claimable again once its retry is due."""


def is_due(status: StepState, next_attempt_at: datetime | None, now: datetime) -> bool:
    """True when a step in this state may be claimed now, its parents aside: pending, or an
    error whose retry is due."""
    if status is StepState.PENDING:
        return True
    return status is RETRYING and next_attempt_at is not None and next_attempt_at <= now


def has_started(run_at: datetime | None, now: datetime) -> bool:
    """True when a task may run steps: it has no delayed start, or its start time came.
    Before then no step of it is claimed, whatever message arrives (a duplicate, a stale one,
    a sweeper's)."""
    return run_at is None or run_at <= now


def parents_done(step: StepSnapshot, status_of: Mapping[str, StepState]) -> bool:
    """True when every parent of the step is complete or resolved."""
    return all(status_of[p] in DONE_STEP_STATES for p in step.parents)


def is_runnable(step: StepSnapshot, status_of: Mapping[str, StepState], now: datetime) -> bool:
    """True when a worker may claim the step now (its task accepting claims aside)."""
    return is_due(step.status, step.next_attempt_at, now) and parents_done(step, status_of)


def is_ready(step: StepSnapshot, status_of: Mapping[str, StepState]) -> bool:
    """True for a pending step whose parents are all done: it is dispatched (a retry is
    dispatched by its own delayed message instead)."""
    return step.status is StepState.PENDING and parents_done(step, status_of)


@dataclass(frozen=True, slots=True)
class TaskMove:
    """A move `task_moves` asks for: target state, reason, history metadata."""

    target: TaskState
    reason: str
    metadata: dict[str, list[str]] | None = None
    finishes: bool = False
    """True when the task ends with this move (its `completed_at` is stamped)."""


def task_moves(status: TaskState, steps: Mapping[str, StepSnapshot]) -> list[TaskMove]:
    """How a task's status follows from its steps' (in order; none when it stands).

    A failed task reopens when something can run again; a task ends complete when every step
    is done, in error when nothing can progress and a step failed for good, else cancelled.
    """
    if status not in (TaskState.PENDING, TaskState.IN_PROGRESS, TaskState.ERROR):
        return []
    unreachable = unreachable_steps(steps)
    done = [s for s in steps.values() if s.status in DONE_STEP_STATES]
    progressing = any(
        s.status is StepState.IN_PROGRESS
        or (s.status is StepState.PENDING and s.name not in unreachable)
        or (s.status is RETRYING and s.next_attempt_at is not None and s.name not in unreachable)
        for s in steps.values()
    )
    all_done = len(done) == len(steps)
    moves: list[TaskMove] = []
    if status is TaskState.ERROR and (progressing or all_done):
        moves.append(TaskMove(TaskState.PENDING, "reopened"))
        status = TaskState.PENDING
    if all_done:
        return [*moves, TaskMove(TaskState.COMPLETE, "all steps done", finishes=True)]
    if progressing or status is TaskState.ERROR:
        return moves
    failed = sorted(n for n, s in steps.items() if is_failed_for_good(s))
    if failed:
        return [TaskMove(TaskState.ERROR, "step failed", {"failed_steps": failed}, True)]
    cancelled = sorted(n for n, s in steps.items() if s.status is StepState.CANCELLED)
    return [TaskMove(TaskState.CANCELLED, "step cancelled", {"cancelled_steps": cancelled}, True)]


def unreachable_steps(steps: Mapping[str, StepSnapshot]) -> set[str]:
    """Steps that can never run because an ancestor failed for good or was cancelled."""
    unreachable: set[str] = set()
    memo: dict[str, bool] = {}

    def blocked(name: str) -> bool:
        if name not in memo:
            memo[name] = False
            for parent in steps[name].parents:
                snap = steps[parent]
                if (
                    snap.status is StepState.CANCELLED
                    or is_failed_for_good(snap)
                    or blocked(parent)
                ):
                    memo[name] = True
                    break
        return memo[name]

    for name in steps:
        if blocked(name):
            unreachable.add(name)
    return unreachable


def explain(
    steps: Sequence[StepSnapshot],
    *,
    task_status: TaskState,
    now: datetime,
    workers_alive: bool,
    run_at: datetime | None = None,
    paused: bool = False,
) -> dict[str, BlockedReason | None]:
    """One reason per step that is neither running nor done (None for those that are).

    `run_at` is the task's delayed start: until then a step that would otherwise be ready
    says `scheduled` (with `until`). A `paused` task's ready steps say `paused`.

    `workers_alive` has no default: only the caller can measure it (`Liveness` in
    `server.services.dependencies`), and a ready step says `no_live_worker` or `queued` by it."""
    by_name = {s.name: s for s in steps}
    status_of = {s.name: s.status for s in steps}
    unreachable = unreachable_steps(by_name)
    reasons: dict[str, BlockedReason | None] = {}
    for step in steps:
        reasons[step.name] = _reason(
            step, status_of, unreachable, task_status, now, workers_alive, run_at, paused
        )
    return reasons


def _reason(
    step: StepSnapshot,
    status_of: Mapping[str, StepState],
    unreachable: set[str],
    task_status: TaskState,
    now: datetime,
    workers_alive: bool,
    run_at: datetime | None,
    paused: bool = False,
) -> BlockedReason | None:
    if step.status in DONE_STEP_STATES or step.status is StepState.IN_PROGRESS:
        return None
    if step.status is StepState.CANCELLED or task_status is TaskState.CANCELLED:
        return BlockedReason(CANCELLED, "cancelled")  # not a status: its message
    if failed_with_retries_left(step):
        code = f"{step.error_class}: " if step.error_class else ""
        return BlockedReason(FAILED_PERMANENTLY, f"failed permanently: {code}{step.last_error}")
    if is_failed_for_good(step):
        return BlockedReason(RETRIES_EXHAUSTED, f"failed with no retry left: {step.last_error}")
    if step.name in unreachable:
        return BlockedReason(UPSTREAM_FAILED, "an upstream step failed or was cancelled")
    waiting = tuple(p for p in step.parents if status_of[p] not in DONE_STEP_STATES)
    if waiting:
        return BlockedReason(
            WAITING_ON_PARENTS, f"waiting on {', '.join(waiting)}", waiting_on=waiting
        )
    if step.next_attempt_at is not None and step.next_attempt_at > now:
        return BlockedReason(
            BACKING_OFF,
            f"retry scheduled at {step.next_attempt_at.isoformat()}",
            until=step.next_attempt_at,
        )
    if paused:
        return BlockedReason(
            PAUSED, "paused: no step starts until the task (or its handler) is resumed"
        )
    if step.wake_at is not None and step.wake_at > now:
        return parked_reason(step.wake_at, step.waits_for)
    if not has_started(run_at, now):
        assert run_at is not None  # has_started says so
        return BlockedReason(SCHEDULED, f"scheduled to start at {run_at.isoformat()}", until=run_at)
    if not workers_alive:
        return BlockedReason(NO_LIVE_WORKER, "ready, but no live worker is heartbeating")
    return BlockedReason(QUEUED, "ready, waiting for a worker")


def parked_reason(wake_at: datetime, signal: str | None) -> BlockedReason:
    """Why a parked built-in step waits: its sleep, or its signal (with the deadline)."""
    if signal is None:
        return BlockedReason(SLEEPING, f"sleeping until {wake_at.isoformat()}", until=wake_at)
    if wake_at >= NO_DEADLINE:
        return BlockedReason(WAITING_FOR_SIGNAL, f"waiting for signal '{signal}'", signal=signal)
    return BlockedReason(
        WAITING_FOR_SIGNAL,
        f"waiting for signal '{signal}' until {wake_at.isoformat()}",
        until=wake_at,
        signal=signal,
    )
