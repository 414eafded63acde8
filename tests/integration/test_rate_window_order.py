"""A rate limit holds in every window of the history, even when claims are admitted out of the
order of their times.

A claim reads its time, then may wait for the key's lock; another claim with a later time can be
admitted first. That one's clean-up of old starts (by its later time) used to delete starts
still inside the waiting claim's window, which then admitted one start too many: 11 starts in a
one-second window under a limit of 10 with three real workers (`bench/flow_proof.py`). Here the
waiting claim is played by moving the clock back.
"""

from collections.abc import Iterator
from datetime import timedelta

import pytest

from server.container import Services
from server.db.models import LimitKey, Transition
from server.domain.views import CreateTask
from server.engine.store import Outcome
from server.registry.handler_registry import HandlerRegistry
from server.testing import VirtualClock
from tests.conftest import ROOT, WORKFLOWS, on_every_store
from tests.support.recorder import Recorder

pytestmark = on_every_store
FLOW = ROOT / "tests" / "fixtures" / "flow"


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    yield HandlerRegistry.load([WORKFLOWS, FLOW], examples=False)


@pytest.fixture
def clock(services: Services) -> VirtualClock:
    """A clock the test moves, installed on the engine, with dispatches recorded, not sent."""
    moved = VirtualClock()
    services.changes.clock = moved
    services.set_dispatcher(Recorder())
    return moved


async def _call_step(services: Services) -> int:
    task, _ = await services.tasks.create_task(
        CreateTask(namespace="flow", name="rated", context={"tenant": "t1"})
    )
    return (await services.steps.get_step(task.id, "call")).id


async def test_a_claim_with_an_earlier_time_counts_the_starts_a_later_one_kept(
    services: Services, clock: VirtualClock
) -> None:
    ids = [await _call_step(services) for _ in range(5)]  # at most 3 starts in any 10 s

    started = clock.now()
    for i, at in zip(ids[:4], (0.0, 4.0, 8.0, 14.5), strict=True):
        clock.advance_to(started + timedelta(seconds=at))
        claim = await services.runner.claim(i)
        assert claim is not None, at
        assert await services.runner.record(claim, Outcome(results={})) == "complete"

    # A claim that read its time at +9 s and got the key's lock only now: its window
    # (-1 s, +9 s] already holds the starts at 0, 4 and 8 s.
    clock.offset -= timedelta(seconds=5.5)
    assert await services.runner.claim(ids[4]) is None

    starts = sorted(
        row.created_at for row in await Transition.filter(step_id__in=ids, to_status="in_progress")
    )
    for first in starts:  # every 10 s window of the history, from each start
        inside = [s for s in starts if first <= s < first + timedelta(seconds=10)]
        assert len(inside) <= 3, starts


async def test_a_key_keeps_only_its_newest_limit_starts(
    services: Services, clock: VirtualClock
) -> None:
    started = clock.now()
    offsets = (0.0, 4.0, 8.0, 14.5, 19.0, 25.0, 31.0)  # never more than 3 in 10 s
    ids = []
    for at in offsets:
        clock.advance_to(started + timedelta(seconds=at))
        ids.append(await _call_step(services))
        claim = await services.runner.claim(ids[-1])
        assert claim is not None, at
        assert await services.runner.record(claim, Outcome(results={})) == "complete"
    (row,) = await LimitKey.filter(key="t1")
    # A minute of starts used to be kept (all seven); a limit of 3 needs the newest 3, each
    # in its bucket (its time rounded up to a hundredth of the 10 s period). The starts that
    # left the window are one bucket, at the latest of their times: the one at 19 s, with the
    # four before it (counted up to the limit, for a claim whose time lags that far).
    # Each start's own time, from the history: the virtual clock runs on with the real one, so
    # a claim starts a little after its offset (creating its task takes a while).
    starts = sorted(
        moved.created_at.timestamp()
        for moved in await Transition.filter(step_id__in=ids, to_status="in_progress")
    )
    kept = [(float(at), n) for at, n in row.starts]
    assert [n for _, n in kept] == [3, 1, 1]
    for (at, _), start in zip(kept, starts[4:], strict=True):
        assert start <= at < start + 0.1 + 1e-6, (kept, starts)
    # They still decide: at +32 s the window (22, 32] holds two, at +33.5 the one at 25 is
    # still in it with 31 and a start at +32.
    clock.advance_to(started + timedelta(seconds=32))
    late = await services.runner.claim(await _call_step(services))
    assert late is not None
    clock.advance_to(started + timedelta(seconds=33.5))
    assert await services.runner.claim(await _call_step(services)) is None


async def test_starts_kept_as_bare_times_by_an_earlier_version_still_count(
    services: Services, clock: VirtualClock
) -> None:
    first = await _call_step(services)
    claim = await services.runner.claim(first)  # makes the key's row
    assert claim is not None
    await services.runner.record(claim, Outcome(results={}))
    now = clock.now().timestamp()
    # As the previous version kept them: one number a start (three in the last 10 s).
    await LimitKey.filter(key="t1").update(starts=[now - 30.0, now - 6.0, now - 5.0, now - 4.0])
    assert await services.runner.claim(await _call_step(services)) is None
    clock.advance_to(clock.now() + timedelta(seconds=4.5))  # the start at -6 s has left
    admitted = await services.runner.claim(await _call_step(services))
    assert admitted is not None
    (row,) = await LimitKey.filter(key="t1")
    assert all(isinstance(entry, list) for entry in row.starts), row.starts
    assert sum(n for at, n in row.starts if float(at) > clock.now().timestamp() - 10) == 3
