"""Analytics at scale: uncached performance and bottleneck reports against a seeded database.

Seed first (1,000,000 tasks with 4 steps each, spread over 30 days, or `--days 1` for all of
them inside the last day), then time each report uncached several times, next to baselines
measured in the same run: one round trip, and a plain full count of the steps table (what any
query that is not bounded by an index costs). The hourly rollups of the last 30 days are
written first and timed on their own (a one-off per database; the sweeper then keeps them
current), so the reports' figures are their steady-state cost.

    python -m bench.seed --database-url postgres://postgres@127.0.0.1:5432/tasker_bench \\
        --create-db --reset --tasks 1000000 --days 30
    python -m bench.analytics_bench --database-url postgres://postgres@127.0.0.1:5432/tasker_bench

Exits 1 when an uncached report's median exceeds --budget-ms (default 1000).
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from server.db import analytics_rollup as rollup
from server.db.setup import close_database, open_database
from server.db.sql import connection
from server.domain.analytics_rollup import split
from server.infra.cache import CacheEntry, MemoryCache
from server.infra.ports import SystemClock
from server.services.analytics import AnalyticsService


class NoCache:
    """Every read misses, so each call computes the report from the database."""

    async def get(self, key: str) -> CacheEntry | None:
        return None

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> CacheEntry:
        return CacheEntry(value, datetime.now(UTC))

    async def close(self) -> None:
        return None


async def timed(call: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        began = time.perf_counter()
        await call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def line(label: str, ms: list[float], budget: float | None = None) -> bool:
    median = statistics.median(ms)
    ok = budget is None or median <= budget
    verdict = "" if budget is None else ("  ok" if ok else f"  OVER {budget:.0f} ms")
    print(
        f"  {label:<44} median {median:8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}{verdict}"
    )
    return ok


async def main(url: str, rounds: int, budget: float) -> int:
    await open_database(url)
    try:
        conn = connection()
        tasks = (await conn.execute_query_dict("SELECT COUNT(*) AS n FROM tasker_tasks"))[0]["n"]
        steps = (await conn.execute_query_dict("SELECT COUNT(*) AS n FROM tasker_workflow_steps"))[
            0
        ]["n"]
        print(f"{url.rsplit('@', 1)[-1]}: {tasks} tasks, {steps} steps; {rounds} rounds each")
        clock = SystemClock()
        cold = AnalyticsService(NoCache(), clock, default_timeout=300.0)
        warm = AnalyticsService(MemoryCache(clock), clock, default_timeout=300.0)
        print("baselines")
        line("SELECT 1 (round trip)", await timed(lambda: conn.execute_query("SELECT 1"), rounds))
        line(
            "COUNT(*) of every step (full scan)",
            await timed(
                lambda: conn.execute_query("SELECT COUNT(*) FROM tasker_workflow_steps"), rounds
            ),
        )
        now = clock.now()
        began = time.perf_counter()
        hours = await rollup.roll(split(now - timedelta(hours=721), now), now)
        took = (time.perf_counter() - began) * 1000
        # Once per database (then per hour, by the sweeper); 0 hours when already rolled up.
        print(f"  {'roll up the last 30 days (' + str(hours) + ' slots, once)':<44} {took:8.1f} ms")
        print("uncached reports")
        ok = line("performance", await timed(cold.performance, rounds), budget)
        for label, kwargs in (
            ("bottlenecks (all, 24 h)", {}),
            ("bottlenecks (namespace=payments, 24 h)", {"namespace": "payments"}),
            (
                "bottlenecks (inventory/process_order, 24 h)",
                {"namespace": "inventory", "name": "process_order"},
            ),
            ("bottlenecks (all, 1 h)", {"period_hours": 1}),
        ):
            ok &= line(label, await timed(lambda k=kwargs: cold.bottlenecks(**k), rounds), budget)
        print("larger windows (beyond the 1 s goal, for reference)")
        for hours in (168, 720):
            line(
                f"bottlenecks (all, {hours} h)",
                await timed(lambda h=hours: cold.bottlenecks(period_hours=h), 2),
            )
        print("cached")
        await warm.performance()
        line("performance (from the in-process cache)", await timed(warm.performance, rounds))
        report = (await cold.bottlenecks()).report
        print(f"recommendations: {report.to_cache()['recommendations']}")
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        await close_database()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget-ms", type=float, default=1000.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.database_url, args.rounds, args.budget_ms)))
