"""Idle benchmark: CPU an idle deployment burns, and the hand-off latency right after idling.

Starts, with their default settings:

- an embedded `tasker serve` (SQLite in a temporary directory, steps run in-process);
- a production pair on PostgreSQL + Redis: `tasker serve` (API only) and one `tasker worker`.

Leaves them idle for `--seconds` (60 by default), then prints the CPU each process used over
that window as a share of one core (Redis too: the server process of the Redis given, shared
with whatever else uses it). Then runs `--tasks` four-step chain tasks one at a time on each
deployment, each after `--gap` seconds of idleness, and prints the hand-off latency (a step's
completion to its child's start, from the database's timestamps) p50 / p99.

    .venv/bin/python -m bench.idle_bench                 # 60 s idle window
    .venv/bin/python -m bench.idle_bench --seconds 10    # quicker
"""

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx

from bench.engine_bench import cpu_seconds, pct, redis_pids
from bench.rest_bench import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
TASKER = str(Path(sys.executable).parent / "tasker")
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def environment(database_url: str, broker_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    env.update(
        PYTHONPATH=str(ROOT),
        TASKER_DATABASE_URL=database_url,
        TASKER_HANDLERS_PATH=str(ROOT / "bench/handlers"),
        TASKER_LOG_LEVEL="WARNING",
    )
    if broker_url:
        env["TASKER_BROKER_URL"] = broker_url
    return env


async def fresh_database(name: str) -> str:
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    return PG_ADMIN.rpartition("/")[0] + "/" + name


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def handoffs(base: str, tasks: int, gap: float) -> list[float]:
    """Hand-off latencies (ms) of `tasks` chain tasks run one at a time, `gap` s apart."""
    body = {"namespace": "bench", "name": "chain", "version": "1.0.0", "context": {}}
    out: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i in range(tasks):
            await asyncio.sleep(gap)
            created = await client.post("/tasker/tasks", json={**body, "context": {"i": i}})
            created.raise_for_status()
            task_id = created.json()["id"]
            for _ in range(3000):
                task = (
                    await client.get(
                        f"/tasker/tasks/{task_id}", params={"include_dependencies": "true"}
                    )
                ).json()
                if task["status"] == "complete":
                    break
                await asyncio.sleep(0.01)
            else:
                raise RuntimeError(f"task {task_id} did not complete")
            steps = sorted(task["steps"], key=lambda s: s["started_at"])
            for parent, child in itertools.pairwise(steps):
                delta = stamp(child["started_at"]) - stamp(parent["completed_at"])
                out.append(delta.total_seconds() * 1000)
    return out


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        embedded_port, api_port = free_port(), free_port()
        embedded_env = environment(f"sqlite://{tmp}/idle.db")
        database_url = asyncio.run(fresh_database(args.database))
        production_env = environment(database_url, args.broker_url)
        subprocess.run([TASKER, "migrate"], env=embedded_env, cwd=ROOT, check=True)
        subprocess.run([TASKER, "migrate"], env=production_env, cwd=ROOT, check=True)
        serve = [TASKER, "serve", "--host", "127.0.0.1"]
        processes = {
            "embedded tasker serve": start([*serve, "--port", str(embedded_port)], embedded_env),
            "tasker serve (API only)": start([*serve, "--port", str(api_port)], production_env),
            "tasker worker": start([TASKER, "worker"], production_env),
        }
        try:
            embedded = f"http://127.0.0.1:{embedded_port}"
            production = f"http://127.0.0.1:{api_port}"
            asyncio.run(wait_until_up(f"{embedded}/tasker/handlers"))
            asyncio.run(wait_until_up(f"{production}/tasker/handlers"))
            # Warm both up (imports, connections), then let them settle into idleness.
            asyncio.run(handoffs(embedded, 2, 0.0))
            asyncio.run(handoffs(production, 2, 0.0))
            time.sleep(3)
            pids = {name: p.pid for name, p in processes.items()}
            for i, pid in enumerate(redis_pids()):
                pids[f"redis-server #{i}"] = pid
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            began = time.perf_counter()
            time.sleep(args.seconds)
            elapsed = time.perf_counter() - began
            used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            latencies = {
                "embedded (SQLite, in-process broker)": asyncio.run(
                    handoffs(embedded, args.tasks, args.gap)
                ),
                "production (PostgreSQL, Redis, tasker worker)": asyncio.run(
                    handoffs(production, args.tasks, args.gap)
                ),
            }
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(30)
    print(f"idle CPU over {elapsed:.0f} s (share of one core):")
    for name, seconds in used.items():
        print(f"  {name:28s} {100 * seconds / elapsed:6.2f} %")
    print(f"hand-off after {args.gap:.1f} s idle gaps ({args.tasks} chain tasks each):")
    for name, values in latencies.items():
        print(
            f"  {name:46s} p50 {statistics.median(values):5.1f} ms  "
            f"p99 {pct(values, 99):5.1f} ms  max {max(values):5.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window")
    parser.add_argument("--tasks", type=int, default=15, help="chain tasks per deployment")
    parser.add_argument("--gap", type=float, default=2.0, help="idle seconds before each task")
    parser.add_argument("--broker-url", default=REDIS_URL)
    parser.add_argument("--database", default="tasker_idle_bench", help="PostgreSQL database")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
