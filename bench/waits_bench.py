"""Waiting benchmark: N tasks sleeping or waiting for a signal cost no CPU; then N signals.

Production topology on this machine: PostgreSQL + Redis on loopback, 2 `tasker worker`
processes (as bench/engine_bench.py). Phases:

1. idle: no task at all; CPU of the workers, Redis and PostgreSQL over a window;
2. waiting: N tasks whose first step waits for signal `go` (deadline an hour away; each has
   one delayed wake message in Redis) plus N/10 tasks sleeping an hour, all parked; CPU over
   the same window, printed next to the idle one;
3. signals: N signals sent by 32 concurrent senders; every waiting task must complete.
   Printed: send call latency, signal -> step complete (database times), signal -> task
   complete (its next step runs on a worker), p50/p99.

    .venv/bin/python -m bench.waits_bench --tasks 10000 --window 20
"""

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import redis

from bench.engine_bench import PG_ADMIN, TASKER, cpu_seconds, pct, redis_pids

ROOT = Path(__file__).resolve().parent.parent
DB = "tasker_waits_bench"
DB_URL = PG_ADMIN.rpartition("/")[0] + "/" + DB
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    return {
        **base,
        "PYTHONPATH": str(ROOT),
        "TASKER_DATABASE_URL": DB_URL,
        "TASKER_BROKER_URL": REDIS_URL,
        "TASKER_HANDLERS_PATH": str(ROOT / "bench/handlers"),
        "TASKER_LOG_LEVEL": "WARNING",
        "TASKER_DB_POOL_MAX": "6",
    }


def tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found = [pid]
    for p in found:
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


async def reset_database() -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await conn.execute(f"CREATE DATABASE {DB}")
    await conn.close()
    subprocess.run([TASKER, "migrate"], env=env(), check=True, capture_output=True)


class Meter:
    """CPU seconds of the workers (and their children), Redis, and PostgreSQL backends."""

    def __init__(self, workers: list[subprocess.Popen[bytes]], pg: asyncpg.Connection) -> None:
        self.workers = workers
        self.pg = pg

    async def sample(self) -> dict[str, float]:
        backends = [
            r["pid"]
            for r in await self.pg.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                DB,
            )
        ]
        return {
            "workers": sum(cpu_seconds(p) for w in self.workers for p in tree(w.pid)),
            "redis": sum(cpu_seconds(p) for p in redis_pids()),
            "postgres": sum(cpu_seconds(p) for p in backends),
        }

    async def window(self, seconds: float) -> dict[str, float]:
        """Percent of one core each part used over `seconds`."""
        before = await self.sample()
        await asyncio.sleep(seconds)
        after = await self.sample()
        return {k: 100 * (after[k] - before[k]) / seconds for k in before}


async def run(tasks: int, sleepers: int, window: float, threads: int) -> None:
    from server.config import Settings
    from server.container import build_services
    from server.domain.views import CreateTask
    from server.infra.ports import NullDispatcher
    from workers.pool import WorkerPool
    from workers.runtime import LoopRuntime

    redis.Redis.from_url(REDIS_URL).flushdb()
    settings = Settings(
        database_url=DB_URL,
        broker_url=REDIS_URL,
        handlers_path=str(ROOT / "bench/handlers"),
        db_pool_max=8,  # the machine's PostgreSQL is shared: stay well under its limit
    )
    services = build_services(settings, NullDispatcher())
    await services.open(migrate=False)
    WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=1)  # a real broker
    pg = await asyncpg.connect(DB_URL)
    workers = [
        subprocess.Popen([TASKER, "worker", "--threads", str(threads)], cwd=ROOT, env=env())
        for _ in range(2)
    ]
    meter = Meter(workers, pg)
    try:
        await asyncio.sleep(5)  # workers booted and idle
        idle = await meter.window(window)

        queue = [("wait_then_go", i) for i in range(tasks)]
        queue += [("sleep_then_go", i) for i in range(sleepers)]
        ids: list[object] = []

        async def producer() -> None:
            while queue:
                name, i = queue.pop()
                task, _ = await services.tasks.create_task(
                    CreateTask(namespace="bench", name=name, context={"i": i})
                )
                if name == "wait_then_go":
                    ids.append(task.id)

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(32)))
        created_s = time.perf_counter() - started
        parked_sql = (
            "SELECT count(*) FROM tasker_workflow_steps WHERE status = 'pending' "
            "AND wake_at IS NOT NULL"
        )
        while (await pg.fetchval(parked_sql)) < tasks + sleepers:
            await asyncio.sleep(0.5)
        parked_s = time.perf_counter() - started
        await asyncio.sleep(10)  # past the parking burst
        waiting = await meter.window(window)

        latencies: list[float] = []
        pending = list(ids)

        async def sender() -> None:
            while pending:
                task_id = pending.pop()
                t0 = time.perf_counter()
                await services.signals.send(task_id, "go", {"approved": True})
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(32)))
        sent_s = time.perf_counter() - t0
        done_sql = (
            "SELECT count(*) FROM tasker_tasks WHERE name = 'wait_then_go' AND status = 'complete'"
        )
        deadline = time.monotonic() + 600
        while (await pg.fetchval(done_sql)) < tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        completed = await pg.fetchval(done_sql)
        rows = await pg.fetch(
            """SELECT EXTRACT(EPOCH FROM s.completed_at - g.received_at) * 1000 AS step_ms,
                      EXTRACT(EPOCH FROM t.completed_at - g.received_at) * 1000 AS task_ms
                 FROM tasker_signals g
                 JOIN tasker_workflow_steps s ON s.id = g.consumed_by_id
                 JOIN tasker_tasks t ON t.id = g.task_id"""
        )
        step_ms = [float(r["step_ms"]) for r in rows]
        task_ms = [float(r["task_ms"]) for r in rows if r["task_ms"] is not None]
        still_sleeping = await pg.fetchval(
            "SELECT count(*) FROM tasker_tasks "
            "WHERE name = 'sleep_then_go' AND status <> 'complete'"
        )
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
        await pg.close()
        await services.close()

    def cpu(parts: dict[str, float]) -> str:
        return (
            ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
            + f" (total {sum(parts.values()):.2f})"
        )

    print(f"tasks: {tasks} waiting for a signal + {sleepers} sleeping an hour")
    print(f"2 workers x {threads} threads, PostgreSQL + Redis on loopback")
    print(f"created in {created_s:.1f} s, all parked after {parked_s:.1f} s")
    print(f"CPU % of one core over {window:.0f} s, idle (no task):   {cpu(idle)}")
    print(f"CPU % of one core over {window:.0f} s, while they wait: {cpu(waiting)}")
    print(f"signals: {tasks} sent in {sent_s:.1f} s by 32 senders ({tasks / sent_s:.0f}/s)")
    print(
        f"send call latency p50 / p99:            {statistics.median(latencies):7.1f} / "
        f"{pct(latencies, 99):.1f} ms"
    )
    print(
        f"signal -> step complete p50 / p99:      {statistics.median(step_ms):7.1f} / "
        f"{pct(step_ms, 99):.1f} ms"
    )
    if task_ms:
        print(
            f"signal -> task complete p50 / p99:      {statistics.median(task_ms):7.1f} / "
            f"{pct(task_ms, 99):.1f} ms (its next step runs on a worker)"
        )
    print(f"waiting tasks complete: {completed} / {tasks}")
    print(f"sleeping tasks still asleep (as they must be): {still_sleeping} / {sleepers}")
    if completed != tasks or still_sleeping != sleepers:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--sleepers", type=int, default=None, help="default: tasks / 10")
    parser.add_argument("--window", type=float, default=20.0, help="CPU sampling seconds")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    sleepers = args.tasks // 10 if args.sleepers is None else args.sleepers
    asyncio.run(reset_database())
    asyncio.run(run(args.tasks, sleepers, args.window, args.threads))


if __name__ == "__main__":
    main()
