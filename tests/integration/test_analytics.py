"""Analytics against figures worked out by hand from seeded history (both dialects).

The history (`seeded`), with now = NOW; each task's steps run back to back:

  checkout 1.0.0 (shop)   A1 -30m  prepare 200, pay 700                     complete  900 ms
                          A2 -40m  prepare 200, pay 2500 (2 attempts, NTE)  complete 2700 ms
                          A3 -50m  prepare 300, pay 1500 (3 attempts, NTE)  error    1800 ms
                          A4 -30h  prepare 200, pay 9799                    complete (too old)
                          A5 -5m   prepare 100, pay running, lease expired  in_progress
  refund 1.0.0 (shop)     B1 -2h   validate 100, refund 3800                complete 3900 ms
                          B2 -3h   validate 100, refund 5800                complete 5900 ms
  send 2.0.0 (mail)       C1 -10h  render 50, deliver 9900                  complete 9950 ms
                          C2 -20h  render 50, deliver 400 (3 att., SMTP)    error     450 ms
                          C3 -6h   render 50, deliver cancelled             cancelled
"""

import random
from datetime import UTC, datetime, timedelta

import pytest

from server.domain.analytics import nearest_rank
from server.domain.analytics_advice import MIN_SAMPLE
from server.domain.errors import ValidationFailed
from server.infra.cache import MemoryCache
from server.services.analytics import AnalyticsService
from tests.support.seed import History, Run

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CHECKOUT = ("shop", "checkout", "1.0.0")
REFUND = ("shop", "refund", "1.0.0")
SEND = ("mail", "send", "2.0.0")
H, M = timedelta(hours=1), timedelta(minutes=1)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def analytics_at(now: datetime = NOW) -> tuple[AnalyticsService, FixedClock]:
    clock = FixedClock(now)
    return AnalyticsService(MemoryCache(clock), clock, default_timeout=300.0), clock


@pytest.fixture
async def seeded(services):
    h = History(NOW)
    nte, smtp = "NetworkTimeoutError", "SMTPError"
    await h.task(CHECKOUT, 30 * M, [Run("prepare", 200), Run("pay", 700)])
    await h.task(CHECKOUT, 40 * M, [Run("prepare", 200), Run("pay", 2500, attempts=2, error=nte)])
    await h.task(
        CHECKOUT,
        50 * M,
        [Run("prepare", 300), Run("pay", 1500, "error", attempts=3, error=nte)],
        "error",
    )
    await h.task(CHECKOUT, 30 * H, [Run("prepare", 200), Run("pay", 9799)])
    await h.task(
        CHECKOUT,
        5 * M,
        [Run("prepare", 100), Run("pay", 10, "in_progress", lease_expires_at=NOW - 10 * M)],
        "in_progress",
    )
    await h.task(REFUND, 2 * H, [Run("validate", 100), Run("refund", 3800)])
    await h.task(REFUND, 3 * H, [Run("validate", 100), Run("refund", 5800)])
    await h.task(SEND, 10 * H, [Run("render", 50), Run("deliver", 9900)])
    await h.task(
        SEND,
        20 * H,
        [Run("render", 50), Run("deliver", 400, "error", attempts=3, error=smtp)],
        "error",
    )
    await h.task(
        SEND, 6 * H, [Run("render", 50), Run("deliver", None, "cancelled", attempts=0)], "cancelled"
    )
    await h.save()
    return services


async def test_performance_report_matches_the_hand_computed_figures(seeded):
    analytics, _ = analytics_at()
    report = (await analytics.performance()).report.to_cache()
    assert report["performance_trends"] == {
        "1h": {"completion_rate": 0.6667, "avg_duration_ms": 1800},  # A1, A2 done; A3 failed
        "4h": {"completion_rate": 0.8, "avg_duration_ms": 3350},  # + B1, B2
        "24h": {"completion_rate": 0.7143, "avg_duration_ms": 4670},  # + C1; C2 failed
    }
    # Created in 24 h: A1-A3, A5, B1, B2, C1-C3; retried: A2, A3, C2.
    assert report["task_statistics"] == {
        "total_tasks": 9,
        "completed": 5,
        "failed": 2,
        "retried": 3,
    }
    # Completed in 24 h, ascending: 900 2700 3900 5900 9950 -> ranks ceil(p * 5) = 3, 5, 5.
    assert report["processing_times"] == {"p50": 3900, "p95": 9950, "p99": 9950}
    # F = 2/7, R = 3/9, X = 2/9 (A3.pay, C2.deliver), S = 1/2 (A5.pay's lease, of 2 steps).
    expected = 100 * (1 - 0.4 * 2 / 7 - 0.2 * 3 / 9 - 0.2 * 2 / 9 - 0.2 * 1 / 2)
    assert report["system_health_score"] == round(expected, 1) == 67.5


async def test_empty_history_gives_nulls_not_invented_numbers(services):
    report = (await analytics_at()[0].performance()).report.to_cache()
    assert report["system_health_score"] == 100.0
    assert report["performance_trends"]["1h"] == {"completion_rate": None, "avg_duration_ms": None}
    assert report["processing_times"] == {"p50": None, "p95": None, "p99": None}
    assert report["task_statistics"]["total_tasks"] == 0


async def test_bottlenecks_over_the_default_day(seeded):
    report = (await analytics_at()[0].bottlenecks()).report.to_cache()
    assert report["analysis_period"] == "24 hours"
    assert report["scope"] == {}
    assert [
        (t["task_name"], t["avg_duration_ms"], t["execution_count"], t["failure_rate"])
        for t in report["slowest_tasks"]
    ] == [
        ("send", 9950, 2, 0.5),
        ("refund", 4900, 2, 0.0),
        ("checkout", 1800, 3, 0.3333),
    ]
    # Step runs whose last attempt ended in the window (A5's prepare counts; A4's do not).
    assert [
        (s["task_name"], s["step_name"], s["avg_duration_ms"], s["retry_rate"])
        for s in report["slowest_steps"]
    ] == [
        ("send", "deliver", 5150, 0.5),
        ("refund", "refund", 4800, 0.0),
        ("checkout", "pay", 1567, 0.6667),
        ("checkout", "prepare", 200, 0.0),
        ("refund", "validate", 100, 0.0),
        ("send", "render", 50, 0.0),
    ]
    # Failed attempts: A2.pay 1 + A3.pay 3 timeouts, C2.deliver 3.
    assert report["error_patterns"] == [
        {"error_type": "NetworkTimeoutError", "frequency": 4, "affected_steps": ["pay"]},
        {"error_type": "SMTPError", "frequency": 3, "affected_steps": ["deliver"]},
    ]
    assert report["recommendations"] == []  # no step has MIN_SAMPLE runs


async def test_bottlenecks_scoped_by_namespace_name_version_and_period(seeded):
    analytics, _ = analytics_at()
    shop = (await analytics.bottlenecks(namespace="shop")).report
    assert shop.scope == {"namespace": "shop"}
    assert {t.task_name for t in shop.slowest_tasks} == {"checkout", "refund"}
    assert [e.error_type for e in shop.error_patterns] == ["NetworkTimeoutError"]
    refund = (await analytics.bottlenecks(namespace="shop", name="refund")).report
    assert [s.step_name for s in refund.slowest_steps] == ["refund", "validate"]
    v2 = (await analytics.bottlenecks(version="2.0.0")).report
    assert [t.task_name for t in v2.slowest_tasks] == ["send"]
    assert (await analytics.bottlenecks(version="9.9.9")).report.slowest_tasks == []
    hour = (await analytics.bottlenecks(period_hours=1)).report
    assert hour.analysis_period == "1 hour"
    assert [(t.task_name, t.execution_count) for t in hour.slowest_tasks] == [("checkout", 3)]
    assert [(s.step_name, s.avg_duration_ms) for s in hour.slowest_steps] == [
        ("pay", 1567),
        ("prepare", 200),  # A5's prepare (100 ms) is in the last hour too
    ]
    week = (await analytics.bottlenecks(period_hours=48)).report
    checkout = next(t for t in week.slowest_tasks if t.task_name == "checkout")
    assert checkout.execution_count == 4  # A4 is 30 h old


@pytest.mark.parametrize("period", [0, -1, 8761, True])
async def test_bottleneck_period_out_of_range_is_refused(services, period):
    with pytest.raises(ValidationFailed) as caught:
        await analytics_at()[0].bottlenecks(period_hours=period)
    assert "period" in caught.value.details


async def test_recommendations_only_where_the_figures_support_them(services):
    h = History(NOW)
    ops = ("ops", "sync", "1.0.0")
    # fetch: 20 runs of 0.5 s .. 10 s against a 10 s timeout -> p95 = 19th value = 9.5 s.
    for i in range(1, MIN_SAMPLE + 1):
        await h.task(ops, i * M, [Run("fetch", 500 * i, timeout=10)])
    # push: of 20 runs, 10 first-time, 1 at attempt 2, 4 only at the last attempt (3 of 3),
    # 5 exhausted all three attempts.
    outcomes = [(1, "complete")] * 10 + [(2, "complete")] + [(3, "complete")] * 4
    outcomes += [(3, "error")] * 5
    for i, (attempts, status) in enumerate(outcomes):
        await h.task(
            ("ops", "push", "1.0.0"),
            (30 + i) * M,
            [Run("push", 100, status, attempts=attempts, error="Busy" if attempts > 1 else None)],
            "complete" if status == "complete" else "error",
        )
    # slow: 19 runs close to the timeout is one short of MIN_SAMPLE; calm: far from it.
    for i in range(MIN_SAMPLE - 1):
        await h.task(("ops", "slow", "1.0.0"), (60 + i) * M, [Run("slow", 9900, timeout=10)])
    for i in range(MIN_SAMPLE + 5):
        await h.task(("ops", "calm", "1.0.0"), (90 + i) * M, [Run("calm", 1000, timeout=10)])
    await h.save()
    report = (await analytics_at()[0].bottlenecks(namespace="ops")).report.to_cache()
    assert report["recommendations"] == [  # in slowest-first order of their steps
        {
            "type": "timeout_optimization",
            "step": "fetch",
            "task_name": "sync",
            "current_timeout": 10.0,
            "suggested_timeout": 15.0,
            "rationale": "95th percentile execution time is 9.5s against a 10s timeout "
            "over 20 runs of sync",
        },
        {
            "type": "retry_limit",
            "step": "push",
            "task_name": "push",
            "current_retry_limit": 3,
            "suggested_retry_limit": 4,
            "rationale": "4 of 5 retried runs of push succeeded only at the last allowed "
            "attempt (3 of 3) and 5 runs exhausted all 3 attempts",
        },
    ]


@pytest.mark.parametrize("n", [1, 2, 7, 20, 101])
async def test_percentiles_are_nearest_rank_within_one_percent(services, n):
    """Percentiles come from 1 %-wide histograms (`analytics_rollup`): each is the mean of the
    bucket holding the nearest-rank value, so within 1 % of it, on rolled and live data alike."""
    rng = random.Random(n)
    durations = [rng.randrange(1, 50_000) for _ in range(n)]
    h = History(NOW)
    for i, ms in enumerate(durations):
        await h.task(CHECKOUT, (i + 1) * M + timedelta(milliseconds=ms), [Run("pay", ms)])
    await h.save()
    times = (await analytics_at()[0].performance()).report.processing_times
    ordered = sorted(durations)
    for got, p in zip((times.p50, times.p95, times.p99), (0.5, 0.95, 0.99), strict=True):
        exact = nearest_rank(ordered, p)
        assert got is not None and exact is not None
        assert abs(got - exact) <= 0.01 * exact
