"""Claims written together on PostgreSQL (`server.engine.pg_sql.CLAIM` through the store's
group commit): claims that arrive together are one statement, and each is the claim it would
have been alone: its own lease, its own history, one start per task, a step asked for twice
claimed once."""

import asyncio

import pytest

from server.db.models import Transition, WorkflowStep
from server.domain.views import CreateTask
from server.engine.pg_store import PgStore
from server.engine.runner import Claimer
from server.engine.store import ClaimRequest
from tests.conftest import BACKEND
from tests.support.recorder import Recorder

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="the PostgreSQL store's statement")


async def _task(services, name):
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name=name, context={"n": name})
    )
    steps = {s.name: s.id for s in await services.steps.list_steps(task.id)}
    return task, steps


def _store(services) -> PgStore:
    store = services.store
    assert isinstance(store, PgStore)
    return store


async def test_claims_arriving_together_are_one_statement_and_each_its_own_claim(
    services, monkeypatch
):
    services.set_dispatcher(Recorder())
    store = _store(services)
    events = []
    publish = services.changes.after_commit

    def spy(effects):
        events.extend(effects.events)
        publish(effects)

    monkeypatch.setattr(services.changes, "after_commit", spy)
    claimer = Claimer(store, worker_id="here:1:abc", default_timeout=30, lease_grace=5)
    wide, wide_steps = await _task(services, "parallel_merge")
    others = [await _task(services, "diamond") for _ in range(2)]
    ids = [wide_steps[n] for n in ("r1", "r2", "r3", "r4")]
    ids += [steps["start"] for _, steps in others]
    requests = [claimer.request(step_id) for step_id in ids]
    batches = store.claims.batches

    claims = await store.claim(requests)

    assert store.claims.batches == batches + 1  # all six in one statement
    assert [c.step_id if c else None for c in claims] == ids
    assert [c.lease_owner for c in claims if c] == [r.lease_owner for r in requests]
    for claim, task_id in zip(claims, [wide.id] * 4 + [t.id for t, _ in others], strict=True):
        assert claim is not None and claim.task.id == task_id and claim.attempt == 1
        assert claim.context == {"n": "parallel_merge" if task_id == wide.id else "diamond"}
    for step_id, request in zip(ids, requests, strict=True):
        step = await WorkflowStep.get(id=step_id)
        assert (step.status, step.lease_owner) == ("in_progress", request.lease_owner)
        (claimed,) = await Transition.filter(step_id=step_id, reason="claimed")
        assert claimed.metadata == {"attempt": 1, "worker": request.lease_owner}
    # Four steps of one pending task claimed in one statement start it once, and its start
    # is published once, by the cursor of its history row.
    for task_id in (wide.id, *(t.id for t, _ in others)):
        (start,) = await Transition.filter(task_id=task_id, step_id=None, to_status="in_progress")
        published = [
            e
            for e in events
            if e.task_id == str(task_id) and e.step_id is None and e.to_status == "in_progress"
        ]
        assert [e.cursor for e in published] == [start.id]
    for step_id in ids:
        (claimed,) = await Transition.filter(step_id=step_id, reason="claimed")
        mine = [e.cursor for e in events if e.step_id == step_id and e.reason == "claimed"]
        assert mine == [claimed.id]


async def test_a_step_asked_for_twice_in_one_batch_is_claimed_once(services):
    services.set_dispatcher(Recorder())
    store = _store(services)
    _, steps = await _task(services, "diamond")
    first, second = (
        ClaimRequest(steps["start"], f"here:1:abc/{n}", "here:1:abc", 30, 5) for n in (1, 2)
    )

    claims = await store.claim([first, second])

    assert claims[0] is not None and claims[0].lease_owner == first.lease_owner
    assert claims[1] is None
    assert await Transition.filter(step_id=steps["start"], reason="claimed").count() == 1
    step = await WorkflowStep.get(id=steps["start"])
    assert (step.attempts, step.lease_owner) == (1, first.lease_owner)


async def test_racing_batches_claim_each_step_once(services):
    """Two workers' batches over the same steps, in opposite orders: every step is claimed by
    exactly one, and neither waits on the other forever (tasks are locked in one order)."""
    services.set_dispatcher(Recorder())
    store = _store(services)
    made = [await _task(services, "diamond") for _ in range(6)]
    ids = [steps["start"] for _, steps in made]
    one = Claimer(store, worker_id="one:1:a", default_timeout=30, lease_grace=5)
    two = Claimer(store, worker_id="two:1:b", default_timeout=30, lease_grace=5)

    async def batch(claimer, order):
        # Each batch is its own statement: a group commit of its own, as another process has.
        own = PgStore(services.changes, store.backoff)
        return await own.claim([claimer.request(i) for i in order])

    left, right = await asyncio.wait_for(
        asyncio.gather(batch(one, ids), batch(two, ids[::-1])), timeout=30
    )
    winners = {c.step_id: c.lease_owner for c in [*left, *right] if c is not None}
    assert sorted(winners) == sorted(ids)
    assert sum(c is not None for c in [*left, *right]) == len(ids)
    for step_id, lease in winners.items():
        step = await WorkflowStep.get(id=step_id)
        assert step.lease_owner == lease
        assert await Transition.filter(step_id=step_id, reason="claimed").count() == 1
