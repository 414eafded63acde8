"""Retries, permanent failures, exhausted retries, cancellation, retry and resolve by hand."""

import asyncio
import contextvars
import time

from server.domain.errors import InvalidTransition
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from tests.conftest import on_every_store
from tests.support.waiting import wait_for_task

pytestmark = on_every_store


async def start(engine, name, context):
    task, _ = await engine.tasks.create_task(
        CreateTask(namespace="shapes", name=name, context=context)
    )
    return task


async def steps_of(engine, task_id):
    return {s.name: s for s in await engine.steps.list_steps(task_id)}


async def test_step_failing_twice_then_succeeding_completes_with_three_attempts(engine):
    task = await start(engine, "linear", {"fail": {"b": 2}, "sleep": 0})
    assert (await wait_for_task(engine, task.id)).status is TaskState.COMPLETE
    b = (await steps_of(engine, task.id))["b"]
    assert b.attempts == 3
    assert b.results["attempt"] == 3
    assert b.last_error == "b failed on attempt 2"
    history = await engine.steps.transitions([b.id])
    moves = [(t.from_status, t.to_status) for t in history[b.id]]
    assert moves.count(("in_progress", "error")) == 2
    assert moves.count(("error", "pending")) == 2
    assert moves[-1] == ("in_progress", "complete")


async def test_retry_after_is_honoured(engine):
    began = time.monotonic()
    task = await start(engine, "linear", {"fail": {"a": 1}, "retry_after": 1.2, "sleep": 0})
    assert (await wait_for_task(engine, task.id)).status is TaskState.COMPLETE
    a = (await steps_of(engine, task.id))["a"]
    history = (await engine.steps.transitions([a.id]))[a.id]
    failed_at = next(t.occurred_at for t in history if t.to_status == "error")
    retried_at = next(t.occurred_at for t in history if t.from_status == "error")
    assert (retried_at - failed_at).total_seconds() >= 1.2
    assert time.monotonic() - began >= 1.2


async def test_permanent_error_fails_at_attempt_one(engine):
    task = await start(engine, "linear", {"permanent": "b", "sleep": 0})
    assert (await wait_for_task(engine, task.id)).status is TaskState.ERROR
    steps = await steps_of(engine, task.id)
    assert steps["b"].status is StepState.ERROR
    assert steps["b"].attempts == 1
    assert steps["b"].error_class == "CARD_DECLINED"
    assert steps["c"].status is StepState.PENDING


async def test_exhausted_retries_fail_the_task_after_independent_branches_finish(engine):
    task = await start(engine, "mixed", {"fail": {"s3": 10}, "sleeps": {"s5": 0.6}, "sleep": 0})
    assert (await wait_for_task(engine, task.id)).status is TaskState.ERROR
    steps = await steps_of(engine, task.id)
    assert steps["s3"].status is StepState.ERROR and steps["s3"].attempts == 3
    for independent in ("s1", "s2", "s4", "s5", "s7"):
        assert steps[independent].status is StepState.COMPLETE, independent
    for blocked in ("s6", "s8", "s9"):
        assert steps[blocked].status is StepState.PENDING
    analysis = (await engine.tasks.dependencies(task.id)).analysis
    reasons = dict(analysis.blocked_steps)
    assert reasons["s3"].code == "retries_exhausted"
    assert reasons["s6"].code == "upstream_failed"


async def test_cancel_mid_run_cascades_and_discards_the_late_result(engine):
    task = await start(engine, "linear", {"sleeps": {"b": 1.0}, "sleep": 0})
    await wait_for_step(engine, task.id, "b", StepState.IN_PROGRESS)
    cancelled = await engine.tasks.cancel_task(task.id)
    assert cancelled.status is TaskState.CANCELLED
    again = await engine.tasks.cancel_task(task.id)  # idempotent
    assert again.status is TaskState.CANCELLED
    await asyncio.sleep(1.3)  # b's handler finishes now; its result must be discarded
    steps = await steps_of(engine, task.id)
    assert steps["a"].status is StepState.COMPLETE
    assert all(steps[n].status is StepState.CANCELLED for n in ("b", "c", "d"))
    assert steps["b"].results is None


async def test_cancelling_a_completed_step_is_an_invalid_transition(engine):
    task = await start(engine, "linear", {"sleep": 0})
    await wait_for_task(engine, task.id)
    try:
        await engine.steps.cancel_step(task.id, "a")
    except InvalidTransition as exc:
        assert exc.current == "complete"
    else:
        raise AssertionError("expected InvalidTransition")


async def test_retry_task_reruns_failed_steps_and_completes(engine):
    task = await start(engine, "linear", {"fail": {"b": 3}, "sleep": 0})
    assert (await wait_for_task(engine, task.id)).status is TaskState.ERROR
    retried = await engine.tasks.retry_task(task.id)
    assert retried.status in (TaskState.PENDING, TaskState.IN_PROGRESS, TaskState.COMPLETE)
    # attempts restart at zero and the context still fails b three times: allow a fourth.
    await engine.steps.update_step(task.id, "b", retry_limit=5)
    assert (await wait_for_task(engine, task.id)).status is TaskState.COMPLETE
    c = (await steps_of(engine, task.id))["c"]
    assert c.status is StepState.COMPLETE


async def test_retry_step_of_errored_task_reopens_it(engine):
    task = await start(engine, "diamond", {"permanent": "left", "sleep": 0})
    assert (await wait_for_task(engine, task.id)).status is TaskState.ERROR
    step = await engine.steps.get_step(task.id, "left")
    # Still permanent: it fails again at attempt 1, and the task is error again.
    retried = await engine.steps.retry_step(task.id, str(step.id))
    assert retried.status in (StepState.PENDING, StepState.IN_PROGRESS, StepState.ERROR)
    assert retried.attempts <= 1
    assert (await wait_for_task(engine, task.id)).status is TaskState.ERROR


async def test_resolving_a_failed_step_lets_dependants_run(engine):
    task = await start(engine, "linear", {"permanent": "b", "sleep": 0})
    assert (await wait_for_task(engine, task.id)).status is TaskState.ERROR
    resolved = await engine.steps.resolve_step(
        task.id, "b", results={"by": "hand"}, reason="fixed upstream"
    )
    assert resolved.status is StepState.RESOLVED_MANUALLY
    again = await engine.steps.resolve_step(task.id, "b")  # idempotent
    assert again.results == {"by": "hand"}
    assert (await wait_for_task(engine, task.id)).status is TaskState.COMPLETE
    steps = await steps_of(engine, task.id)
    assert steps["c"].status is StepState.COMPLETE


async def test_same_message_twice_runs_the_step_once(engine):
    task = await start(engine, "linear", {"sleeps": {"a": 0.4}, "sleep": 0})
    a = await engine.steps.get_step(task.id, "a")
    for _ in range(3):  # duplicate deliveries of the nudge for a
        engine.changes.dispatcher.dispatch([a.id])
    assert (await wait_for_task(engine, task.id)).status is TaskState.COMPLETE
    a = await engine.steps.get_step(task.id, "a")
    assert a.attempts == 1
    history = (await engine.steps.transitions([a.id]))[a.id]
    assert [t.to_status for t in history].count("in_progress") == 1
    assert [t.to_status for t in history].count("complete") == 1
    outcomes = [await engine.runner.run_step(a.id) for _ in range(2)]
    assert outcomes == ["skipped", "skipped"]


async def wait_for_step(engine, task_id, name, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await engine.steps.get_step(task_id, name)).status is status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never reached {status}")


async def test_a_claim_cannot_slip_between_a_cancel_and_its_commit(services):
    """Regression: on PostgreSQL the one-statement claim did not wait for a running cancel."""
    from server.engine.changes import TaskRef

    task = await start(services, "linear", {"sleep": 0})
    root = await services.steps.get_step(task.id, "a")
    ref = TaskRef(task.id, task.namespace)
    # Workers' claims run in their own context; one copied inside the transaction would join it.
    outside = contextvars.copy_context()
    async with services.changes.transaction() as tx:
        status = await tx.lock_task(task.id)
        claim = asyncio.create_task(services.runner.claim(root.id), context=outside)
        await asyncio.sleep(0.3)
        assert not claim.done()  # the claim waits for the task row
        await tx.move_task(ref, status, TaskState.CANCELLED, "cancelled")
        await tx.move_step(ref, root.id, "a", StepState.PENDING, StepState.CANCELLED, "x")
    assert await claim is None
    assert (await services.steps.get_step(task.id, "a")).status is StepState.CANCELLED
