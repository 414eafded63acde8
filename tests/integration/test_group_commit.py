"""Completions written together on PostgreSQL (`server.engine.pg_complete`): the counters of a
task and of a child count every step of a batch, a ready child is handed out once, a lost
lease is discarded alone, history stays in order; and the group commit batches only what
arrives while a write is in flight."""

import asyncio
import json

import pytest
from tortoise import Tortoise

from server.db.models import Task, Transition, WorkflowStep
from server.domain.views import CreateTask
from server.engine.group_commit import GroupCommit
from server.engine.pg_complete import complete_many
from server.engine.runner import Claimer
from server.engine.store import Outcome
from tests.conftest import BACKEND
from tests.support.recorder import Recorder

pg_only = pytest.mark.skipif(BACKEND != "postgres", reason="the PostgreSQL store's statement")


def _encoded(claim):
    return json.dumps({"step": claim.step_name})


async def _task(services, name):
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name=name, context={})
    )
    steps = {s.name: s.id for s in await services.steps.list_steps(task.id)}
    return task, steps


def _claimer(services):
    return Claimer(services.store, worker_id="here:1:abc", default_timeout=30, lease_grace=5)


@pg_only
async def test_four_parents_in_one_batch_make_their_child_ready_once(services):
    recorder = Recorder()
    services.set_dispatcher(recorder)
    task, steps = await _task(services, "parallel_merge")
    claimer = _claimer(services)
    claims = [await claimer.claim(steps[n]) for n in ("r1", "r2", "r3", "r4")]
    recorder.sent.clear()
    recorded, unsettled = await complete_many(services.changes, [(c, _encoded(c)) for c in claims])
    assert [r.result for r in recorded] == ["complete"] * 4
    assert unsettled == []
    # The merge is handed to exactly one completion (its lowest-id parent) and sent nowhere.
    assert [r.run_next for r in recorded].count(steps["merge"]) == 1
    assert sum(r.run_next is not None for r in recorded) == 1
    assert recorder.sent == []
    merge = await WorkflowStep.get(id=steps["merge"])
    assert merge.waiting_on == 0 and merge.dispatched_at is not None
    row = await Task.get(id=task.id)
    assert (row.remaining, row.status) == (1, "in_progress")  # 5 steps, 4 done
    last = await claimer.claim(steps["merge"])
    assert last is not None and set(last.parent_results) == {"r1", "r2", "r3", "r4"}
    (done,), _ = await complete_many(services.changes, [(last, _encoded(last))])
    assert done.result == "complete"
    row = await Task.get(id=task.id)
    assert (row.remaining, row.status) == (0, "complete")


@pg_only
async def test_a_batch_finishing_several_tasks_writes_each_tasks_history_in_order(services):
    services.set_dispatcher(Recorder())
    claimer = _claimer(services)
    tasks = []
    for _ in range(3):
        task, steps = await _task(services, "diamond")
        for name in ("start", "left", "right"):
            claim = await claimer.claim(steps[name])
            (r,), _ = await complete_many(services.changes, [(claim, _encoded(claim))])
            assert r.result == "complete"
        tasks.append((task, await claimer.claim(steps["merge"])))
    recorded, _ = await complete_many(services.changes, [(c, _encoded(c)) for _, c in tasks])
    assert [r.result for r in recorded] == ["complete"] * 3
    for task, _ in tasks:
        view = await services.tasks.get_task(task.id)
        assert view.status.value == "complete"
        history = await Transition.filter(task_id=task.id).order_by("id")
        assert [h.reason for h in history[-2:]] == ["completed", "all steps done"]
        cursors = [h.id for h in history]
        assert cursors == sorted(cursors)


@pg_only
async def test_a_lost_lease_in_a_batch_is_discarded_alone(services):
    services.set_dispatcher(Recorder())
    claimer = _claimer(services)
    _, steps = await _task(services, "parallel_merge")
    claims = [await claimer.claim(steps[n]) for n in ("r1", "r2", "r3")]
    # r2's lease was reaped and the step claimed again by someone else.
    await WorkflowStep.filter(id=steps["r2"]).update(lease_owner="elsewhere:9:zzz/1")
    recorded, _ = await complete_many(services.changes, [(c, _encoded(c)) for c in claims])
    assert [r.result for r in recorded] == ["complete", "discarded", "complete"]
    r2 = await WorkflowStep.get(id=steps["r2"])
    assert (r2.status, r2.lease_owner) == ("in_progress", "elsewhere:9:zzz/1")
    merge = await WorkflowStep.get(id=steps["merge"])
    assert merge.waiting_on == 2


@pg_only
async def test_completions_arriving_together_go_in_fewer_statements(services):
    """Through the store, as the runner calls it: the first completion is written alone at
    once, those arriving meanwhile are written together."""
    services.set_dispatcher(Recorder())
    claimer = _claimer(services)
    claims = []
    for _ in range(8):
        _, steps = await _task(services, "parallel_merge")
        claims += [await claimer.claim(steps[n]) for n in ("r1", "r2")]
    group = services.store.completions
    before = (group.batches, group.items)
    results = await asyncio.gather(*(services.runner.record(c, _outcome(c)) for c in claims))
    assert results == ["complete"] * 16
    batches, items = group.batches - before[0], group.items - before[1]
    assert items == 16 and batches < 16
    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict(
        "SELECT count(*) AS n FROM tasker_workflow_steps WHERE status = 'complete'"
    )
    assert rows[0]["n"] == 16


def _outcome(claim):
    return Outcome(results={"step": claim.step_name}, encoded=_encoded(claim))


async def test_an_idle_write_waits_for_nobody_and_a_busy_one_gathers_the_queue():
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def write(items):
        calls.append(list(items))
        if len(calls) == 1:
            await gate.wait()  # the first write is in flight while the others arrive
        return [i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(write, max_items=3)
    first = asyncio.ensure_future(group.submit(1))
    for _ in range(3):
        await asyncio.sleep(0)
    assert calls == [[1]]  # written at once, alone
    rest = [asyncio.ensure_future(group.submit(i)) for i in range(2, 7)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert calls == [[1]]  # queued behind the write in flight
    gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert calls == [[1], [2, 3, 4], [5, 6]]  # bounded batches, in arrival order
    assert await group.submit(7) == 70 and calls[-1] == [7]


async def test_a_failed_write_fails_every_caller_of_its_batch_only():
    async def write(items):
        await asyncio.sleep(0)  # in flight for a turn of the loop: the others queue
        if 2 in items:
            raise RuntimeError("database went away")
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(write, max_items=2)
    futures = [asyncio.ensure_future(group.submit(i)) for i in (1, 2, 3, 4)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    # Queued together: [1, 2] fails as a whole, [3, 4] is written after it.
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], RuntimeError)
    assert results[2:] == [3, 4]
    assert await group.submit(5) == 5


async def test_a_cancelled_caller_does_not_cancel_its_neighbours_write():
    gate = asyncio.Event()

    async def write(items):
        await gate.wait()
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(write)
    leaving = asyncio.ensure_future(group.submit(1))
    staying = asyncio.ensure_future(group.submit(2))
    await asyncio.sleep(0.01)
    leaving.cancel()  # the first caller gives up while its batch is in flight
    gate.set()
    assert await staying == 2
    assert leaving.cancelled()
