"""Readiness and explanations: which steps may run now, and why the others may not.

Pure functions over a snapshot of one task's steps. The orchestrator uses `is_runnable`; the
APIs use `explain` so that every step that is not running carries exactly one reason.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.domain.views import BlockedReason

WAITING_ON_PARENTS = "waiting_on_parents"
BACKING_OFF = "backing_off"
RETRIES_EXHAUSTED = "retries_exhausted"
CANCELLED = "cancelled"
UPSTREAM_FAILED = "upstream_failed"
NO_LIVE_WORKER = "no_live_worker"
QUEUED = "queued"

REASON_CODES = (
    WAITING_ON_PARENTS,
    BACKING_OFF,
    RETRIES_EXHAUSTED,
    CANCELLED,
    UPSTREAM_FAILED,
    NO_LIVE_WORKER,
    QUEUED,
)


@dataclass(frozen=True, slots=True)
class StepSnapshot:
    """The fields readiness depends on."""

    name: str
    status: StepState
    next_attempt_at: datetime | None
    parents: tuple[str, ...]
    last_error: str | None = None


def is_failed_for_good(step: StepSnapshot) -> bool:
    """An errored step with no retry scheduled will not run again by itself."""
    return step.status is StepState.ERROR and step.next_attempt_at is None


def is_runnable(step: StepSnapshot, status_of: Mapping[str, StepState], now: datetime) -> bool:
    """True when a worker may claim the step now."""
    if step.status is StepState.PENDING:
        pass
    elif step.status is StepState.ERROR:
        if step.next_attempt_at is None or step.next_attempt_at > now:
            return False
    else:
        return False
    return all(status_of[p] in DONE_STEP_STATES for p in step.parents)


def doomed_steps(steps: Mapping[str, StepSnapshot]) -> set[str]:
    """Steps that can never run because an ancestor failed for good or was cancelled."""
    doomed: set[str] = set()
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
            doomed.add(name)
    return doomed


def explain(
    steps: Sequence[StepSnapshot],
    *,
    task_status: TaskState,
    now: datetime,
    workers_alive: bool,
) -> dict[str, BlockedReason | None]:
    """One reason per step that is neither running nor done (None for those that are).

    `workers_alive` has no default: only the caller can measure it (`Liveness` in
    `server.services.dependencies`), and a ready step says `no_live_worker` or `queued` by it."""
    by_name = {s.name: s for s in steps}
    status_of = {s.name: s.status for s in steps}
    doomed = doomed_steps(by_name)
    reasons: dict[str, BlockedReason | None] = {}
    for step in steps:
        reasons[step.name] = _reason(step, status_of, doomed, task_status, now, workers_alive)
    return reasons


def _reason(
    step: StepSnapshot,
    status_of: Mapping[str, StepState],
    doomed: set[str],
    task_status: TaskState,
    now: datetime,
    workers_alive: bool,
) -> BlockedReason | None:
    if step.status in DONE_STEP_STATES or step.status is StepState.IN_PROGRESS:
        return None
    if step.status is StepState.CANCELLED or task_status is TaskState.CANCELLED:
        return BlockedReason(CANCELLED, "cancelled")
    if is_failed_for_good(step):
        return BlockedReason(RETRIES_EXHAUSTED, f"failed with no retry left: {step.last_error}")
    if step.name in doomed:
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
    if not workers_alive:
        return BlockedReason(NO_LIVE_WORKER, "ready, but no live worker is heartbeating")
    return BlockedReason(QUEUED, "ready, waiting for a worker")
