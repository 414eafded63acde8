"""Flow control in the engine: step concurrency per key, rate-limit windows, handler
concurrency and the priority of the hand-off, on every step store.

The claim is driven by hand on a virtual clock with a dispatcher that records what it is
asked to send, so each refusal and each hand-off is seen exactly.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from server.container import Services
from server.db.models import LimitSlot, Transition
from server.domain.errors import ValidationFailed
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask, TaskView
from server.engine.store import Outcome
from server.registry.handler_registry import HandlerRegistry
from server.services.flow_status import limit_usage
from server.testing import VirtualClock
from tests.conftest import ROOT, WORKFLOWS, on_every_store
from tests.support.recorder import TimedRecorder, recording

pytestmark = on_every_store
FLOW = ROOT / "tests" / "fixtures" / "flow"


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    yield HandlerRegistry.load([WORKFLOWS, FLOW], examples=False)


def advance(clock: VirtualClock, seconds: float) -> None:
    clock.advance_to(clock.now() + timedelta(seconds=seconds))


async def create(services: Services, name: str, **fields: Any) -> TaskView:
    priority = fields.pop("priority", None)
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="flow", name=name, context=fields, priority=priority)
    )
    return task


async def step_id(services: Services, task: TaskView, name: str) -> int:
    return (await services.steps.get_step(task.id, name)).id


async def finish(services: Services, claim: Any) -> None:
    assert await services.runner.record(claim, Outcome(results={"ok": 1})) == "complete"


async def test_a_third_step_of_a_key_waits_and_the_freed_slot_hands_off_at_once(
    services: Services,
) -> None:
    _, recorder = recording(services, TimedRecorder())
    a1, a2, a3 = [await create(services, "limited", customer="acme") for _ in range(3)]
    b1 = await create(services, "limited", customer="globex")
    ids = [await step_id(services, t, "sync") for t in (a1, a2, a3, b1)]
    c1 = await services.runner.claim(ids[0])
    c2 = await services.runner.claim(ids[1])
    assert c1 is not None and c2 is not None
    assert await services.runner.claim(ids[2]) is None  # acme has 2 running
    assert await services.runner.claim(ids[3]) is not None  # another key is not held back
    deps = await services.tasks.dependencies(a3.id)
    reason = deps.reasons["sync"]
    assert reason.code == "concurrency_limited"
    assert reason.key == "acme"
    assert sorted(reason.holders) == sorted([str(ids[0]), str(ids[1])])
    assert (await services.steps.get_step(a3.id, "sync")).status is StepState.PENDING

    recorder.sent.clear()
    await finish(services, c1)
    assert ids[2] in [i for i, _ in recorder.sent]  # handed off by the completion
    assert await services.runner.claim(ids[2]) is not None
    assert await LimitSlot.filter(state="waiting").count() == 0


async def test_a_failed_attempt_frees_its_slot_and_the_retry_needs_one_again(
    services: Services,
) -> None:
    clock, _ = recording(services, TimedRecorder())
    tasks = [await create(services, "limited", customer="acme") for _ in range(3)]
    ids = [await step_id(services, t, "sync") for t in tasks]
    c1 = await services.runner.claim(ids[0])
    assert c1 is not None and await services.runner.claim(ids[1]) is not None
    assert await services.runner.claim(ids[2]) is None
    assert await services.runner.record(c1, Outcome(error="boom", error_class="X")) == "retrying"
    c3 = await services.runner.claim(ids[2])  # the retry's freed slot went to the waiter
    assert c3 is not None
    advance(clock, 3600)
    assert await services.runner.claim(ids[0]) is None  # the retry is due but both slots held
    await finish(services, c3)
    assert await services.runner.claim(ids[0]) is not None


async def test_a_crashed_holders_slot_is_freed_with_its_lease_by_the_sweeper(
    services: Services,
) -> None:
    clock, recorder = recording(services, TimedRecorder())
    tasks = [await create(services, "limited", customer="acme") for _ in range(3)]
    ids = [await step_id(services, t, "sync") for t in tasks]
    assert await services.runner.claim(ids[0]) is not None
    assert await services.runner.claim(ids[1]) is not None
    assert await services.runner.claim(ids[2]) is None
    advance(clock, 7200)  # the leases expire: their worker is gone
    recorder.sent.clear()
    report = await services.sweeper.sweep()
    assert report.reaped == 2
    assert ids[2] in [i for i, _ in recorder.sent]
    assert await services.runner.claim(ids[2]) is not None


async def test_the_hand_off_goes_to_the_highest_priority_then_the_oldest(
    services: Services,
) -> None:
    _, recorder = recording(services, TimedRecorder())
    holders = [await create(services, "limited", customer="acme") for _ in range(2)]
    low = await create(services, "limited", customer="acme", priority=1)
    mid = await create(services, "limited", customer="acme")
    high = await create(services, "limited", customer="acme", priority=3)
    claims = [await services.runner.claim(await step_id(services, t, "sync")) for t in holders]
    for t in (low, mid, high):
        assert await services.runner.claim(await step_id(services, t, "sync")) is None
    order = []
    for claim in claims:
        recorder.sent.clear()
        await finish(services, claim)
        (offered,) = [i for i, _ in recorder.sent]
        order.append(offered)
        assert await services.runner.claim(offered) is not None
    assert order == [await step_id(services, high, "sync"), await step_id(services, mid, "sync")]


async def test_rate_limit_refuses_past_the_window_and_wakes_once_when_it_opens(
    services: Services,
) -> None:
    clock, recorder = recording(services, TimedRecorder())
    tasks = [await create(services, "rated", tenant="t1") for _ in range(4)]
    ids = [await step_id(services, t, "call") for t in tasks]
    for i in ids[:3]:
        claim = await services.runner.claim(i)
        assert claim is not None
        await finish(services, claim)
        advance(clock, 1)
    recorder.sent.clear()
    refused = REGISTRY.get_sample_value("tasker_rate_limited_total", {"limit": "flow/rated/call"})
    assert await services.runner.claim(ids[3]) is None  # 3 starts in the last 10 s
    after = REGISTRY.get_sample_value("tasker_rate_limited_total", {"limit": "flow/rated/call"})
    assert (after or 0) - (refused or 0) == 1
    # One delayed message, for when the first start leaves the window (10 s after it).
    # (7 s of virtual time, less the real time the claims took: the clock runs on; plus at
    # most a bucket's width, a hundredth of the period, `rate_window`.)
    ((sent, delay),) = recorder.sent
    assert sent == ids[3] and 5.5 < delay <= 7.1
    reason = (await services.tasks.dependencies(tasks[3].id)).reasons["call"]
    assert reason.code == "rate_limited" and reason.until is not None
    (usage,) = await limit_usage([services.registry.get("flow", "rated")], now=clock.now())
    assert (usage.kind, usage.key, usage.in_use) == ("rate", "t1", 3)  # the window's starts
    advance(clock, 6)
    assert await services.runner.claim(ids[3]) is None
    advance(clock, 1.5)
    assert await services.runner.claim(ids[3]) is not None
    other = await create(services, "rated", tenant="t2")  # another tenant's budget is its own
    assert await services.runner.claim(await step_id(services, other, "call")) is not None


async def test_handler_concurrency_queues_whole_tasks_per_key(services: Services) -> None:
    _, recorder = recording(services, TimedRecorder())
    first = await create(services, "serial", customer="acme")
    second = await create(services, "serial", customer="acme")
    assert first.priority == 3  # the handler's default
    c1 = await services.runner.claim(await step_id(services, first, "first"))
    assert c1 is not None
    second_root = await step_id(services, second, "first")
    assert await services.runner.claim(second_root) is None
    reason = (await services.tasks.dependencies(second.id)).reasons["first"]
    assert reason.code == "concurrency_limited" and reason.holders == (str(first.id),)
    recorder.sent.clear()
    await finish(services, c1)  # the task goes on: its next step needs no new slot
    c2 = await services.runner.claim(await step_id(services, first, "second"))
    assert c2 is not None
    assert second_root not in [i for i, _ in recorder.sent]
    await finish(services, c2)
    assert (await services.tasks.get_task(first.id)).status is TaskState.COMPLETE
    assert second_root in [i for i, _ in recorder.sent]  # the finished task handed off
    assert await services.runner.claim(second_root) is not None


async def test_a_priority_outside_1_to_3_and_an_absent_key_are_refused(
    services: Services,
) -> None:
    with pytest.raises(ValidationFailed) as bad:
        await create(services, "limited", customer="acme", priority=4)
    assert "priority" in (bad.value.details or {})
    with pytest.raises(ValidationFailed) as absent:
        await create(services, "limited", tenant="x")
    assert "context.customer" in str(absent.value.details)


async def test_steps_without_limits_take_no_slot(services: Services) -> None:
    recording(services, TimedRecorder())
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    claim = await services.runner.claim(await step_id(services, task, "a"))
    assert claim is not None and not claim.limited
    assert await LimitSlot.all().count() == 0


async def history(services: Services, task: TaskView) -> list[tuple[str | None, str, str | None]]:
    rows = await Transition.filter(task_id=task.id, step_id=None).order_by("id")
    return [(r.from_status, r.to_status, r.reason) for r in rows]


async def test_cancel_in_progress_supersedes_the_running_task_of_the_key(
    services: Services,
) -> None:
    recording(services, TimedRecorder())
    old = await create(services, "latest", customer="acme")
    other = await create(services, "latest", customer="globex")
    claim = await services.runner.claim(await step_id(services, old, "sync"))
    assert claim is not None
    new = await create(services, "latest", customer="acme")
    assert new.status is TaskState.PENDING
    assert (await services.tasks.get_task(old.id)).status is TaskState.CANCELLED
    assert (await services.tasks.get_task(other.id)).status is TaskState.PENDING
    last = (await history(services, old))[-1]
    assert last == ("in_progress", "cancelled", "superseded")
    meta = (await Transition.filter(task_id=old.id, step_id=None).order_by("-id").first()).metadata
    assert meta == {"superseded_by": str(new.id)}
    # The old attempt's late result is discarded, and the new task runs at once.
    assert await services.runner.record(claim, Outcome(results={})) == "discarded"
    assert await services.runner.claim(await step_id(services, new, "sync")) is not None


async def test_cancel_newest_cancels_the_new_task_at_once(services: Services) -> None:
    recording(services, TimedRecorder())
    old = await create(services, "first", customer="acme")
    new = await create(services, "first", customer="acme")
    assert new.status is TaskState.CANCELLED  # the creation answer says so
    assert (await history(services, new))[-1] == ("pending", "cancelled", "superseded")
    assert (await services.tasks.get_task(old.id)).status is TaskState.PENDING
    assert (await services.steps.get_step(new.id, "load")).status is StepState.CANCELLED
    elsewhere = await create(services, "first", customer="globex")
    assert elsewhere.status is TaskState.PENDING
