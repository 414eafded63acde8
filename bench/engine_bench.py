"""Engine benchmark: steps/s, hand-off latency, one task end to end, worker memory.

Throughput is the steady state (10 % → 90 % of the work done) of 2 worker processes draining
a backlog; the baseline drains plain Dramatiq no-op messages the same way, in the same run.

Production topology on this machine: PostgreSQL + Redis on loopback, 2 `tasker worker`
processes. The baseline, measured in the same run on the same Redis, is a plain Dramatiq no-op
message round trip with the same process/thread counts.

    .venv/bin/python -m bench.engine_bench --tasks 1000
"""

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import redis

ROOT = Path(__file__).resolve().parent.parent
TASKER = str(Path(sys.executable).parent / "tasker")
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# Its own database name when several benchmarks share one PostgreSQL server.
DB = os.environ.get("BENCH_ENGINE_DB", "tasker_bench")
DB_URL = PG_ADMIN.rpartition("/")[0] + "/" + DB
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    return {
        **base,
        "PYTHONPATH": str(ROOT),
        "TASKER_DATABASE_URL": DB_URL,
        "TASKER_BROKER_URL": REDIS_URL,
        "TASKER_HANDLERS_PATH": str(ROOT / "bench/handlers"),
        "TASKER_LOG_LEVEL": "WARNING",
        **extra,
    }


async def reset_database() -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await conn.execute(f"CREATE DATABASE {DB}")
    await conn.close()
    subprocess.run([TASKER, "migrate"], env=env(), check=True, capture_output=True)


def steady_rate(progress: Callable[[], int], total: int) -> float:
    """Units/s between 10 % and 90 % done: the steady state, without start-up or tail."""
    marks: dict[float, float] = {}
    while len(marks) < 2:
        done = progress()
        for frac in (0.1, 0.9):
            if frac not in marks and done >= frac * total:
                marks[frac] = time.perf_counter()
        time.sleep(0.005)
    return 0.8 * total / (marks[0.9] - marks[0.1])


def baseline(messages: int, processes: int, threads: int) -> float:
    """Plain Dramatiq: no-op messages/s drained from a pre-filled queue by the same workers."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    os.environ["BENCH_REDIS_URL"] = REDIS_URL
    from bench.baseline_actor import noop

    for i in range(messages):
        noop.send(i)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.baseline_actor",
            "-p",
            str(processes),
            "-t",
            str(threads),
            "-Q",
            "baseline",
        ],
        cwd=ROOT,
        env={**env(), "BENCH_REDIS_URL": REDIS_URL},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rate = steady_rate(lambda: int(client.get("bench:baseline:done") or 0), messages)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    return rate


async def engine(tasks: int, processes: int, threads: int) -> dict[str, float]:
    from server.config import Settings
    from server.container import build_services
    from server.domain.states import TaskState
    from server.domain.views import CreateTask
    from server.infra.ports import NullDispatcher
    from workers.pool import WorkerPool
    from workers.runtime import LoopRuntime

    redis.Redis.from_url(REDIS_URL).flushdb()
    settings = Settings(
        database_url=DB_URL,
        broker_url=REDIS_URL,
        handlers_path=str(ROOT / "bench/handlers"),
        db_pool_max=20,
    )
    services = build_services(settings, NullDispatcher())
    await services.open(migrate=False)
    WorkerPool(services, LoopRuntime(asyncio.get_running_loop()), threads=1)
    out: dict[str, float] = {}

    # 1. Creation: `tasks` tasks by 32 concurrent producers (no worker running yet).
    queue = list(range(tasks))

    async def producer() -> None:
        while queue:
            i = queue.pop()
            await services.tasks.create_task(
                CreateTask(namespace="bench", name=("chain", "diamond")[i % 2], context={"i": i})
            )

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(32)))
    out["tasks_created_per_s"] = tasks / (time.perf_counter() - started)

    # 2. Throughput: the workers drain the backlog (4 steps per task, chains and diamonds).
    pg = await asyncpg.connect(DB_URL)
    done_steps = 0

    async def poll() -> None:
        nonlocal done_steps
        while done_steps < tasks * 4:
            done_steps = await pg.fetchval(
                "SELECT count(*) FROM tasker_workflow_steps WHERE status = 'complete'"
            )
            await asyncio.sleep(0.05)  # the probe itself must not load the database

    backends_sql = f"SELECT pid FROM pg_stat_activity WHERE datname = '{DB}'"
    producers = {r["pid"] for r in await pg.fetch(backends_sql)}
    workers = [
        subprocess.Popen([TASKER, "worker", "--threads", str(threads)], cwd=ROOT, env=env())
        for _ in range(processes)
    ]
    # CPU spent per step by each part of the system: unlike steps/s, it barely moves when
    # something else is using the machine.
    parts = {"workers": [w.pid for w in workers], "redis": redis_pids()}
    cpu_before = {name: sum(cpu_seconds(p) for p in pids) for name, pids in parts.items()}
    poller = asyncio.create_task(poll())
    out["steps_per_s"] = await asyncio.to_thread(steady_rate, lambda: done_steps, tasks * 4)
    await poller
    backends = [r["pid"] for r in await pg.fetch(backends_sql) if r["pid"] not in producers]
    for name, pids in parts.items():
        spent = sum(cpu_seconds(p) for p in pids) - cpu_before[name]
        out[f"cpu_ms_per_step_{name}"] = spent * 1000 / (tasks * 4)
    # PostgreSQL backends start with the workers' pools: all of their time is the drain's.
    out["cpu_ms_per_step_postgres"] = sum(cpu_seconds(p) for p in backends) * 1000 / (tasks * 4)
    # Completions and claims written per statement: the history rows of one statement share
    # its transaction id (1.0 when every one is written alone).
    for reason, key in (("completed", "completions"), ("claimed", "claims")):
        out[f"{key}_per_statement"] = await pg.fetchval(
            "SELECT count(*)::float / greatest(count(DISTINCT xmin::text), 1)"
            " FROM tasker_transitions WHERE reason = $1",
            reason,
        )
    await pg.close()
    out["worker_rss_mb_max"] = max(rss_mb(w.pid) for w in workers)

    # 2. Idle system: one chain task at a time → end-to-end latency and hand-off latency.
    await asyncio.sleep(1)
    e2e: list[float] = []
    handoffs: list[float] = []
    for i in range(40):
        t0 = time.perf_counter()
        task, _ = await services.tasks.create_task(
            CreateTask(namespace="bench", name="chain", context={"idle": i})
        )
        while (await services.tasks.get_task(task.id)).status is not TaskState.COMPLETE:
            await asyncio.sleep(0.002)
        e2e.append((time.perf_counter() - t0) * 1000)
        steps = await services.steps.list_steps(task.id)
        for parent, child in itertools.pairwise(steps):
            assert parent.completed_at and child.started_at
            handoffs.append((child.started_at - parent.completed_at).total_seconds() * 1000)
        await asyncio.sleep(0.2)  # let the consumers go idle again
    out["e2e_ms_p50"] = statistics.median(e2e)
    out["e2e_ms_p99"] = pct(e2e, 99)
    out["handoff_ms_p50"] = statistics.median(handoffs)
    out["handoff_ms_p99"] = pct(handoffs, 99)
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=30)
    await services.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(reset_database())
    base = baseline(args.tasks * 4, args.processes, args.threads)
    result = asyncio.run(engine(args.tasks, args.processes, args.threads))
    print(f"baseline: plain dramatiq no-op drain {base:8.0f} msg/s")
    print(
        f"tasker steps/s ({args.tasks} tasks x 4):  {result['steps_per_s']:8.0f} steps/s "
        f"({result['steps_per_s'] / base:.2f} x baseline)"
    )
    print(f"task creation:                      {result['tasks_created_per_s']:8.0f} tasks/s")
    print(
        f"hand-off latency p50 / p99:         {result['handoff_ms_p50']:8.1f} / "
        f"{result['handoff_ms_p99']:.1f} ms"
    )
    print(
        f"one 4-step task end to end p50/p99: {result['e2e_ms_p50']:8.1f} / "
        f"{result['e2e_ms_p99']:.1f} ms"
    )
    cpu = {k.rsplit("_", 1)[1]: v for k, v in result.items() if k.startswith("cpu_ms_per_step_")}
    print(
        "CPU ms per step:                  "
        + ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
        + f" (total {sum(cpu.values()):.2f})"
    )
    print(f"completions per statement (drain):  {result['completions_per_statement']:8.2f}")
    print(f"claims per statement (drain):       {result['claims_per_statement']:8.2f}")
    print(f"worker RSS (max of {args.processes}):            {result['worker_rss_mb_max']:8.1f} MB")


if __name__ == "__main__":
    main()
