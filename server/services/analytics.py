"""Analytics use cases: the performance report and the bottleneck analysis, cached.

Both reports are computed from the database (SQL aggregates; see `server.db.analytics`) and
cached as JSON: 90 s for performance, 120 s per bottleneck scope. Every answer says when its
figures were computed, so callers can show how old they are. Concurrent misses for one key in
this process wait for a single computation instead of each hitting the database.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from server.db import analytics as db
from server.db import analytics_rollup as rollup
from server.db import health as state
from server.db.analytics_steps import step_figures
from server.db.rolled_blocks import RolledBlockCache
from server.db.sql import reading
from server.domain.analytics import (
    MAX_PERIOD_HOURS,
    TREND_WINDOWS,
    BottleneckReport,
    BottleneckScope,
    HealthInputs,
    PerformanceReport,
    health_score,
    period_label,
)
from server.domain.analytics_advice import recommend
from server.domain.analytics_rollup import Split, split
from server.domain.errors import ValidationFailed
from server.infra.cache import Cache
from server.infra.ports import Clock

R = TypeVar("R")

PERFORMANCE_TTL = 90.0
BOTTLENECKS_TTL = 120.0
TOP = 10
"""How many tasks and steps the bottleneck lists keep (slowest first)."""


@dataclass(frozen=True, slots=True)
class Timed(Generic[R]):
    """A report with its provenance: when it was computed and whether it came from cache."""

    report: R
    generated_at: datetime
    age_seconds: float
    max_age_seconds: float
    cached: bool


class AnalyticsService:
    """Computes and caches the two reports."""

    def __init__(
        self,
        cache: Cache,
        clock: Clock,
        *,
        default_timeout: float,
        stuck_after: float = 300.0,
        performance_ttl: float = PERFORMANCE_TTL,
        bottlenecks_ttl: float = BOTTLENECKS_TTL,
        rollups: bool = True,
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.default_timeout = default_timeout
        self.stuck_after = timedelta(seconds=stuck_after)
        self.performance_ttl = performance_ttl
        self.bottlenecks_ttl = bottlenecks_ttl
        self.rollups = rollups
        """False: every figure from the tasks and steps tables (for comparison and tests)."""
        self._inflight: dict[str, asyncio.Lock] = {}
        self.rolled = RolledBlockCache()
        """What this process has read of the rolled blocks (they never change)."""

    async def close(self) -> None:
        """Release the cache's connections."""
        await self.cache.close()

    async def performance(self) -> Timed[PerformanceReport]:
        """System health score, 1/4/24 h trends, 24 h statistics and processing times."""
        timed = await self._cached("performance", self.performance_ttl, self._performance)
        return Timed(
            PerformanceReport.from_cache(timed.report),
            timed.generated_at,
            timed.age_seconds,
            timed.max_age_seconds,
            timed.cached,
        )

    async def bottlenecks(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        version: str | None = None,
        period_hours: int = 24,
    ) -> Timed[BottleneckReport]:
        """Slowest handlers and steps, error patterns and advice for one scope and period."""
        if isinstance(period_hours, bool) or not 1 <= period_hours <= MAX_PERIOD_HOURS:
            raise ValidationFailed(
                "Invalid analysis period",
                {"period": [f"must be a positive integer no greater than {MAX_PERIOD_HOURS}"]},
            )
        scope = BottleneckScope(namespace, name, version, period_hours)
        key = "bottlenecks:" + "|".join(
            str(v) for v in (namespace or "", name or "", version or "", period_hours)
        )

        async def compute() -> dict[str, Any]:
            return (await self._bottlenecks(scope)).to_cache()

        timed = await self._cached(key, self.bottlenecks_ttl, compute)
        return Timed(
            BottleneckReport.from_cache(timed.report),
            timed.generated_at,
            timed.age_seconds,
            timed.max_age_seconds,
            timed.cached,
        )

    async def _cached(
        self, key: str, ttl: float, compute: Callable[[], Awaitable[dict[str, Any]]]
    ) -> Timed[dict[str, Any]]:
        entry = await self.cache.get(key)
        if entry is None:
            lock = self._inflight.setdefault(key, asyncio.Lock())
            async with lock:
                entry = await self.cache.get(key)
                if entry is None:
                    entry = await self.cache.set(key, await compute(), ttl)
                    return Timed(entry.value, entry.stored_at, 0.0, ttl, False)
        age = max(0.0, (self.clock.now() - entry.stored_at).total_seconds())
        return Timed(entry.value, entry.stored_at, age, ttl, True)

    async def _split(self, hours: int) -> Split:
        """The window of the last `hours`, its settled slots rolled up first (outside the
        report's read snapshot, which must see them)."""
        now = self.clock.now()
        window = split(now - timedelta(hours=hours), now, rollups=self.rollups)
        if window.rolled:
            await rollup.roll(window, now)
        return window

    async def _performance(self) -> dict[str, Any]:
        now = self.clock.now()
        windows = {label: await self._split(hours) for label, hours in TREND_WINDOWS}
        day = windows["24h"]
        async with reading() as conn:
            trends, finished, times = await db.finished_tasks(conn, self.rolled, windows)
            stats = await db.task_statistics(conn, self.rolled, day)
            exhausted = await db.exhausted_steps(conn, day.since)
            backlog = await state.backlog(now, now - self.stuck_after, conn)
        completed, failed = finished["24h"]
        inputs = HealthInputs(
            completed=completed,
            failed=failed,
            total=stats.total_tasks,
            retried=stats.retried,
            exhausted=exhausted,
            stuck=backlog.stuck,
            active=backlog.active_steps,
        )
        return PerformanceReport(
            system_health_score=health_score(inputs),
            performance_trends=trends,
            task_statistics=stats,
            processing_times=times,
        ).to_cache()

    async def _bottlenecks(self, scope: BottleneckScope) -> BottleneckReport:
        window = await self._split(scope.period_hours)
        async with reading() as conn:
            tasks = await db.slowest_tasks(conn, self.rolled, scope, window)
            steps, errors = await step_figures(
                conn, self.rolled, scope, window, self.default_timeout
            )
        tasks.sort(key=lambda t: (-(t.avg_duration_ms or 0), t.task_name))
        steps.sort(key=lambda s: (-s.avg_duration_ms, s.task_name, s.step_name))
        return BottleneckReport(
            analysis_period=period_label(scope.period_hours),
            scope=scope.given(),
            slowest_tasks=tasks[:TOP],
            slowest_steps=[s.as_slow_step() for s in steps[:TOP]],
            error_patterns=errors,
            recommendations=recommend(steps),
        )
