"""Pause and resume, of a task and of a handler: no new step starts while paused (both step
stores refuse the claim), running steps finish, creation is still accepted, the sweeper
leaves paused tasks alone, resuming re-sends the ready steps at once; idempotent both ways,
recorded in the task's history, `blocked_reason` `paused`.
"""

import asyncio
from datetime import timedelta

import pytest

from server.container import Services
from server.db.models import Transition
from server.domain.errors import HandlerNotFound, InvalidTransition
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask, TaskView
from server.engine.store import Outcome
from server.testing import VirtualClock
from tests.conftest import on_every_store
from tests.support.recorder import Recorder
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

LINEAR = {"namespace": "shapes", "name": "linear", "context": {}}


async def recorded(services: Services) -> tuple[Recorder, TaskView]:
    recorder = Recorder()
    services.set_dispatcher(recorder)
    task, _ = await services.tasks.create_task(CreateTask(**LINEAR))
    return recorder, task


PAUSE_REASONS = ("paused", "resumed", "handler paused", "handler resumed")


async def reasons(task: TaskView) -> list[str]:
    """The task's pause history, oldest first."""
    rows = await Transition.filter(task_id=task.id, reason__in=PAUSE_REASONS).order_by("id")
    return [r.reason for r in rows]


async def test_a_paused_task_starts_no_step_until_resumed_which_sends_them_at_once(
    services: Services,
) -> None:
    recorder, task = await recorded(services)
    root = await services.steps.get_step(task.id, "a")

    paused = await services.pausing.pause_task(task.id)
    assert paused.paused and paused.paused_at is not None
    assert paused.status is TaskState.PENDING  # creation and status are untouched
    again = await services.pausing.pause_task(task.id)  # idempotent: no error, no new row
    assert again.paused_at == paused.paused_at
    assert await reasons(task) == ["paused"]

    assert await services.runner.claim(root.id) is None
    deps = await services.tasks.dependencies(task.id)
    assert deps.reasons["a"].code == "paused"
    assert deps.analysis.analysis.startswith("Task is paused")

    # The sweeper does not re-send a paused task's steps, however long they wait.
    clock = VirtualClock()
    services.changes.clock = clock
    clock.advance_to(clock.now() + timedelta(hours=1))
    recorder.sent.clear()
    assert await services.sweeper.redispatch_idle() == 0
    assert recorder.sent == []

    resumed = await services.pausing.resume_task(task.id)
    assert not resumed.paused
    assert recorder.sent == [root.id]  # at once, not at the sweeper's next pass
    await services.pausing.resume_task(task.id)  # idempotent
    assert await reasons(task) == ["paused", "resumed"]
    assert await services.runner.claim(root.id) is not None


async def test_a_running_step_finishes_while_paused_and_its_child_waits(
    services: Services,
) -> None:
    recorder, task = await recorded(services)
    root = await services.steps.get_step(task.id, "a")
    claim = await services.runner.claim(root.id)
    assert claim is not None
    await services.pausing.pause_task(task.id)
    assert await services.runner.record(claim, Outcome(results={"ok": 1})) != "discarded"
    assert (await services.steps.get_step(task.id, "a")).status is StepState.COMPLETE
    child = await services.steps.get_step(task.id, "b")
    assert await services.runner.claim(child.id) is None
    recorder.sent.clear()
    await services.pausing.resume_task(task.id)
    assert recorder.sent == [child.id]
    assert await services.runner.claim(child.id) is not None


async def test_a_paused_handler_pauses_its_tasks_present_and_future(services: Services) -> None:
    recorder, before = await recorded(services)
    state = await services.pausing.pause_handler("shapes", "linear")
    assert state.paused and state.versions == ("",)
    assert (await services.pausing.pause_handler("shapes", "linear")).paused  # idempotent
    after, created = await services.tasks.create_task(CreateTask(**LINEAR))
    assert created  # creation is still accepted
    for task in (before, after):
        view = await services.tasks.get_task(task.id)
        assert view.paused and view.paused_at is None and view.handler_paused_at is not None
        root = await services.steps.get_step(task.id, "a")
        assert await services.runner.claim(root.id) is None
    assert await reasons(before) == ["handler paused"]
    # Another handler is not concerned.
    other, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    assert not (await services.tasks.get_task(other.id)).paused

    # A task paused by hand and by its handler stays paused until both are lifted.
    await services.pausing.pause_task(before.id)
    recorder.sent.clear()
    state = await services.pausing.resume_handler("shapes", "linear")
    assert not state.paused and state.versions == ()
    after_root = await services.steps.get_step(after.id, "a")
    assert recorder.sent == [after_root.id]
    assert (await services.tasks.get_task(before.id)).paused
    assert await services.runner.claim(after_root.id) is not None
    await services.pausing.resume_task(before.id)
    assert await services.runner.claim((await services.steps.get_step(before.id, "a")).id)
    assert await reasons(before) == ["handler paused", "paused", "handler resumed", "resumed"]


async def test_pausing_one_version_and_errors(services: Services) -> None:
    version = services.registry.get("shapes", "linear").version
    state = await services.pausing.pause_handler("shapes", "linear", version)
    assert state.paused and state.versions == (version,)
    task, _ = await services.tasks.create_task(CreateTask(**LINEAR))
    assert (await services.tasks.get_task(task.id)).paused
    await services.pausing.resume_handler("shapes", "linear", version)
    assert not (await services.tasks.get_task(task.id)).paused
    with pytest.raises(HandlerNotFound):
        await services.pausing.pause_handler("shapes", "no_such_handler")
    cancelled, _ = await services.tasks.create_task(CreateTask(**LINEAR))
    await services.tasks.cancel_task(cancelled.id)
    with pytest.raises(InvalidTransition):
        await services.pausing.pause_task(cancelled.id)
    await services.pausing.resume_task(cancelled.id)  # nothing to resume: no error


async def test_pausing_a_handler_in_flight_no_step_starts_after_the_pause_commits(
    engine: Services,
) -> None:
    """Real embedded workers: pause the handler while its tasks run, then no step claim is
    recorded after the pause (history ids are drawn under the task's lock, so they order a
    task's writes), and after resuming every task completes."""
    tasks = [(await engine.tasks.create_task(CreateTask(**LINEAR)))[0] for _ in range(30)]
    await asyncio.sleep(0.05)
    await engine.pausing.pause_handler("shapes", "linear")
    pauses = {
        r.task_id: r.id  # type: ignore[attr-defined]
        for r in await Transition.filter(reason="handler paused")
    }
    await asyncio.sleep(0.5)  # running steps finish; nothing new starts
    unfinished = [t for t in tasks if t.id in pauses]
    assert unfinished, "every task finished before the pause: nothing was tested"
    for task in unfinished:
        late = await Transition.filter(
            task_id=task.id, reason="claimed", id__gt=pauses[task.id]
        ).count()
        assert late == 0, f"a step of {task.id} started after the pause"
    await engine.pausing.resume_handler("shapes", "linear")
    for task in tasks:
        done = await wait_for_task(engine, task.id)
        assert done.status is TaskState.COMPLETE


async def test_concurrent_pauses_of_one_handler_make_one_pause(services: Services) -> None:
    states = await asyncio.gather(
        *(services.pausing.pause_handler("shapes", "linear") for _ in range(5))
    )
    assert all(s.paused and s.versions == ("",) for s in states)
