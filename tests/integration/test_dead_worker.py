"""A worker whose heartbeats stop is dead: its running steps are reclaimed within seconds,
whatever their step timeout, while a live worker's long step is never taken from it.

The first tests drive the sweeper's rule on either backend; the last two run real
`tasker worker` processes on PostgreSQL and Redis (the PostgreSQL pass, as
test_production.py), with the default 300 s step timeout.
"""

import asyncio
import os
import signal
import time
from datetime import timedelta

import pytest
from pydantic import ValidationError

from server.config import Settings
from server.container import Services
from server.db.models import WorkerHeartbeat, WorkflowStep
from server.domain.states import TaskState
from server.domain.views import CreateTask
from server.engine.runner import Claimer
from server.engine.store import Outcome, lease_holder
from tests.conftest import BACKEND, REDIS_URL, on_every_store
from tests.integration.test_production import _producer
from tests.support.cluster import WorkerProcesses
from tests.support.recorder import Recorder
from tests.support.waiting import wait_for_task
from workers.broker import QUEUE, DramatiqDispatcher, build_broker, declare_run_step

HOLDER = "far-host:4242:abcdef"
"""Another worker process, which claims the step and then goes quiet (or not)."""


async def _running_step(services: Services):
    """A task whose first step HOLDER claimed (lease: the 300 s default timeout), seen by this
    process, which has been beating for a minute."""
    services.set_dispatcher(Recorder())
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    step = await services.steps.get_step(task.id, "a")
    holder = Claimer(services.store, worker_id=HOLDER, default_timeout=300, lease_grace=15)
    claim = await holder.claim(step.id)
    assert claim is not None
    assert lease_holder(claim.lease_owner) == HOLDER
    await services.workers.heartbeat(services.worker_id, "here", os.getpid(), _now(services))
    assert services.workers.watching_since is not None
    services.workers.watching_since -= timedelta(minutes=1)
    return task, claim


def _now(services: Services):
    return services.changes.clock.now()


async def _last_seen(services: Services, seconds_ago: float) -> None:
    """HOLDER's last heartbeat, `seconds_ago` on the database's clock."""
    seen = await services.workers.now() - timedelta(seconds=seconds_ago)
    await WorkerHeartbeat.create(
        worker_id=HOLDER, hostname="far-host", pid=4242, started_at=seen, last_seen_at=seen
    )


@on_every_store
async def test_steps_of_a_worker_silent_past_the_threshold_are_reclaimed(services):
    task, _ = await _running_step(services)
    await _last_seen(services, 16)  # three heartbeats missed, and more
    assert await services.sweeper.reclaim_from_dead_workers() == 1
    step = await services.steps.get_step(task.id, "a")
    assert (step.status.value, step.error_class, step.attempts) == ("error", "WorkerLost", 1)
    assert "heartbeats stopped" in (step.last_error or "")
    assert step.next_attempt_at is not None  # down the retry path, not failed


@on_every_store
async def test_a_worker_with_a_fresh_heartbeat_keeps_its_long_step(services):
    task, _ = await _running_step(services)
    await _last_seen(services, 4)  # one interval late: alive
    assert await services.sweeper.reclaim_from_dead_workers() == 0
    assert await services.sweeper.reap_expired_leases() == 0  # the lease has 300 s to go
    step = await services.steps.get_step(task.id, "a")
    assert step.status.value == "in_progress"


@on_every_store
async def test_a_worker_that_never_beat_is_left_to_its_lease(services):
    task, _ = await _running_step(services)
    assert await services.sweeper.reclaim_from_dead_workers() == 0
    assert (await services.steps.get_step(task.id, "a")).status.value == "in_progress"


@on_every_store
async def test_nobody_is_called_dead_until_this_process_has_beaten_for_two_intervals(
    services,
):
    """Back from a database outage, every heartbeat is stale, this process's own included:
    it must not take the steps of workers that have not had their turn to beat again."""
    task, _ = await _running_step(services)
    await _last_seen(services, 60)
    services.workers.watching_since = await services.workers.now()  # just came back
    assert await services.sweeper.reclaim_from_dead_workers() == 0
    assert (await services.steps.get_step(task.id, "a")).status.value == "in_progress"
    # Two intervals (here 2 x 0.5 s): every live worker has had its turn to beat again.
    services.workers.watching_since -= timedelta(seconds=1.1)
    assert await services.sweeper.reclaim_from_dead_workers() == 1


@on_every_store
async def test_a_frozen_worker_that_wakes_cannot_record_over_the_new_attempt(services):
    task, frozen = await _running_step(services)
    await _last_seen(services, 60)
    assert await services.sweeper.reclaim_from_dead_workers() == 1
    await WorkflowStep.filter(id=frozen.step_id).update(
        next_attempt_at=services.changes.clock.now() - timedelta(seconds=1)
    )
    other = Claimer(
        services.store, worker_id="elsewhere:1:abcdef", default_timeout=300, lease_grace=15
    )
    second = await other.claim(frozen.step_id)
    assert second is not None and second.attempt == 2
    # The frozen worker wakes and reports its attempt: refused, the new attempt untouched.
    assert await services.runner.record(frozen, Outcome(results={"late": True})) == "discarded"
    step = await services.steps.get_step(task.id, "a")
    assert (step.status.value, step.attempts) == ("in_progress", 2)
    assert (
        await services.runner.record(second, Outcome(results={"ok": True}, encoded='{"ok": true}'))
        == "complete"
    )
    step = await services.steps.get_step(task.id, "a")
    assert step.status.value == "complete" and step.results == {"ok": True}


# --- Real worker processes on PostgreSQL and Redis --------------------------------------------

PRODUCTION_TIMING = (
    # The defaults, not the test suite's fast ones: heartbeat every 5 s, dead after 15 s,
    # step timeout 300 s plus 15 s of lease grace.
    "TASKER_DEFAULT_STEP_TIMEOUT",
    "TASKER_LEASE_GRACE_SECONDS",
    "TASKER_HEARTBEAT_INTERVAL",
    "TASKER_SWEEP_INTERVAL",
    "TASKER_REDISPATCH_AFTER",
    "TASKER_BACKOFF_BASE_SECONDS",
    "TASKER_BACKOFF_MAX_SECONDS",
)


@pytest.fixture
async def cluster(database_url, broker_url, registry, tmp_path):
    services = await _producer(database_url, broker_url, registry)
    workers = WorkerProcesses(database_url, broker_url, tmp_path)
    for key in PRODUCTION_TIMING:
        workers.env.pop(key, None)
    try:
        yield services, workers
    finally:
        workers.stop()
        await services.close()


async def _history_of(services, task_id, name):
    step = {s.name: s for s in await services.steps.list_steps(task_id)}[name]
    return step, (await services.steps.transitions([step.id]))[step.id]


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.skipif(BACKEND != "postgres" or not REDIS_URL, reason="needs PostgreSQL and Redis")
async def test_kill_9_mid_step_reruns_elsewhere_within_30_seconds(cluster, tmp_path):
    services, workers = cluster
    workers.start(2)
    marker = tmp_path / "crashed.pid"
    task, _ = await services.tasks.create_task(
        CreateTask(
            namespace="shapes",
            name="linear",
            context={"crash_once": "b", "crash_marker": str(marker), "sleep": 0},
        )
    )
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, workers.logs()
        await asyncio.sleep(0.02)
    os.kill(int(marker.read_text()), signal.SIGKILL)
    killed = time.monotonic()
    done = await wait_for_task(services, task.id, timeout=30)
    recovered = time.monotonic() - killed
    assert done.status is TaskState.COMPLETE, workers.logs()
    assert recovered < 30, recovered
    step, history = await _history_of(services, task.id, "b")
    assert step.attempts == 2
    lost = [t for t in history if t.to_status == "error"]
    assert lost and lost[0].metadata["error_class"] == "WorkerLost"
    assert "heartbeats stopped" in lost[0].metadata["error"]  # not the 315 s lease
    # Claims name their lease on PostgreSQL: `<worker id>/<n>`.
    claimed_by = [lease_holder(t.metadata["worker"]) for t in history if t.reason == "claimed"]
    assert len(set(claimed_by)) == 2  # the re-run was on the other worker


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.skipif(BACKEND != "postgres" or not REDIS_URL, reason="needs PostgreSQL and Redis")
async def test_a_live_workers_step_longer_than_the_threshold_is_kept(cluster):
    services, workers = cluster
    # Dead after 3 s of silence (six heartbeats); the step runs 7 s, more than twice that.
    workers.env.update(
        {"TASKER_HEARTBEAT_INTERVAL": "0.5", "TASKER_WORKER_DEAD_AFTER_SECONDS": "3"}
    )
    workers.start(2)
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={"sleeps": {"b": 7}, "sleep": 0})
    )
    done = await wait_for_task(services, task.id, timeout=60)
    assert done.status is TaskState.COMPLETE, workers.logs()
    step, history = await _history_of(services, task.id, "b")
    assert step.attempts == 1, history
    assert not [t for t in history if t.to_status == "error"]
    assert "reclaimed" not in workers.logs()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL")
def test_the_backlog_counts_waiting_messages_not_delayed_or_held_ones(broker_url):
    """A pending retry's delayed message (a reclaimed step's, say) is not a backlog: counting
    it held back the sweeper's re-send of lost nudges for minutes."""
    broker = build_broker(broker_url)
    dispatcher = DramatiqDispatcher(declare_run_step(broker, lambda step_id, limited: None))
    try:
        dispatcher.dispatch([1], delay_seconds=60)
        assert dispatcher.backlog() == 0
        dispatcher.dispatch([2, 3])
        assert dispatcher.backlog() == 2
        consumer = broker.consume(QUEUE, prefetch=1, timeout=1000)
        held = next(m for m in consumer if m is not None)  # a worker holds it, unacked
        assert dispatcher.backlog() == 1
        consumer.ack(held)
        consumer.close()
    finally:
        broker.close()


def test_a_threshold_under_two_heartbeats_is_refused_at_start():
    """One late heartbeat must never make a live worker dead."""
    with pytest.raises(ValidationError, match="TASKER_WORKER_DEAD_AFTER_SECONDS"):
        Settings(heartbeat_interval=10, worker_dead_after_seconds=15)
    assert Settings().worker_dead_after_seconds == 15  # three default heartbeats
