"""The schedule firer's background loop sleeps until the next due tick instead of polling, is
woken by a schedule changed in its own process, and a pass with nothing due is one query.

These run on the real clock: the point is when the firer wakes, measured against the ticks.
"""

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from server.container import Services
from server.db.models import Task
from server.services.schedules import FireReport
from tests.support.statements import Statements
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime

LONG_CAP = 30.0
"""A cap far beyond every wait here: a firer that does not sleep until the tick, or is not
woken by a change, fires seconds late and fails the test."""
ON_TIME = 0.75
"""How late after its tick a task may be created (a loaded test machine included)."""


class Passes:
    """Counts the firer's passes: wraps the real `fire_due`, which still does the work."""

    def __init__(self, services: Services) -> None:
        self.reports: list[tuple[float, FireReport]] = []
        real = services.schedules.fire_due

        async def counted() -> FireReport:
            report = await real()
            self.reports.append((time.monotonic(), report))
            return report

        services.schedules.fire_due = counted  # type: ignore[method-assign]

    async def first(self) -> None:
        while not self.reports:
            await asyncio.sleep(0.01)


def one_shot(services: Services, ahead: float) -> tuple[dict[str, str], datetime]:
    """A schedule whose only tick today is the whole second at least `ahead` s from now."""
    now = services.changes.clock.now()
    tick = datetime.fromtimestamp(math.ceil((now + timedelta(seconds=ahead)).timestamp()), UTC)
    cron = f"{tick.minute} {tick.hour} * * * {tick.second}"
    values = {"name": "once", "namespace": "shapes", "handler": "linear", "cron": cron}
    return values, tick


async def fired_at(services: Services, within: float) -> datetime:
    """The creation time of the first task the schedules fired, waiting up to `within` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        task = await Task.filter(schedule_id__not_isnull=True).first()
        if task is not None:
            return task.created_at
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing fired within {within} s")


async def test_the_firer_sleeps_until_the_tick_and_fires_it_on_time(services: Services) -> None:
    values, tick = one_shot(services, ahead=1.0)
    await services.schedules.create(values)
    async with firing(services) as passes:
        created = await fired_at(services, within=5)
        assert timedelta(0) <= created - tick < timedelta(seconds=ON_TIME)
        await asyncio.sleep(0.5)  # that pass ends; the firer sleeps: the next tick is a day away
        # One look at start (and one more: the creation above rang before it slept), then
        # the one at the tick; none in between, where a poller would have looked every 0.5 s.
        assert [r.fired for _, r in passes.reports][-1:] == [1]
        assert len(passes.reports) <= 3


async def test_a_schedule_created_while_the_firer_sleeps_wakes_it(services: Services) -> None:
    async with firing(services) as passes:
        await passes.first()
        await asyncio.sleep(0.2)  # asleep now, for LONG_CAP: no schedule to wait for
        values, tick = one_shot(services, ahead=1.0)
        await services.schedules.create(values)
        created = await fired_at(services, within=5)
        assert timedelta(0) <= created - tick < timedelta(seconds=ON_TIME)


async def test_a_resume_and_an_edit_wake_the_firer_too(services: Services) -> None:
    values, _ = one_shot(services, ahead=3600)
    view = await services.schedules.create(dict(values, paused=True))
    async with firing(services) as passes:
        await passes.first()
        await asyncio.sleep(0.2)
        looked = len(passes.reports)
        await services.schedules.set_paused(view.id, False)
        await _more_passes(passes, than=looked)
        resumed = await services.schedules.get(view.id)
        assert passes.reports[-1][1].next_due == resumed.next_fire_at
        looked = len(passes.reports)
        values, tick = one_shot(services, ahead=1.0)
        await services.schedules.update(view.id, {"cron": values["cron"]})
        created = await fired_at(services, within=5)
        assert timedelta(0) <= created - tick < timedelta(seconds=ON_TIME)
        assert len(passes.reports) > looked


async def test_a_pass_with_nothing_due_is_one_query_and_says_what_comes_next(
    services: Services, statements: Statements
) -> None:
    values, tick = one_shot(services, ahead=3600)
    await services.schedules.create(values)
    statements.seen.clear()
    report = await services.schedules.fire_due()
    assert (report.fired, report.next_due) == (0, tick)
    assert len([s for s in statements.seen if "tasker_schedules" in s]) == 1
    # The firer sleeps until just past that tick, never longer than its cap.
    assert services.schedules.seconds_until(report.next_due, 5.0) == 5.0
    assert 3599 < services.schedules.seconds_until(report.next_due, 7200.0) <= 3601
    assert services.schedules.seconds_until(None, 5.0) == 5.0


async def _more_passes(passes: Passes, than: int) -> None:
    deadline = time.monotonic() + 2
    while len(passes.reports) <= than:
        assert time.monotonic() < deadline, "the firer was not woken"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def firing(services: Services) -> AsyncIterator[Passes]:
    """Runs this process's firer alone (as in an API-only `tasker serve`), capped at
    LONG_CAP, for the length of the `with` block."""
    services.settings.schedule_interval = LONG_CAP
    passes = Passes(services)
    pool = WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=1)
    pool.start_background(firing_only=True)
    try:
        yield passes
    finally:
        started = time.monotonic()
        await pool.stop_background()
        assert time.monotonic() - started < 2  # stopping wakes the sleeping firer
