"""Property: every step that is neither running nor done has exactly one machine-readable
reason, and that reason is true of the state (over random DAGs in reachable states)."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.readiness import (
    BACKING_OFF,
    CANCELLED,
    FAILED_PERMANENTLY,
    NO_LIVE_WORKER,
    QUEUED,
    REASON_CODES,
    RETRIES_EXHAUSTED,
    UPSTREAM_FAILED,
    WAITING_ON_PARENTS,
    StepSnapshot,
    explain,
    is_runnable,
    unreachable_steps,
)
from server.domain.states import DONE_STEP_STATES, StepState, TaskState

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
S = StepState


@st.composite
def reachable(draw: st.DrawFn) -> tuple[list[StepSnapshot], TaskState, bool]:
    """A DAG (parents among earlier steps) whose statuses the engine could have produced:
    a step only ever ran (in_progress, complete, error) once all its parents were done;
    resolving and cancelling can happen to any step at any time."""
    n = draw(st.integers(1, 7))
    steps: list[StepSnapshot] = []
    for i in range(n):
        names = [s.name for s in steps]
        parents: tuple[str, ...] = ()
        if names:
            parents = tuple(draw(st.lists(st.sampled_from(names), unique=True, max_size=3)))
        parents_done = all(
            next(s for s in steps if s.name == p).status in DONE_STEP_STATES for p in parents
        )
        choices = [S.PENDING, S.CANCELLED, S.RESOLVED_MANUALLY]
        if parents_done:
            choices += [S.IN_PROGRESS, S.COMPLETE, S.ERROR]
        status = draw(st.sampled_from(choices))
        retry_at = None
        if status is S.ERROR:
            retry_at = draw(
                st.sampled_from([None, NOW - timedelta(seconds=5), NOW + timedelta(seconds=5)])
            )
        steps.append(StepSnapshot(f"s{i}", status, retry_at, parents, "boom"))
    task = draw(
        st.sampled_from(
            [TaskState.PENDING, TaskState.IN_PROGRESS, TaskState.ERROR, TaskState.CANCELLED]
        )
    )
    return steps, task, draw(st.booleans())


@settings(max_examples=400, deadline=None)
@given(reachable())
def test_every_waiting_step_has_exactly_one_true_reason(case) -> None:  # type: ignore[no-untyped-def]
    steps, task_status, workers_alive = case
    reasons = explain(steps, task_status=task_status, now=NOW, workers_alive=workers_alive)
    by_name = {s.name: s for s in steps}
    status_of = {s.name: s.status for s in steps}
    unreachable = unreachable_steps(by_name)
    assert set(reasons) == set(by_name)  # one entry per step, no more
    for step in steps:
        reason = reasons[step.name]
        if step.status in DONE_STEP_STATES or step.status is S.IN_PROGRESS:
            assert reason is None, (step, reason)
            continue
        assert reason is not None, step
        assert reason.code in REASON_CODES
        not_done = tuple(p for p in step.parents if status_of[p] not in DONE_STEP_STATES)
        code = reason.code
        if code == CANCELLED:
            assert step.status is S.CANCELLED or task_status is TaskState.CANCELLED
        elif code in (RETRIES_EXHAUSTED, FAILED_PERMANENTLY):
            assert step.status is S.ERROR and step.next_attempt_at is None
        elif code == UPSTREAM_FAILED:
            assert step.name in unreachable
        elif code == WAITING_ON_PARENTS:
            assert reason.waiting_on == not_done and not_done
        elif code == BACKING_OFF:
            assert step.next_attempt_at is not None and step.next_attempt_at > NOW
            assert reason.until == step.next_attempt_at
        else:
            assert code in (QUEUED, NO_LIVE_WORKER)
            assert is_runnable(step, status_of, NOW)
            assert (code == NO_LIVE_WORKER) is (not workers_alive)
        # The reason names the state's first blocker, in a fixed order of precedence.
        if step.status is S.CANCELLED or task_status is TaskState.CANCELLED:
            assert code == CANCELLED
        elif step.status is S.ERROR and step.next_attempt_at is None:
            assert code in (RETRIES_EXHAUSTED, FAILED_PERMANENTLY)


@settings(max_examples=200, deadline=None)
@given(reachable())
def test_runnable_steps_are_exactly_the_queued_ones(case) -> None:  # type: ignore[no-untyped-def]
    steps, task_status, _ = case
    if task_status is TaskState.CANCELLED:
        return
    reasons = explain(steps, task_status=task_status, now=NOW, workers_alive=True)
    status_of = {s.name: s.status for s in steps}
    unreachable = unreachable_steps({s.name: s for s in steps})
    for step in steps:
        reason = reasons[step.name]
        queued = reason is not None and reason.code == QUEUED
        if step.status is not S.CANCELLED and step.name not in unreachable:
            assert queued == is_runnable(step, status_of, NOW), (step, reason)
