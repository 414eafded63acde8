"""Rollups by slot (both dialects): the reports give the figures of a fully live computation,
closed slots are rolled up once, the open slot and late changes are read live."""

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.db import analytics as analytics_db
from server.db import analytics_rollup as rollup
from server.db.analytics_rollup import roll_recent
from server.db.models import AnalyticsSlot, StepSlot, Task, TaskSlot, WorkflowStep
from server.domain.analytics import nearest_rank
from server.domain.analytics_rollup import FIVE_MINUTES, HOUR, Histogram, bucket, slot_number, split
from server.infra.cache import MemoryCache
from server.services.analytics import AnalyticsService
from tests.conftest import BACKEND
from tests.support.plans import index_condition_on, plan_lines
from tests.support.seed import History, Run

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
H, M = timedelta(hours=1), timedelta(minutes=1)
HANDLERS = [("shop", "checkout", "1.0.0"), ("shop", "refund", "1.0.0"), ("mail", "send", "2.0")]
ERRORS = ["NetworkTimeoutError", "StepTimeout", "SMTPError"]


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def service(now: datetime, *, rollups: bool = True) -> AnalyticsService:
    clock = FixedClock(now)
    return AnalyticsService(MemoryCache(clock), clock, default_timeout=3.0, rollups=rollups)


async def reports(now: datetime, rollups: bool, **scope: Any) -> list[dict[str, Any]]:
    analytics = service(now, rollups=rollups)
    out = [(await analytics.performance()).report.to_cache()]
    for hours in (1, 4, 24, 48):
        out.append((await analytics.bottlenecks(period_hours=hours, **scope)).report.to_cache())
    return out


async def random_history(seed: int, tasks: int = 160) -> None:
    """Tasks over the last 40 hours: every outcome the reports distinguish."""
    rng = random.Random(seed)
    h = History(NOW)
    for _ in range(tasks):
        ago = timedelta(seconds=rng.randrange(60, 40 * 3600))
        runs, status = [], "complete"
        for name in ("a", "b", "c"):
            ms = int(rng.lognormvariate(7, 0.8))
            roll = rng.random()
            if roll < 0.08:
                error = rng.choice(ERRORS)
                runs.append(
                    Run(name, ms, "error", attempts=3, error=error, timeout=rng.choice([None, 2.0]))
                )
                status = "error"
                break
            if roll < 0.14:  # failed, retry scheduled: rollups leave these to the live query
                due = NOW + rng.randrange(1, 90) * M
                runs.append(Run(name, ms, "error", attempts=2, error="Busy", next_attempt_at=due))
                status = "in_progress"
                break
            attempts = 1 if roll < 0.8 else rng.choice([2, 3])
            error = rng.choice(ERRORS) if attempts > 1 else None
            runs.append(
                Run(name, ms, attempts=attempts, error=error, timeout=rng.choice([None, 2.0, 9.0]))
            )
        await h.task(rng.choice(HANDLERS), ago, runs, status)
    await h.save()


@pytest.mark.parametrize("seed", [1, 2])
async def test_rolled_up_figures_equal_live_ones(services, seed):
    await random_history(seed)
    for now in (NOW, NOW + 37 * M, NOW + 61 * M + 30 * timedelta(seconds=1)):
        rolled = await reports(now, rollups=True)
        assert rolled == await reports(now, rollups=False)
        if seed == 2:  # whose history has steps near their timeouts: p95s are compared too
            assert "95th percentile" in str([r["recommendations"] for r in rolled[1:]])
        shop = {"namespace": "shop"}
        assert await reports(now, True, **shop) == await reports(now, False, **shop)
    assert await AnalyticsSlot.filter(span=HOUR).count() > 24


async def warm_reports(analytics: AnalyticsService, **scope: Any) -> list[dict[str, Any]]:
    """`reports` from one long-lived service, its report cache emptied first."""
    analytics.cache = MemoryCache(analytics.clock)
    out = [(await analytics.performance()).report.to_cache()]
    for hours in (1, 4, 24, 48):
        out.append((await analytics.bottlenecks(period_hours=hours, **scope)).report.to_cache())
    return out


async def test_remembered_blocks_answer_as_live_reads(services):
    """One service over time and across scopes, reusing what it read of the rolled blocks,
    answers as a fully live computation each time; and it does not read them again."""
    await random_history(2)
    clock = FixedClock(NOW)
    warm = AnalyticsService(MemoryCache(clock), clock, default_timeout=3.0)
    scopes: list[dict[str, str]] = [{}, {"namespace": "shop"}, {"name": "send", "version": "2.0"}]
    for now in (NOW, NOW + 37 * M, NOW + 61 * M + 30 * timedelta(seconds=1)):
        clock.at = now
        for scope in scopes:
            assert await warm_reports(warm, **scope) == await reports(now, False, **scope)
    # Behind its back the rollup rows go (the slots stay claimed, so nothing is redone): the
    # warm service still answers from what it read, a fresh one cannot.
    before = await warm_reports(warm)
    await StepSlot.all().delete()
    await TaskSlot.all().delete()
    assert await warm_reports(warm) == before
    assert await reports(clock.at, True) != before


async def test_closed_hours_are_rolled_up_once(services):
    await random_history(3)
    before = await reports(NOW, rollups=True)
    rolled = await AnalyticsSlot.all().count()
    window = split(NOW - 48 * H, NOW)
    assert rolled == len(list(window.slots()))
    # 47 closed hours, then 11 five-minute slots of the hour still settling (11:58 at noon).
    assert await AnalyticsSlot.filter(span=HOUR).count() == 47
    assert await AnalyticsSlot.filter(span=FIVE_MINUTES).count() == 11
    assert await rollup.roll(window, NOW) == 0
    # A write into a rolled hour behind the reports' back is not seen: the hour is not redone.
    row = await TaskSlot.filter(
        created__gt=0, span=HOUR, slot__gte=slot_number(NOW - 20 * H)
    ).first()
    assert row is not None
    await TaskSlot.filter(id=row.id).update(created=0)
    assert await reports(NOW, rollups=True) != before
    assert await AnalyticsSlot.all().count() == rolled


async def test_the_open_slot_is_live(services):
    await random_history(4)
    first = (await service(NOW + 30 * M).performance()).report
    h = History(NOW + 30 * M)
    # 12:27: after the last five-minute slot that has settled by 12:30 (12:20 to 12:25).
    await h.task(HANDLERS[0], 3 * M, [Run("a", 1000), Run("b", 2000)])
    await h.save()
    second = (await service(NOW + 30 * M).performance()).report
    assert second.performance_trends["1h"] != first.performance_trends["1h"]
    assert second.task_statistics.total_tasks == first.task_statistics.total_tasks + 1
    assert await reports(NOW + 30 * M, True) == await reports(NOW + 30 * M, False)


async def test_a_task_finishing_after_its_hour_was_rolled_up(services):
    h = History(NOW)
    late = await h.task(
        HANDLERS[1], 3 * H, [Run("a", 500), Run("b", 10, "in_progress")], "in_progress"
    )
    await h.task(HANDLERS[1], 3 * H, [Run("a", 700), Run("b", 800)])
    await h.save()
    early = (await service(NOW).performance()).report
    assert (early.task_statistics.total_tasks, early.task_statistics.completed) == (2, 1)
    assert await AnalyticsSlot.filter(span=HOUR, slot=slot_number(NOW - 3 * H)).exists()
    # It finishes 2 h later than it started, in an hour the rollups have not reached.
    done_at = NOW + 20 * M
    await WorkflowStep.filter(task_id=late.id, name="b").update(
        status="complete", completed_at=done_at
    )
    await Task.filter(id=late.id).update(status="complete", completed_at=done_at)
    after = (await service(NOW + 25 * M).performance()).report
    assert (after.task_statistics.total_tasks, after.task_statistics.completed) == (2, 2)
    assert after.performance_trends["1h"].completion_rate == 1.0
    assert after.performance_trends["1h"].avg_duration_ms == (3 * H + 20 * M) // timedelta(
        milliseconds=1
    )
    assert await reports(NOW + 25 * M, True) == await reports(NOW + 25 * M, False)


async def test_the_sweeper_hook_rolls_the_last_day(services):
    await random_history(5, tasks=40)
    assert await roll_recent(FixedClock(NOW)) == len(list(split(NOW - 25 * H, NOW).slots()))
    assert await roll_recent(FixedClock(NOW)) == 0
    assert await StepSlot.all().count() > 0


def test_histogram_percentiles_are_within_one_percent():
    rng = random.Random(7)
    values = sorted(rng.uniform(0.5, 100_000) for _ in range(5000))
    histogram = Histogram()
    for v in values:
        histogram.add(bucket(v), 1, round(v))
    for p in (0.01, 0.5, 0.95, 0.99, 1.0):
        exact = nearest_rank([round(v) for v in values], p)
        assert exact is not None
        got = histogram.percentile(p)
        assert got is not None and abs(got - exact) <= max(1, 0.01 * exact)
    assert Histogram().percentile(0.5) is None


@pytest.mark.skipif(BACKEND != "postgres", reason="reads PostgreSQL's query plan")
async def test_steps_that_failed_for_good_are_counted_from_their_own_index(services: Any) -> None:
    """Migration 6: the bottlenecks report's count of exhausted steps read every failed step
    ever recorded and filtered them by `created_at` (22 ms at a million tasks, and growing)."""
    since = datetime.now(UTC) - timedelta(hours=24)
    lines = await plan_lines(lambda q: analytics_db.exhausted_sql(q, since))
    assert index_condition_on(lines, "created_at"), lines


async def test_old_five_minute_slots_are_forgotten_unless_just_rolled(services):
    await random_history(6, tasks=60)
    now = NOW + 37 * M
    await reports(now, rollups=True)  # rolls the margins of 1, 4, 24 and 48 hours ago too
    assert await AnalyticsSlot.filter(
        span=FIVE_MINUTES, slot__lt=slot_number(now - 47 * H, FIVE_MINUTES)
    ).exists()
    hours = await AnalyticsSlot.filter(span=HOUR).count()
    # A day and a half later the sweeper's roll forgets five-minute slots older than 26 h...
    later = now + 36 * H
    await roll_recent(FixedClock(later))
    cutoff = slot_number(later - rollup.FINE_KEEP, FIVE_MINUTES)
    for model in (AnalyticsSlot, StepSlot, TaskSlot):
        assert not await model.filter(span=FIVE_MINUTES, slot__lt=cutoff).exists()
    assert await AnalyticsSlot.filter(span=HOUR).count() > hours  # hours stay (and grow)
    # ...but not the ones a report of a long period has just rolled and is about to read.
    await service(later).bottlenecks(period_hours=48)
    assert await AnalyticsSlot.filter(span=FIVE_MINUTES, slot__lt=cutoff).exists()
    await roll_recent(FixedClock(later + 5 * M))
    assert await AnalyticsSlot.filter(span=FIVE_MINUTES, slot__lt=cutoff).exists()
    assert await reports(later, True) == await reports(later, False)
