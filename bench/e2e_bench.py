"""End-to-end bench: tasks in through the API, steps out through the workers, next to a
minimal Dramatiq + PostgreSQL DAG engine (`bench.mini_dag`) measured in the same run.

PostgreSQL + Redis on loopback, `tasker serve` + `--processes` `tasker worker` processes
(`--threads` each). `--tasks` tasks of 4 no-op steps (one shape per phase: chain, diamond)
are created over REST by `--clients` client threads, one POST per task, or through
`POST /tasker/tasks/batch` (`--batch` tasks per request); the clock runs from the first
request to the last task complete. CPU per step sums every process of the system (server,
workers, their PostgreSQL backends, Redis; Redis is shared with whatever else runs on the
machine). Then creation alone (no workers): tasks/s through single POSTs and through batches.

    .venv/bin/python -m bench.e2e_bench --tasks 1000
    .venv/bin/python -m bench.e2e_bench --code /tmp/old-tree --label before   # older code
    .venv/bin/python -m bench.e2e_bench --tasks 1000 --sweep 1,3 --sweep-only  # scaling curve
    .venv/bin/python -m bench.e2e_bench --tasks 1000 --rounds 3    # medians of 3 alternated rounds

`--code` runs the server and workers of another checkout (the baseline engine and this
script stay the same), so before/after figures come from one script on one machine.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import asyncpg
import httpx
import redis

from bench.engine_bench import PG_ADMIN, REDIS_URL, cpu_seconds, pct, redis_pids

ROOT = Path(__file__).resolve().parent.parent
DB = os.environ.get("BENCH_E2E_DB", "tasker_e2e")
DB_URL = PG_ADMIN.rpartition("/")[0] + "/" + DB
SHAPES = ("chain", "diamond")
COMPLETIONS_PER_STATEMENT = (
    # The history rows of one statement share its transaction id.
    "SELECT count(*)::float / greatest(count(DISTINCT xmin::text), 1) FROM tasker_transitions"
    " WHERE reason = 'completed'"
)
STEPS = 4


def children(pid: int) -> list[int]:
    """`pid` and its descendants (a worker may spawn processes)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pid:
                found += children(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class System:
    """The processes of one phase: a server and workers (Tasker) or the baseline's workers."""

    def __init__(self, code: Path, workers: int, threads: int, baseline: bool = False) -> None:
        self.code = code
        self.port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
        self.env = {
            **base,
            "PYTHONPATH": str(code),
            "TASKER_DATABASE_URL": DB_URL,
            "TASKER_BROKER_URL": REDIS_URL,
            "TASKER_HANDLERS_PATH": str(code / "bench/handlers"),
            "TASKER_LOG_LEVEL": "WARNING",
            "BENCH_REDIS_URL": REDIS_URL,
            "BENCH_DSN": DB_URL,
        }
        tasker = [sys.executable, "-c", "from server.cli import main; main()"]
        self.procs: list[subprocess.Popen[bytes]] = []
        if baseline:
            cmd = [sys.executable, "-m", "dramatiq", "bench.mini_dag", "-p", str(workers)]
            cmd += ["-t", str(threads), "-Q", "mini"]
            own = {**self.env, "PYTHONPATH": str(ROOT)}
            self.procs.append(
                subprocess.Popen(cmd, cwd=ROOT, env=own, stdout=DEVNULL, stderr=DEVNULL)
            )
            return
        serve = [*tasker, "serve", "--port", str(self.port)]
        self.procs.append(
            subprocess.Popen(serve, cwd=code, env=self.env, stdout=DEVNULL, stderr=DEVNULL)
        )
        for _ in range(workers):
            cmd = [*tasker, "worker", "--threads", str(threads)]
            self.procs.append(
                subprocess.Popen(cmd, cwd=code, env=self.env, stdout=DEVNULL, stderr=DEVNULL)
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/tasker/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("tasker serve did not start")

    def pids(self) -> list[int]:
        return [p for proc in self.procs for p in children(proc.pid)]

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def reset(code: Path) -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DB}")
    await admin.close()
    migrate = [sys.executable, "-c", "from server.cli import main; main()", "migrate"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    subprocess.run(
        migrate,
        cwd=code,
        env={**base, "PYTHONPATH": str(code), "TASKER_DATABASE_URL": DB_URL},
        check=True,
        capture_output=True,
    )
    redis.Redis.from_url(REDIS_URL).flushdb()


class Cpu:
    """CPU seconds spent by a set of processes (and the database's backends) since `start`."""

    def __init__(self, pids: list[int], pg: Any) -> None:
        self.pids = pids
        self.pg = pg
        self.before: dict[int, float] = {}

    async def backends(self) -> list[int]:
        rows = await self.pg.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", DB
        )
        return [r["pid"] for r in rows]

    async def start(self) -> None:
        every = self.pids + await self.backends() + redis_pids()
        self.before = {p: cpu_seconds(p) for p in every}

    async def spent(self) -> dict[str, float]:
        def delta(pids: list[int]) -> float:
            return sum(max(0.0, cpu_seconds(p) - self.before.get(p, 0.0)) for p in pids)

        return {
            "tasker": delta(self.pids),
            "postgres": delta(await self.backends()),
            "redis": delta(redis_pids()),
        }


def post_tasks(url: str, bodies: list[dict[str, Any]], batch: int, latencies: list[float]) -> None:
    """One client thread: POST its tasks one by one (batch=0) or `batch` at a time."""
    with httpx.Client(base_url=url, timeout=60) as client:
        if batch:
            for start in range(0, len(bodies), batch):
                t0 = time.perf_counter()
                reply = client.post(
                    "/tasker/tasks/batch", json={"tasks": bodies[start : start + batch]}
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                assert reply.status_code == 200 and reply.json()["failed"] == 0, reply.text[:300]
            return
        for body in bodies:
            t0 = time.perf_counter()
            reply = client.post("/tasker/tasks", json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert reply.status_code == 201, reply.text[:300]


async def create_over_api(
    url: str, shape: str | None, tasks: int, clients: int, batch: int
) -> dict[str, float]:
    """Create `tasks` tasks with `clients` threads; returns tasks/s and request latencies."""
    bodies = [
        {"namespace": "bench", "name": shape or SHAPES[i % 2], "context": {"i": i}}
        for i in range(tasks)
    ]
    shares = [bodies[i::clients] for i in range(clients)]
    latencies: list[float] = []
    errors: list[BaseException] = []

    def client(share: list[dict[str, Any]]) -> None:
        try:
            post_tasks(url, share, batch, latencies)
        except BaseException as exc:  # reported by the caller, not lost in the thread
            errors.append(exc)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(s,)) for s in shares]
    for t in threads:
        t.start()

    def join() -> None:
        for t in threads:
            t.join()

    await asyncio.to_thread(join)
    took = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return {
        "tasks_per_s": tasks / took,
        "seconds": took,
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 99),
    }


async def wait_done(pg: Any, sql: str, total: int, creating: "asyncio.Future[Any]") -> float:
    """Poll until `sql` counts `total`; returns when (perf_counter). Raises if creating did."""
    while await pg.fetchval(sql) < total:
        if creating.done() and creating.exception() is not None:
            creating.result()
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def has_batch(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url) as probe:
        answer = await probe.post("/tasker/tasks/batch", json={"tasks": []})
    return answer.status_code not in (404, 405)


async def tasker_run(
    code: Path, shape: str, args: argparse.Namespace, batch: int
) -> dict[str, float]:
    await reset(code)
    system = System(code, args.processes, args.threads)
    try:
        await asyncio.to_thread(system.wait_ready)
        if batch and not await has_batch(system.url):
            return {}
        pg = await asyncpg.connect(DB_URL)
        cpu = Cpu(system.pids(), pg)
        await cpu.start()
        t0 = time.perf_counter()
        creating = asyncio.create_task(
            create_over_api(system.url, shape, args.tasks, args.clients, batch)
        )
        sql = "SELECT count(*) FROM tasker_tasks WHERE status = 'complete'"
        end = await wait_done(pg, sql, args.tasks, creating)
        made = await creating
        spent = await cpu.spent()
        per_statement = await pg.fetchval(COMPLETIONS_PER_STATEMENT)
        await pg.close()
    finally:
        system.stop()
    out = summarize(args.tasks, end - t0, spent, made["seconds"])
    out["completions_per_statement"] = per_statement
    return out


async def mini_run(shape: str, args: argparse.Namespace) -> dict[str, float]:
    from bench import mini_dag

    await reset(ROOT)
    pg = await asyncpg.connect(DB_URL)
    await pg.execute(mini_dag.SCHEMA)
    system = System(ROOT, args.processes, args.threads, baseline=True)
    try:
        await asyncio.sleep(2)  # the workers connect and start consuming
        producers = await asyncpg.create_pool(DB_URL, min_size=args.clients, max_size=args.clients)
        cpu = Cpu(system.pids(), pg)
        await cpu.start()
        queue = list(range(args.tasks))

        async def producer() -> None:
            async with producers.acquire() as conn:
                while queue:
                    queue.pop()
                    await mini_dag.create(conn, shape)

        async def produce() -> float:
            await asyncio.gather(*(producer() for _ in range(args.clients)))
            return time.perf_counter()

        t0 = time.perf_counter()
        making = asyncio.ensure_future(produce())
        done = "SELECT count(*) FROM mini_tasks WHERE status = 'done'"
        end = await wait_done(pg, done, args.tasks, making)
        created = await making - t0
        spent = await cpu.spent()
        await producers.close()
        await pg.close()
    finally:
        system.stop()
    return summarize(args.tasks, end - t0, spent, created)


def summarize(
    tasks: int, seconds: float, spent: dict[str, float], creating: float
) -> dict[str, float]:
    steps = tasks * STEPS
    out = {"steps_per_s": steps / seconds, "seconds": seconds, "creating_s": creating}
    out.update({f"cpu_ms_{k}": v * 1000 / steps for k, v in spent.items()})
    out["cpu_ms_total"] = sum(v for k, v in out.items() if k.startswith("cpu_ms_"))
    return out


async def creation_alone(code: Path, args: argparse.Namespace, batch: int) -> dict[str, float]:
    await reset(code)
    system = System(code, 0, args.threads)
    try:
        await asyncio.to_thread(system.wait_ready)
        if batch and not await has_batch(system.url):
            return {}
        await create_over_api(system.url, None, 50, args.clients, 0)  # warm-up
        return await create_over_api(system.url, None, args.tasks, args.clients, batch)
    finally:
        system.stop()


def median_round(runs: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median steps/s (the lower one of an even count), and the range."""
    if not all(runs):
        return {}
    ranked = sorted(runs, key=lambda r: r["steps_per_s"])
    median = dict(ranked[(len(ranked) - 1) // 2])
    median["low"], median["high"] = ranked[0]["steps_per_s"], ranked[-1]["steps_per_s"]
    return median


async def run(args: argparse.Namespace) -> dict[str, Any]:
    code = Path(args.code).resolve()
    out: dict[str, Any] = {"label": args.label, "e2e": {}, "creation": {}, "sweep": {}}
    for shape in () if args.sweep_only else SHAPES:
        # Alternated round by round, so that the machine's drift hits both engines alike;
        # each figure is its median round (the minimal engine alone swung ±25 % run to run).
        rounds: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            rounds.setdefault(f"mini {shape}", []).append(await mini_run(shape, args))
            rounds.setdefault(f"single {shape}", []).append(await tasker_run(code, shape, args, 0))
            if args.batch:
                batch = await tasker_run(code, shape, args, args.batch)
                rounds.setdefault(f"batch {shape}", []).append(batch)
        out["e2e"].update({name: median_round(runs) for name, runs in rounds.items()})
    for count in args.sweep:
        # The throughput curve: the chain shape at this many worker processes, both engines.
        at = argparse.Namespace(**{**vars(args), "processes": count})
        out["sweep"][count] = {
            "mini": await mini_run("chain", at),
            "tasker": await tasker_run(code, "chain", at, 0),
        }
        if args.batch:
            out["sweep"][count]["batch"] = await tasker_run(code, "chain", at, args.batch)
    if args.sweep_only:
        return out
    out["creation"]["single POST"] = await creation_alone(code, args, 0)
    out["creation"][f"batch of {args.batch}"] = await creation_alone(code, args, args.batch)
    return out


def report(out: dict[str, Any]) -> None:
    label = out["label"]
    print(
        f"\n== {label}: end to end, {STEPS}-step no-op tasks, "
        "clock from first create to last complete"
    )
    print(
        f"{'run':18} {'steps/s':>8} {'x mini':>7} {'wall s':>7} {'create s':>8}  "
        "CPU ms/step: total (tasker, postgres, redis)"
    )
    for name, r in out["e2e"].items():
        if not r:
            print(f"{name:18}      n/a")
            continue
        mini = out["e2e"].get(f"mini {name.split()[-1]}", r)
        print(
            f"{name:18} {r['steps_per_s']:8.0f} {r['steps_per_s'] / mini['steps_per_s']:7.2f} "
            f"{r['seconds']:7.2f} {r['creating_s']:8.2f}  {r['cpu_ms_total']:.2f} "
            f"({r['cpu_ms_tasker']:.2f}, {r['cpu_ms_postgres']:.2f}, {r['cpu_ms_redis']:.2f})"
            + (
                f"  completions/statement {r['completions_per_statement']:.2f}"
                if "completions_per_statement" in r
                else ""
            )
            + (f"  [{r['low']:.0f}-{r['high']:.0f}]" if r.get("low") != r.get("high") else "")
        )
    if out["sweep"]:
        print(f"== {label}: chain, single POST (and batch), by worker processes")
        print(
            f"{'processes':>9} {'mini':>8} {'tasker':>8} {'x mini':>7} {'batch':>8} {'x mini':>7}"
        )
        for count, r in out["sweep"].items():
            mini, tasker = r["mini"]["steps_per_s"], r["tasker"]["steps_per_s"]
            batch = r.get("batch", {}).get("steps_per_s", float("nan"))
            print(
                f"{count:>9} {mini:8.0f} {tasker:8.0f} {tasker / mini:7.2f} "
                f"{batch:8.0f} {batch / mini:7.2f}"
            )
    if not out["creation"]:
        return
    print(f"== {label}: creation alone (no workers)")
    for name, r in out["creation"].items():
        if r:
            print(
                f"{name:18} {r['tasks_per_s']:8.0f} tasks/s  "
                f"request p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
            )
        else:
            print(f"{name:18}      n/a")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50, help="tasks per batch request (0: skip)")
    parser.add_argument(
        "--sweep",
        type=lambda v: [int(n) for n in v.split(",") if n],
        default=[],
        help="also run the chain shape at these worker process counts, e.g. 1,3",
    )
    parser.add_argument("--sweep-only", action="store_true", help="only the --sweep runs")
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternated rounds per shape; medians reported"
    )
    parser.add_argument("--code", default=str(ROOT), help="the checkout whose server to run")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    out = asyncio.run(run(args))
    report(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
