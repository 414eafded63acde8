"""The dependency analysis of a task: why each step is not running, and a summary; and the
one fact it needs from outside the task, whether any worker is alive.

The analysis is pure over a snapshot of the task and its steps plus that fact, measured once
per call: without a live worker, a ready step says `no_live_worker` instead of `queued`, and
counts among the blocked steps.

Liveness has two sources, because the two deployments know it differently:
- embedded (`tasker serve` with no broker URL): the server runs the step workers itself, so it
  knows they are running without asking the database. Its heartbeats are written by the
  background loop, which starts a moment after the workers do; asking only the heartbeats
  would call the server's own workers dead in that moment.
- with a broker: steps are run by `tasker worker` processes, seen only through the heartbeats
  they write (`WorkerRegistry.live`). None within the liveness window means nobody is there
  to claim a ready step.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime

from server.db.rows import snapshots
from server.domain.flow import CONCURRENCY_LIMITED, RATE_LIMITED
from server.domain.readiness import (
    BACKING_OFF,
    NO_LIVE_WORKER,
    PAUSED,
    QUEUED,
    SCHEDULED,
    SLEEPING,
    WAITING_FOR_SIGNAL,
    WAITING_ON_PARENTS,
    explain,
)
from server.domain.states import DONE_STEP_STATES, StepState, TaskState
from server.domain.views import (
    BlockedReason,
    DependencyAnalysis,
    StepView,
    TaskDependencies,
    TaskView,
)
from server.engine.workers import WorkerRegistry

PASSING = (
    WAITING_ON_PARENTS,
    BACKING_OFF,
    SCHEDULED,
    CONCURRENCY_LIMITED,
    RATE_LIMITED,
    SLEEPING,
    WAITING_FOR_SIGNAL,
)
"""Reasons that resolve by themselves: a task waiting only on these is progressing."""


class Liveness:
    """Answers "is any worker alive", for the explanations of why a step is not running."""

    def __init__(self, registry: WorkerRegistry | None) -> None:
        self.registry = registry
        self.consuming_here = False
        """Set by the worker pool of this process while its workers consume steps."""

    async def any_alive(self) -> bool:
        """This process's own workers consume, or some worker heartbeated recently.

        Without a registry (a core built without one) nothing can be known: say alive, so
        that a ready step reads `queued` rather than a `no_live_worker` nobody measured."""
        if self.consuming_here or self.registry is None:
            return True
        return bool(await self.registry.live())


def analyse(
    task: TaskView,
    steps: Sequence[StepView],
    *,
    now: datetime,
    workers_alive: bool,
    limited: Mapping[str, BlockedReason] | None = None,
) -> TaskDependencies:
    """Reasons for every waiting step of `task`, and which steps are done, ready and blocked.

    `limited`: the ready steps that wait for a limit's slot or window (`flow_status`)."""
    explained = explain(
        snapshots(steps),
        task_status=task.status,
        now=now,
        workers_alive=workers_alive,
        run_at=task.run_at,
        paused=task.paused,
    )
    reasons = {name: r for name, r in explained.items() if r is not None}
    for name, reason in (limited or {}).items():
        if name in reasons and reasons[name].code in (QUEUED, NO_LIVE_WORKER):
            reasons[name] = reason
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
    if any(r.code == PAUSED for _, r in blocked):
        return "Task is paused: no step starts until it (or its handler) is resumed"
    stuck = [name for name, r in blocked if r.code not in PASSING]
    if stuck:
        return f"Task is blocked at {', '.join(stuck)}"
    start = next((r.until for _, r in blocked if r.code == SCHEDULED and r.until), None)
    if start is not None:
        return f"Task is scheduled to start at {start.isoformat()}"
    return "Task is progressing normally through dependency chain"
