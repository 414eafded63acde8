"""The sweeper: lost nudges are re-sent, but not while a backlog is still draining."""

from datetime import timedelta

from server.db.models import WorkflowStep
from server.domain.views import CreateTask
from server.engine.store import Outcome
from tests.conftest import on_every_store

pytestmark = on_every_store


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []
        self.queued = 0

    def dispatch(self, step_ids, delay_seconds=0.0, priority=2):
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
