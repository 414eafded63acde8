"""Flow-control benchmark: the cost of declared limits, and the hand-off of a freed slot.

1. Throughput, same run, same workers: a backlog of 2-step chains with no limits, then the
   same backlog of chains whose handler and steps declare limits that never bind (a handler
   concurrency of 1000 per key, a step concurrency of 1000 per key, a rate limit of 100,000/s):
   steady steps/s (10 % -> 90 % of the work) of each and their ratio, and the CPU per step of
   the worker processes and of PostgreSQL (where a limited step's extra cost goes).
2. Hand-off: tasks of one key with a limit of 1, queued at once; from the history rows, the
   time from a slot freed (the holder's completion) to the next step's start, p50 / p99.

Production topology: PostgreSQL + Redis on loopback, `tasker worker` processes.

    .venv/bin/python -m bench.flow_bench --tasks 1000
"""

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import time

import asyncpg
import redis

from bench.engine_bench import PG_ADMIN, ROOT, TASKER, cpu_seconds, pct

HANDLERS = f"{ROOT / 'bench/handlers'}:{ROOT / 'bench/flow_handlers'}"
# A database and Redis of its own: the engine benchmark may run at the same time.
DB_NAME = "tasker_flow_bench"
DB_URL = PG_ADMIN.rpartition("/")[0] + "/" + DB_NAME
REDIS_URL = os.environ.get("BENCH_FLOW_REDIS_URL", "redis://127.0.0.1:6379/7")


def env() -> dict[str, str]:
    from bench.engine_bench import env as base

    return {
        **base(),
        "TASKER_HANDLERS_PATH": HANDLERS,
        "TASKER_DATABASE_URL": DB_URL,
        "TASKER_BROKER_URL": REDIS_URL,
    }


async def reset_database() -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    await conn.execute(f"CREATE DATABASE {DB_NAME}")
    await conn.close()
    subprocess.run([TASKER, "migrate"], env=env(), check=True, capture_output=True)


async def cpu_now(pg, workers: list[int]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """CPU seconds so far of the worker processes and of this database's backends."""
    backends = await pg.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", DB_NAME
    )
    return (
        sum(cpu_seconds(p) for p in workers),
        sum(cpu_seconds(r["pid"]) for r in backends),
    )


async def drain(  # type: ignore[no-untyped-def]
    services, pg, name: str, tasks: int, tenants: int, workers: list[int]
) -> tuple[float, float, float]:
    """Create a backlog of `tasks` chains of handler `name` (paused meanwhile), then let the
    workers drain it: steady steps/s from the completed-step count, and the CPU per step of
    the workers and of PostgreSQL over the drain.

    The backlog is made under a handler pause and released at once: created as the workers
    drained it, a fast engine finished most of it before the last creation and the 10 % and
    90 % marks fell in one poll (a figure of millions of steps/s)."""
    from server.domain.views import CreateTask

    before = await pg.fetchval(
        "SELECT count(*) FROM tasker_workflow_steps WHERE status = 'complete'"
    )
    queue = list(range(tasks))

    async def producer() -> None:
        while queue:
            i = queue.pop()
            await services.tasks.create_task(
                CreateTask(namespace="flowbench", name=name, context={"tenant": f"t{i % tenants}"})
            )

    await services.pausing.pause_handler("flowbench", name)
    await asyncio.gather(*(producer() for _ in range(16)))
    await asyncio.sleep(1)  # the workers spend the messages the pause refuses
    cpu_before = await cpu_now(pg, workers)
    await services.pausing.resume_handler("flowbench", name)
    total = tasks * 2
    marks: dict[float, float] = {}
    while len(marks) < 2:
        done = (
            await pg.fetchval(
                "SELECT count(*) FROM tasker_workflow_steps WHERE status = 'complete'"
            )
            - before
        )
        for frac in (0.1, 0.9):
            if frac not in marks and done >= frac * total:
                marks[frac] = time.perf_counter()
        await asyncio.sleep(0.005)
    while (
        await pg.fetchval("SELECT count(*) FROM tasker_workflow_steps WHERE status = 'complete'")
        - before
        < total
    ):
        await asyncio.sleep(0.05)
    cpu_after = await cpu_now(pg, workers)
    per_step = [(a - b) * 1000 / total for a, b in zip(cpu_after, cpu_before, strict=True)]
    return 0.8 * total / (marks[0.9] - marks[0.1]), per_step[0], per_step[1]


async def handoff(services, pg, tasks: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Queue `tasks` one-step tasks of one key (limit 1); freed slot -> next start, in ms."""
    from server.domain.views import CreateTask

    for _ in range(tasks):
        await services.tasks.create_task(
            CreateTask(namespace="flowbench", name="tight", context={"tenant": "one"})
        )
    while await pg.fetchval(
        "SELECT count(*) FROM tasker_tasks WHERE name = 'tight' AND status <> 'complete'"
    ):
        await asyncio.sleep(0.05)
    rows = await pg.fetch(
        """SELECT s.started_at, s.completed_at FROM tasker_workflow_steps s
             JOIN tasker_tasks t ON t.id = s.task_id WHERE t.name = 'tight'
            ORDER BY s.started_at"""
    )
    return [
        (b["started_at"] - a["completed_at"]).total_seconds() * 1000
        for a, b in itertools.pairwise(rows)
    ]


async def run(tasks: int, processes: int, threads: int, tenants: int) -> dict[str, float]:
    from server.config import Settings
    from server.container import build_services
    from server.infra.ports import NullDispatcher
    from workers.pool import WorkerPool
    from workers.runtime import LoopRuntime

    redis.Redis.from_url(REDIS_URL).flushdb()
    settings = Settings(
        database_url=DB_URL, broker_url=REDIS_URL, handlers_path=HANDLERS, db_pool_max=20
    )
    services = build_services(settings, NullDispatcher())
    await services.open(migrate=False)
    WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=1)
    pg = await asyncpg.connect(DB_URL)
    workers = [
        subprocess.Popen([TASKER, "worker", "--threads", str(threads)], cwd=ROOT, env=env())
        for _ in range(processes)
    ]
    try:
        await asyncio.sleep(2)  # the workers connect
        out: dict[str, float] = {}
        # Alternate, so that neither side always runs on a warmer system.
        pids = [w.pid for w in workers]
        runs: dict[str, list[tuple[float, float, float]]] = {"plain": [], "loose": []}
        for _ in range(2):
            for name, drained in runs.items():
                drained.append(await drain(services, pg, name, tasks // 2, tenants, pids))
        for name, drained in runs.items():
            out[f"{name}_steps_per_s"] = statistics.mean(d[0] for d in drained)
            out[f"{name}_cpu_workers"] = statistics.mean(d[1] for d in drained)
            out[f"{name}_cpu_postgres"] = statistics.mean(d[2] for d in drained)
        gaps = await handoff(services, pg, 200)
        out["handoff_ms_p50"] = statistics.median(gaps)
        out["handoff_ms_p99"] = pct(gaps, 99)
        return out
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
        await pg.close()
        await services.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tenants", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(reset_database())
    r = asyncio.run(run(args.tasks, args.processes, args.threads, args.tenants))
    ratio = r["loose_steps_per_s"] / r["plain_steps_per_s"]

    def cpu(name: str) -> str:
        return (
            f"CPU per step: workers {r[name + '_cpu_workers']:.2f} ms, "
            f"PostgreSQL {r[name + '_cpu_postgres']:.2f} ms"
        )

    print(
        f"no limits:                       {r['plain_steps_per_s']:8.0f} steps/s   {cpu('plain')}"
    )
    print(
        f"limits declared, never binding:  {r['loose_steps_per_s']:8.0f} steps/s   {cpu('loose')} "
        f"({ratio:.2f} x no limits)"
    )
    print(
        f"slot freed -> next start p50 / p99: {r['handoff_ms_p50']:6.1f} / "
        f"{r['handoff_ms_p99']:.1f} ms (200 tasks, one key, limit 1)"
    )


if __name__ == "__main__":
    main()
