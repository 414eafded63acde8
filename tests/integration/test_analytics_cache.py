"""The analytics cache: a repeat within the TTL is served from cache with its age, expiry
recomputes, scopes are cached apart. In memory always; in Redis when TASKER_TEST_REDIS_URL is set.
"""

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest

from server.infra.cache import Cache, MemoryCache, RedisCache
from server.services.analytics import AnalyticsService
from tests.conftest import REDIS_URL
from tests.integration.test_analytics import CHECKOUT, NOW, FixedClock
from tests.support.seed import History, Run


def memory(clock: FixedClock) -> Cache:
    return MemoryCache(clock)


def redis_cache(clock: FixedClock) -> Cache:
    assert REDIS_URL
    return RedisCache(REDIS_URL, clock, prefix=f"tasker:test:{uuid4().hex}:")


CACHES = [
    pytest.param(memory, id="memory"),
    pytest.param(
        redis_cache,
        id="redis",
        marks=[
            pytest.mark.redis,
            pytest.mark.skipif(not REDIS_URL, reason="needs TASKER_TEST_REDIS_URL"),
        ],
    ),
]


async def one_task(ago: timedelta) -> None:
    h = History(NOW)
    await h.task(CHECKOUT, ago, [Run("pay", 100)])
    await h.save()


@pytest.mark.parametrize("make_cache", CACHES)
async def test_performance_is_cached_for_90_seconds_and_says_how_old(services, make_cache):
    clock = FixedClock(NOW)
    cache = make_cache(clock)
    analytics = AnalyticsService(cache, clock, default_timeout=300.0)
    try:
        await one_task(timedelta(minutes=5))
        first = await analytics.performance()
        assert not first.cached and first.age_seconds == 0 and first.generated_at == NOW
        assert first.report.task_statistics.total_tasks == 1

        # New history (in the minutes still read live), but the cached figures stand.
        await one_task(timedelta(minutes=1))
        clock.at = NOW + timedelta(seconds=60)
        second = await analytics.performance()
        assert second.cached and second.age_seconds == 60 and second.generated_at == NOW
        assert second.report == first.report

        clock.at = NOW + timedelta(seconds=91)
        third = await analytics.performance()
        assert not third.cached and third.generated_at == clock.at
        assert third.report.task_statistics.total_tasks == 2
    finally:
        await cache.close()


@pytest.mark.parametrize("make_cache", CACHES)
async def test_bottlenecks_are_cached_per_scope_for_two_minutes(services, make_cache):
    clock = FixedClock(NOW)
    cache = make_cache(clock)
    analytics = AnalyticsService(cache, clock, default_timeout=300.0)
    try:
        await one_task(timedelta(minutes=5))
        assert not (await analytics.bottlenecks(namespace="shop")).cached
        assert not (await analytics.bottlenecks(namespace="mail")).cached  # another scope
        assert not (await analytics.bottlenecks(namespace="shop", period_hours=2)).cached
        clock.at = NOW + timedelta(seconds=119)
        hit = await analytics.bottlenecks(namespace="shop")
        assert hit.cached and hit.age_seconds == 119 and hit.max_age_seconds == 120
        clock.at = NOW + timedelta(seconds=120)
        assert not (await analytics.bottlenecks(namespace="shop")).cached
    finally:
        await cache.close()


async def test_concurrent_misses_compute_once(services, monkeypatch):
    clock = FixedClock(NOW)
    analytics = AnalyticsService(MemoryCache(clock), clock, default_timeout=300.0)
    calls = 0
    original = analytics._performance

    async def counted():  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return await original()

    monkeypatch.setattr(analytics, "_performance", counted)
    results = await asyncio.gather(*(analytics.performance() for _ in range(5)))
    assert calls == 1
    assert sum(not r.cached for r in results) == 1


async def test_an_unreachable_redis_cache_is_a_miss_not_an_error(services):
    from tests.support.cluster import free_port

    clock = FixedClock(NOW)
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", clock, timeout=0.2)
    analytics = AnalyticsService(cache, clock, default_timeout=300.0)
    try:
        assert not (await analytics.performance()).cached
        assert not (await analytics.performance()).cached
    finally:
        await cache.close()
