"""Durable sleep and signal waits: built-in steps that park instead of holding a worker.

On every step store. A virtual clock moves where time matters and a recording dispatcher
shows the one delayed message each parked step gets; the last tests run the embedded engine
for real with short intervals.
"""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.container import Services
from server.db.models import Signal, Transition
from server.domain.errors import Conflict, TaskNotFound, ValidationFailed
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask, TaskView
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import WORKFLOWS, on_every_store
from tests.support.recorder import TimedRecorder, recording
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

WAITS = Path(__file__).parent.parent / "fixtures" / "waits"
HOUR = 3600


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    """The usual test registry plus the `waits` namespace."""
    yield HandlerRegistry.load([WORKFLOWS, WAITS], examples=True)


async def create(services: Services, name: str, **context: Any) -> TaskView:
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="waits", name=name, context=context)
    )
    return task


async def run(services: Services, task: TaskView, step: str) -> str:
    view = await services.steps.get_step(task.id, step)
    return await services.runner.run_step(view.id)


async def reach(services: Services, task: TaskView, parent: str) -> None:
    """Run `parent`; the PostgreSQL store may go on with its child in the same call."""
    assert await run(services, task, parent) == "complete"


async def reasons(services: Services, task: TaskView) -> list[str | None]:
    rows = await Transition.filter(task_id=task.id).order_by("id").values_list("reason", flat=True)
    return list(rows)  # type: ignore[arg-type]


async def test_a_sleep_parks_with_one_delayed_message_and_ends_at_its_wake_time(
    services: Services,
) -> None:
    clock, recorder = recording(services, TimedRecorder())
    task = await create(services, "nap")
    nap = await services.steps.get_step(task.id, "nap")
    recorder.sent.clear()
    assert await run(services, task, "nap") == "parked"
    nap = await services.steps.get_step(task.id, "nap")
    assert nap.status is StepState.PENDING and nap.wake_at is not None
    assert abs((nap.wake_at - clock.now()).total_seconds() - HOUR) < 5
    assert nap.attempts == 1  # each claim counts, the one that parked it too
    # One message, delayed until the wake time; nothing else is sent while it sleeps.
    assert len(recorder.sent) == 1 and recorder.sent[0][0] == nap.id
    assert abs(recorder.sent[0][1] - HOUR) < 5
    reason = (await services.tasks.dependencies(task.id)).reasons["nap"]
    assert (reason.code, reason.until, reason.signal) == ("sleeping", nap.wake_at, None)

    # A duplicate or early message is refused; the sweeper neither re-sends nor re-examines.
    clock.advance_to(nap.wake_at - timedelta(minutes=1))
    assert await services.runner.claim(nap.id) is None
    recorder.sent.clear()
    assert await services.sweeper.redispatch_idle() == 0
    before = (await services.tasks.get_task(task.id)).updated_at
    assert await services.sweeper.finalize_stuck() == 0
    assert (await services.tasks.get_task(task.id)).updated_at == before
    assert recorder.sent == []

    wake = nap.wake_at
    clock.advance_to(wake + timedelta(seconds=1))
    assert await services.runner.run_step(nap.id) == "complete"
    nap = await services.steps.get_step(task.id, "nap")
    assert nap.status is StepState.COMPLETE and nap.results is None
    assert nap.completed_at is not None and nap.completed_at >= wake
    after = await services.steps.get_step(task.id, "after")
    assert [i for i, _ in recorder.sent] == [after.id]  # its child goes on at once
    assert "sleeping" in await reasons(services, task)


async def test_a_lost_wake_message_is_resent_by_the_sweeper_once_due(services: Services) -> None:
    clock, recorder = recording(services, TimedRecorder())
    task = await create(services, "nap")
    await run(services, task, "nap")
    nap = await services.steps.get_step(task.id, "nap")
    assert nap.wake_at is not None
    recorder.sent.clear()
    clock.advance_to(nap.wake_at + timedelta(seconds=5))
    assert await services.sweeper.redispatch_idle() == 1
    assert [i for i, _ in recorder.sent] == [nap.id]
    assert await services.runner.run_step(nap.id) == "complete"


async def test_sleep_until_a_context_time_is_checked_at_creation(services: Services) -> None:
    clock, _ = recording(services, TimedRecorder())
    with pytest.raises(ValidationFailed) as caught:
        await create(services, "nap_until")
    assert "context.send_at" in caught.value.details
    with pytest.raises(ValidationFailed) as caught:
        await create(services, "nap_until", send_at="tomorrow")
    assert "context.send_at" in caught.value.details

    later = clock.now() + timedelta(minutes=10)
    task = await create(services, "nap_until", send_at=later.isoformat())
    assert await run(services, task, "nap") == "parked"
    assert (await services.steps.get_step(task.id, "nap")).wake_at == later

    past = (clock.now() - timedelta(minutes=1)).isoformat()
    task = await create(services, "nap_until", send_at=past)
    assert await run(services, task, "nap") == "complete"


async def test_a_wake_time_outside_the_calendar_in_utc_is_its_first_or_last_moment(
    services: Services,
) -> None:
    """Valid times that leave the calendar once converted to UTC: taken, not refused as if
    they were not times; one before it has passed, one after it never comes."""
    recording(services, TimedRecorder())
    task = await create(services, "nap_until", send_at="0001-01-01T00:01:00+00:03")
    assert await run(services, task, "nap") == "complete"

    task = await create(services, "nap_until", send_at="9999-12-31T23:59:59-00:01")
    assert await run(services, task, "nap") == "parked"
    nap = await services.steps.get_step(task.id, "nap")
    assert nap.wake_at == datetime.max.replace(tzinfo=UTC)


async def test_a_parents_path_that_resolves_to_nothing_fails_the_step_with_bad_path(
    services: Services,
) -> None:
    recording(services, TimedRecorder())
    task = await create(services, "nap_parent")
    await reach(services, task, "first")
    await run(services, task, "nap")
    nap = await services.steps.get_step(task.id, "nap")
    assert (nap.status, nap.error_class) == (StepState.ERROR, "BAD_PATH")
    assert "parents.first.results.wake" in (nap.last_error or "")
    assert (await services.tasks.get_task(task.id)).status is TaskState.ERROR


async def test_a_signal_completes_the_parked_step_with_its_payload(services: Services) -> None:
    clock, recorder = recording(services, TimedRecorder())
    task = await create(services, "approval")
    await reach(services, task, "prepare")
    await run(services, task, "approve")
    approve = await services.steps.get_step(task.id, "approve")
    assert approve.status is StepState.PENDING and approve.wake_at is not None
    reason = (await services.tasks.dependencies(task.id)).reasons["approve"]
    assert (reason.code, reason.signal, reason.until) == (
        "waiting_for_signal",
        "approved",
        approve.wake_at,
    )
    recorder.sent.clear()
    sent = await services.signals.send(task.id, "approved", {"by": "ada"}, "mail-1")
    assert (sent.created, sent.consumed_by, sent.payload) == (True, "approve", {"by": "ada"})
    approve = await services.steps.get_step(task.id, "approve")
    assert (approve.status, approve.results) == (StepState.COMPLETE, {"by": "ada"})
    ship = await services.steps.get_step(task.id, "ship")
    assert [i for i, _ in recorder.sent] == [ship.id]
    assert "signal" in await reasons(services, task)

    # The same signal_id again: delivered once, the same answer.
    again = await services.signals.send(task.id, "approved", {"by": "someone else"}, "mail-1")
    assert (again.created, again.consumed_by, again.payload) == (False, "approve", {"by": "ada"})
    assert await Signal.filter(task_id=task.id).count() == 1

    # The late timeout message finds the step complete: nothing happens.
    clock.advance_to(clock.now() + timedelta(hours=2))
    assert await services.runner.run_step(approve.id) == "skipped"
    assert await run(services, task, "ship") == "complete"
    assert (await services.tasks.get_task(task.id)).status is TaskState.COMPLETE
    with pytest.raises(Conflict):
        await services.signals.send(task.id, "approved", {})


async def test_a_signal_sent_early_is_kept_and_consumed_when_the_step_is_reached(
    services: Services,
) -> None:
    recording(services, TimedRecorder())
    task = await create(services, "approval")
    early = await services.signals.send(task.id, "approved")
    assert (early.created, early.consumed_by, early.payload) == (True, None, {})
    await reach(services, task, "prepare")
    await run(services, task, "approve")
    approve = await services.steps.get_step(task.id, "approve")
    assert (approve.status, approve.results) == (StepState.COMPLETE, {})
    consumed = await Signal.get(task_id=task.id)
    assert consumed.consumed_by_id == approve.id  # type: ignore[attr-defined]


async def test_signals_refuse_unknown_names_tasks_and_bad_input(services: Services) -> None:
    recording(services, TimedRecorder())
    task = await create(services, "approval")
    with pytest.raises(ValidationFailed) as caught:
        await services.signals.send(task.id, "rejected")
    assert "name" in caught.value.details
    with pytest.raises(ValidationFailed) as caught:
        await services.signals.send(task.id, "approved", ["not", "an", "object"])  # type: ignore[arg-type]
    assert "payload" in caught.value.details
    with pytest.raises(TaskNotFound):
        await services.signals.send("not-a-uuid", "approved")
    with pytest.raises(TaskNotFound):
        await services.signals.send("00000000-0000-0000-0000-000000000000", "approved")


async def test_a_wait_that_times_out_fails_with_signal_timeout(services: Services) -> None:
    clock, _ = recording(services, TimedRecorder())
    task = await create(services, "approval")
    await reach(services, task, "prepare")
    await run(services, task, "approve")
    approve = await services.steps.get_step(task.id, "approve")
    assert approve.wake_at is not None
    clock.advance_to(approve.wake_at - timedelta(seconds=30))
    assert await services.runner.run_step(approve.id) == "skipped"  # not before its deadline
    clock.advance_to(approve.wake_at + timedelta(seconds=1))
    assert await services.runner.run_step(approve.id) == "failed"
    approve = await services.steps.get_step(task.id, "approve")
    assert (approve.status, approve.error_class) == (StepState.ERROR, "SIGNAL_TIMEOUT")
    assert "timeout" in await reasons(services, task)
    reason = (await services.tasks.dependencies(task.id)).reasons["approve"]
    assert reason.code == "failed_permanently"
    assert (await services.tasks.get_task(task.id)).status is TaskState.ERROR


async def test_a_wait_that_times_out_with_skip_completes_with_null_results(
    services: Services,
) -> None:
    clock, _ = recording(services, TimedRecorder())
    task = await create(services, "optional_approval")
    assert await run(services, task, "review") == "parked"
    review = await services.steps.get_step(task.id, "review")
    assert review.wake_at is not None
    clock.advance_to(review.wake_at + timedelta(seconds=1))
    assert await services.runner.run_step(review.id) == "complete"
    review = await services.steps.get_step(task.id, "review")
    assert (review.status, review.results, review.skipped) == (StepState.COMPLETE, None, True)
    row = await Transition.filter(step_id=review.id, reason="timeout").first()
    assert row is not None and row.metadata["skipped"] is True
    assert await run(services, task, "ship") == "complete"


async def test_a_wait_without_deadline_sends_no_message_and_says_so(services: Services) -> None:
    clock, recorder = recording(services, TimedRecorder())
    task = await create(services, "forever")
    recorder.sent.clear()
    assert await run(services, task, "hold") == "parked"
    assert recorder.sent == []
    reason = (await services.tasks.dependencies(task.id)).reasons["hold"]
    assert (reason.code, reason.signal, reason.until) == ("waiting_for_signal", "go", None)
    clock.advance_to(clock.now() + timedelta(days=30))
    assert await services.sweeper.redispatch_idle() == 0
    await services.signals.send(task.id, "go", {"n": 1})
    assert (await services.tasks.get_task(task.id)).status is TaskState.COMPLETE


# --- the embedded engine, for real --------------------------------------------------------


async def test_a_short_sleep_runs_by_itself_and_never_ends_early(engine: Services) -> None:
    begun = datetime.now(UTC)
    task = await create(engine, "short_nap")
    done = await wait_for_task(engine, task.id, timeout=15)
    assert done.status is TaskState.COMPLETE
    nap = await engine.steps.get_step(task.id, "nap")
    assert nap.completed_at is not None
    assert nap.completed_at - begun >= timedelta(seconds=0.5)


async def test_a_signal_wakes_a_waiting_task_in_the_running_engine(engine: Services) -> None:
    task = await create(engine, "approval")
    await wait_for_task(engine, task.id, {TaskState.IN_PROGRESS})
    for _ in range(200):  # until the wait is parked
        approve = await engine.steps.get_step(task.id, "approve")
        if approve.wake_at is not None:
            break
        await asyncio.sleep(0.02)
    await engine.signals.send(task.id, "approved", {"ok": True})
    done = await wait_for_task(engine, task.id, timeout=15)
    assert done.status is TaskState.COMPLETE
    assert (await engine.steps.get_step(task.id, "approve")).results == {"ok": True}
