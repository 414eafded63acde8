"""The dependency analysis of a task: why each step is not running, and a summary.

Pure over a snapshot of the task and its steps plus one fact measured once per call, whether
any worker is alive (`server.services.liveness`): without one, a ready step says
`no_live_worker` instead of `queued`, and counts among the blocked steps.
"""

from collections.abc import Sequence
from datetime import datetime

from server.db.rows import snapshots
from server.domain.readiness import BACKING_OFF, QUEUED, WAITING_ON_PARENTS, explain
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.domain.views import (
    BlockedReason,
    DependencyAnalysis,
    StepView,
    TaskDependencies,
    TaskView,
)

PASSING = (WAITING_ON_PARENTS, BACKING_OFF)
"""Reasons that resolve by themselves: a task waiting only on these is progressing."""


def analyse(
    task: TaskView, steps: Sequence[StepView], *, now: datetime, workers_alive: bool
) -> TaskDependencies:
    """Reasons for every waiting step of `task`, and which steps are done, ready and blocked."""
    explained = explain(
        snapshots(steps), task_status=task.status, now=now, workers_alive=workers_alive
    )
    reasons = {name: r for name, r in explained.items() if r is not None}
    completed = tuple(s.name for s in steps if s.status in DONE_STEP_STATES)
    ready = tuple(
        s.name
        for s in steps
        if s.status is StepState.IN_PROGRESS
        or ((r := reasons.get(s.name)) is not None and r.code == QUEUED)
    )
    blocked = tuple(
        (s.name, r) for s in steps if (r := reasons.get(s.name)) is not None and r.code != QUEUED
    )
    analysis = DependencyAnalysis(_summary(task.status, blocked), ready, completed, blocked)
    return TaskDependencies(task, tuple(steps), reasons, analysis)


def _summary(status: TaskState, blocked: tuple[tuple[str, BlockedReason], ...]) -> str:
    if status is TaskState.COMPLETE:
        return "All steps are complete"
    if status is TaskState.CANCELLED:
        return "Task was cancelled"
    if status is TaskState.ERROR:
        return "Task failed: a step exhausted its retries or failed permanently"
    stuck = [name for name, r in blocked if r.code not in PASSING]
    if stuck:
        return f"Task is blocked at {', '.join(stuck)}"
    return "Task is progressing normally through dependency chain"
