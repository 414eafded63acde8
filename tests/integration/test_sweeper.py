"""The sweeper: lost nudges are re-sent, but not while a backlog is still draining; an idle
sweep is one probe, and the sweep after work appears acts on it."""

import asyncio
from datetime import timedelta

import asyncpg

from server.db.models import LimitSlot, StepItem, Task, WorkflowStep
from server.domain.views import CreateTask
from server.engine.store import Outcome
from server.engine.sweep_probe import SweepWork, probe
from server.engine.sweeper import SweepReport
from tests.conftest import on_every_store

pytestmark = on_every_store


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []
        self.queued = 0

    def dispatch(self, step_ids, delay_seconds=0.0, priority=2, limited=False):
        self.sent.extend(step_ids)

    def backlog(self) -> int:
        return self.queued


async def test_lost_nudges_are_resent_only_once_the_queue_is_empty(services):
    recorder = Recorder()
    services.set_dispatcher(recorder)
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    root = await services.steps.get_step(task.id, "start")
    assert recorder.sent == [root.id]  # dispatched after commit
    recorder.sent.clear()
    stale = services.changes.clock.now() - timedelta(minutes=5)
    await WorkflowStep.filter(id=root.id).update(dispatched_at=stale)

    recorder.queued = 1000  # a backlog: the nudge is not lost, just waiting
    assert await services.sweeper.redispatch_idle() == 0
    assert recorder.sent == []

    services.sweeper._backlog_since -= 3600  # a backlog that never drains: re-send anyway
    assert await services.sweeper.redispatch_idle() == 1
    assert recorder.sent == [root.id]
    recorder.sent.clear()
    await WorkflowStep.filter(id=root.id).update(dispatched_at=stale)

    recorder.queued = 0
    assert await services.sweeper.redispatch_idle() == 1
    assert recorder.sent == [root.id]
    assert await services.sweeper.redispatch_idle() == 0  # stamped again: not re-sent at once


async def test_expired_leases_go_down_the_retry_path_as_worker_lost(services):
    services.set_dispatcher(Recorder())
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    root = await services.steps.get_step(task.id, "a")
    claim = await services.runner.claim(root.id)
    assert claim is not None
    past = services.changes.clock.now() - timedelta(seconds=1)
    await WorkflowStep.filter(id=root.id).update(lease_expires_at=past)
    assert await services.sweeper.reap_expired_leases() == 1
    step = await services.steps.get_step(task.id, "a")
    assert (step.status.value, step.error_class, step.attempts) == ("error", "WorkerLost", 1)
    assert step.next_attempt_at is not None  # retryable: scheduled again
    late = await services.runner.record(claim, Outcome(results=1))
    assert late == "discarded"  # the lost worker's late result does not count


async def test_an_idle_sweep_is_one_probe_and_the_next_sweep_acts_on_new_work(services, statements):
    recorder = Recorder()
    services.set_dispatcher(recorder)
    await services.sweeper.sweep()  # the first sweep also rolls the analytics up
    statements.seen.clear()
    assert await services.sweeper.sweep() == SweepReport()
    assert len(statements.seen) == 1 and "EXISTS" in statements.seen[0]

    # A lost message: a ready step dispatched a window ago and never claimed.
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    root = await services.steps.get_step(task.id, "a")
    recorder.sent.clear()
    stale = services.changes.clock.now() - timedelta(minutes=5)
    await WorkflowStep.filter(id=root.id).update(dispatched_at=stale)
    assert (await services.sweeper.sweep()).redispatched == 1
    assert recorder.sent == [root.id]

    # An expired lease: taken back by the next sweep.
    assert await services.runner.claim(root.id) is not None
    past = services.changes.clock.now() - timedelta(seconds=1)
    await WorkflowStep.filter(id=root.id).update(lease_expires_at=past)
    assert (await services.sweeper.sweep()).reaped == 1

    # Nothing left to act on once the task has ended: one probe again.
    await services.tasks.cancel_task(task.id)
    statements.seen.clear()
    assert await services.sweeper.sweep() == SweepReport()
    assert len(statements.seen) == 1


async def test_the_probe_sees_each_kind_of_work(services):
    assert not (await probe()).any
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    assert (await probe()) == SweepWork(False, False, True, False)
    root = await services.steps.get_step(task.id, "a")
    await WorkflowStep.filter(id=root.id).update(status="in_progress")
    await Task.filter(id=task.id).update(status="error")
    assert (await probe()) == SweepWork(True, False, False, False)
    await WorkflowStep.filter(id=root.id).update(status="complete")
    await LimitSlot.create(
        scope="step:shapes/linear/a",
        key="k",
        state="waiting",
        step_id=root.id,
        task_id=task.id,
        limit=1,
        created_at=services.changes.clock.now(),
    )
    assert (await probe()) == SweepWork(False, False, False, True)
    await LimitSlot.all().delete()
    now = services.changes.clock.now()
    await StepItem.create(step_id=root.id, idx=0, status="in_progress", updated_at=now)
    assert (await probe()) == SweepWork(False, True, False, False)


async def test_a_backlog_is_not_re_examined_as_stuck(services):
    # Tasks whose steps wait in the queue (or run) are moving: a backlog older than the quiet
    # window used to cost a transaction per task per window; only a task with nothing in
    # flight is re-examined.
    recorder = Recorder()
    services.set_dispatcher(recorder)
    queued, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    running, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    start = await services.steps.get_step(running.id, "start")
    assert await services.runner.claim(start.id) is not None
    stuck, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    # Nothing in flight (its nudge lost long ago and its stamp cleared, as no path leaves it).
    await WorkflowStep.filter(task_id=stuck.id).update(dispatched_at=None)
    old = services.changes.clock.now() - timedelta(hours=1)
    await Task.filter(id__in=[queued.id, running.id, stuck.id]).update(updated_at=old)
    recorder.sent.clear()

    assert await services.sweeper.finalize_stuck() == 0  # re-examined, nothing to finalize
    stamps = dict(await Task.all().values_list("id", "updated_at"))
    assert stamps[queued.id] == old and stamps[running.id] == old
    assert stamps[stuck.id] > old
    stuck_start = await services.steps.get_step(stuck.id, "start")
    assert recorder.sent == [stuck_start.id]  # its ready step sent again


async def test_the_idle_re_dispatch_skips_a_step_being_claimed(services, database_url):
    # The sweep takes no task lock, so it must never wait for a step row a claim or a
    # completion holds (that deadlocked with them), nor stamp a step that is running by the
    # time it stamps (its row would move under its completion, which then discards it).
    recorder = Recorder()
    services.set_dispatcher(recorder)
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={})
    )
    root = await services.steps.get_step(task.id, "start")
    stale = services.changes.clock.now() - timedelta(minutes=5)
    await WorkflowStep.filter(id=root.id).update(dispatched_at=stale)
    recorder.sent.clear()
    if database_url.startswith("postgres"):
        holder = await asyncpg.connect(database_url)
        try:
            async with holder.transaction():
                await holder.execute(
                    "SELECT 1 FROM tasker_workflow_steps WHERE id = $1 FOR UPDATE", root.id
                )
                sent = await asyncio.wait_for(services.sweeper.redispatch_idle(), 10)
                assert (sent, recorder.sent) == (0, [])  # skipped, not waited for
        finally:
            await holder.close()
    assert await services.runner.claim(root.id) is not None  # claimed after it was seen
    assert await services.sweeper._stamp([root.id], services.changes.clock.now()) == {}
    assert (await WorkflowStep.get(id=root.id)).dispatched_at == stale
    await WorkflowStep.filter(id=root.id).update(status="pending", lease_owner=None)
    assert await services.sweeper.redispatch_idle() == 1
    assert recorder.sent == [root.id]
