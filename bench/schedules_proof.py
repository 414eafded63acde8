"""Cron schedules on the production topology: every tick fired exactly once while processes die.

Starts the cluster (bench.cluster: 2 servers, 2 workers, Redis, PostgreSQL), creates an
every-second schedule (`* * * * * *`, catch_up all) through server 0's REST API, lets it run
for `--seconds`, kill -9s worker 0 a third of the way in and server 0 half way (both fire
schedules: each sleeps until the next tick, at most TASKER_SCHEDULE_INTERVAL), pauses it through
server 1, and then checks from the database that every second from the first tick to the
last was fired exactly once: one task per tick, each with its unique (schedule, tick) row.

    .venv/bin/python -m bench.schedules_proof --seconds 30

Exit status 1 on any duplicate, gap or orphan. Prints the fire lag (task created - tick).
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from datetime import timedelta
from typing import Any

import asyncpg

from bench.cluster import Cluster


def call(url: str, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


async def check(database_url: str, schedule_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        ticks = [
            r["scheduled_for"]
            for r in await conn.fetch(
                "SELECT scheduled_for FROM tasker_tasks WHERE schedule_id = $1 "
                "ORDER BY scheduled_for",
                schedule_id,
            )
        ]
        fires = await conn.fetchval(
            "SELECT count(*) FROM tasker_schedule_fires WHERE schedule_id = $1", schedule_id
        )
        orphans = await conn.fetchval(
            """SELECT count(*) FROM tasker_tasks t
               LEFT JOIN tasker_schedule_fires f ON f.task_id = t.id
               WHERE t.schedule_id = $1 AND (f.id IS NULL OR f.tick <> t.scheduled_for)""",
            schedule_id,
        )
        lags = [
            r["lag"]
            for r in await conn.fetch(
                "SELECT extract(epoch FROM created_at - tick) AS lag "
                "FROM tasker_schedule_fires WHERE schedule_id = $1 ORDER BY lag",
                schedule_id,
            )
        ]
    finally:
        await conn.close()
    duplicates = len(ticks) - len(set(ticks))
    expected = 0
    if ticks:
        expected = int((ticks[-1] - ticks[0]) / timedelta(seconds=1)) + 1
    gaps = expected - len(set(ticks))

    def pct(p: float) -> float:
        return round(float(lags[min(len(lags) - 1, int(p * len(lags)))]), 3) if lags else 0.0

    return {
        "ticks_fired": len(ticks),
        "first_tick": ticks[0].isoformat() if ticks else None,
        "last_tick": ticks[-1].isoformat() if ticks else None,
        "expected_ticks": expected,
        "duplicates": duplicates,
        "gaps": gaps,
        "fire_rows": fires,
        "orphans": orphans,
        "lag_p50_s": pct(0.5),
        "lag_p99_s": pct(0.99),
        "lag_max_s": round(float(lags[-1]), 3) if lags else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--database", default="tasker_schedules_proof")
    parser.add_argument("--interval", default="0.25", help="TASKER_SCHEDULE_INTERVAL")
    args = parser.parse_args()
    cluster = Cluster.start(
        database=args.database,
        reset=True,
        servers=2,
        workers=2,
        threads=4,
        ttl=args.seconds + 180,
        extra_env={"TASKER_SCHEDULE_INTERVAL": args.interval},
    )
    try:
        urls = cluster.server_urls
        made = call(
            f"{urls[0]}/tasker/schedules",
            "POST",
            {
                "name": "every_second",
                "namespace": "shapes",
                "handler": "linear",
                "cron": "* * * * * *",
                "catch_up": "all",
            },
        )
        started = time.monotonic()
        killed = {"worker": False, "server": False}
        while (elapsed := time.monotonic() - started) < args.seconds:
            if elapsed > args.seconds / 3 and not killed["worker"]:
                cluster.kill_worker(0)
                killed["worker"] = True
                print(f"t={elapsed:.1f}s kill -9 worker 0", flush=True)
            if elapsed > args.seconds / 2 and not killed["server"]:
                cluster.kill_server(0)
                killed["server"] = True
                print(f"t={elapsed:.1f}s kill -9 server 0", flush=True)
            time.sleep(0.2)
        call(f"{urls[1]}/tasker/schedules/{made['id']}/pause", "POST")
        time.sleep(2)  # a pass under way when the pause landed finishes its tick
        result = asyncio.run(check(cluster.state.database_url, made["id"]))
    finally:
        cluster.stop()
    result["seconds"] = args.seconds
    print(json.dumps(result, indent=2))
    bad = result["duplicates"] or result["gaps"] or result["orphans"]
    bad = bad or result["fire_rows"] != result["ticks_fired"]
    print("FAIL" if bad else "OK: every tick fired exactly once", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
