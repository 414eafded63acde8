"""REST read benchmark: requests/s and p99 of the task endpoints next to bare Starlette.

Starts two uvicorn servers (one worker each):

- Tasker (`tasker serve`, default configuration with its access log, the examples loaded;
  embedded mode) on a fresh SQLite file, or on PostgreSQL when `--database-url` or
  TASKER_DATABASE_URL names one;
- a bare Starlette app (`bare_app` below) answering a fixed JSON body of the same size as a
  task, the floor any endpoint on this stack can reach.

Then drives each endpoint with the same closed loop of N keep-alive connections, spread over
a few load-generator processes (a deliberately tiny HTTP/1.1 client, so the client is not
what is measured), and prints requests/s, p50 and p99 per endpoint and the ratio to bare:

- GET /tasker/tasks/{id}
- GET /tasker/tasks?per_page=25
- GET /bare

    .venv/bin/python -m bench.rest_bench --connections 32 --seconds 5
    .venv/bin/python -m bench.rest_bench \\
        --database-url postgres://postgres@127.0.0.1/tasker_bench --seed-tasks 100000
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.engine_bench import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent

TASK_LIKE = {
    "id": "550e8400-e29b-41d4-a716-446655440000",
    "name": "process_payment",
    "namespace": "payments",
    "version": "2.1.0",
    "full_name": "payments.process_payment@2.1.0",
    "status": "complete",
    "context": {"payment_id": 12345, "amount": 99.99, "currency": "USD", "customer_id": 67890},
    "created_at": "2024-01-15T10:30:00.000Z",
    "updated_at": "2024-01-15T10:30:07.000Z",
}


async def bare(_request: Request) -> JSONResponse:
    return JSONResponse(TASK_LIKE)


bare_app = Starlette(routes=[Route("/bare", bare)])
"""The baseline: routing plus a JSON response, nothing else."""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_uvicorn(target: str, port: int, env: dict[str, str], factory: bool) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        command.append("--factory")
    return subprocess.Popen(command, cwd=ROOT, env=env)


def start_tasker(port: int, env: dict[str, str]) -> subprocess.Popen:
    """`tasker serve` with its default configuration, access log included (INFO), its log
    written to /dev/null (formatted and written all the same)."""
    command = [str(Path(sys.executable).with_name("tasker")), "serve", "--port", str(port)]
    return subprocess.Popen(
        command, cwd=ROOT, env={**env, "TASKER_LOG_LEVEL": "INFO"}, stderr=subprocess.DEVNULL
    )


def tasker_env(database_url: str, broker_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    if broker_url:
        env["TASKER_BROKER_URL"] = broker_url
    env.update(
        TASKER_DATABASE_URL=database_url,
        TASKER_EXAMPLES="true",
        TASKER_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


async def wait_until_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def create_tasks(base: str, count: int) -> str:
    """Create `count` tasks through the API, wait for the last one, return its id."""
    body = {
        "namespace": "payments",
        "name": "process_payment",
        "version": "2.1.0",
        "context": {"payment_id": 1, "amount": 10.0},
    }
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        ids = []
        for _ in range(count):
            created = await client.post("/tasker/tasks", json=body)
            created.raise_for_status()
            ids.append(created.json()["id"])
        for _ in range(400):
            status = (await client.get(f"/tasker/tasks/{ids[-1]}")).json()["status"]
            if status in {"complete", "error"}:
                return str(ids[-1])
            await asyncio.sleep(0.05)
    raise RuntimeError("the tasks did not finish")


# --- the load generator ------------------------------------------------------------------


async def _connection(port: int, path: str, deadline: float, out: list[float]) -> int:
    """One keep-alive connection issuing GET `path` back to back; returns the failures."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n".encode()
    failures = 0
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            out.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                failures += 1
    finally:
        writer.close()
    return failures


def _load(port: int, path: str, connections: int, seconds: float) -> tuple[list[float], int]:
    """One load-generator process: `connections` loops for `seconds`."""

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        failures = await asyncio.gather(
            *(_connection(port, path, deadline, latencies) for _ in range(connections))
        )
        return latencies, sum(failures)

    try:
        import uvloop

        return uvloop.run(run())
    except ImportError:
        return asyncio.run(run())


def measure(
    pool: ProcessPoolExecutor,
    port: int,
    path: str,
    args: argparse.Namespace,
    seconds: float,
    server_pid: int,
) -> dict[str, float]:
    cpu_before = cpu_seconds(server_pid)
    share = [args.connections // args.processes] * args.processes
    share[0] += args.connections - sum(share)
    began = time.perf_counter()
    parts = list(
        pool.map(
            _load,
            [port] * args.processes,
            [path] * args.processes,
            share,
            [seconds] * args.processes,
        )
    )
    elapsed = time.perf_counter() - began
    latencies = [x for lat, _ in parts for x in lat]
    return {
        "rps": len(latencies) / elapsed,
        # The server's own CPU per request: steadier than req/s on a machine whose two cores
        # the server, the load generator and PostgreSQL take turns on.
        "cpu_us": (cpu_seconds(server_pid) - cpu_before) / max(1, len(latencies)) * 1e6,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "failures": sum(f for _, f in parts),
    }


# --- the run -----------------------------------------------------------------------------


def seed(database_url: str, count: int) -> None:
    print(f"seeding {count} tasks of history (bench.seed) ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "bench.seed", "--database-url", database_url, "--tasks", str(count)],
        cwd=ROOT,
        check=True,
    )


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or os.environ.get("TASKER_DATABASE_URL")
        database_url = database_url or f"sqlite://{tmp}/bench.db"
        if args.seed_tasks:
            seed(database_url, args.seed_tasks)
        tasker_port, bare_port = free_port(), free_port()
        env = tasker_env(database_url, args.broker_url)
        servers = [
            start_tasker(tasker_port, env),
            start_uvicorn("bench.rest_bench:bare_app", bare_port, env, False),
        ]
        try:
            base = f"http://127.0.0.1:{tasker_port}"
            asyncio.run(wait_until_up(f"{base}/tasker/handlers"))
            asyncio.run(wait_until_up(f"http://127.0.0.1:{bare_port}/bare"))
            # Production topology: the tasks run on a separate worker, stopped before the
            # measurement so that only the API server and PostgreSQL share the machine.
            worker = None
            if args.broker_url:
                command = [str(Path(sys.executable).with_name("tasker")), "worker"]
                worker = subprocess.Popen(command, cwd=ROOT, env=env)
            task_id = asyncio.run(create_tasks(base, args.tasks))
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            tasker_pid, bare_pid = (server.pid for server in servers)
            listing = "/tasker/tasks?per_page=25"
            targets = {
                "GET /tasker/tasks/{id}": (tasker_port, f"/tasker/tasks/{task_id}", tasker_pid),
                "GET /tasker/tasks?per_page=25": (tasker_port, listing, tasker_pid),
                "GET /bare (Starlette)": (bare_port, "/bare", bare_pid),
            }
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            with ProcessPoolExecutor(args.processes) as pool:
                for target in targets.values():  # warm-up: imports, caches, connections
                    measure(pool, *target[:2], args, 1.0, target[2])
                for _ in range(args.rounds):  # interleaved, so drift hits every endpoint alike
                    for name, (port, path, pid) in targets.items():
                        results[name].append(measure(pool, port, path, args, args.seconds, pid))
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)
    report(results, args, database_url)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, db: str) -> None:
    backend = "PostgreSQL" if db.startswith(("postgres", "asyncpg")) else "SQLite"
    print(
        f"{backend}, 1 uvicorn worker per app, {args.connections} keep-alive connections over "
        f"{args.processes} load processes, {args.rounds} x {args.seconds:.0f} s per endpoint"
    )
    summary = {}
    for name, runs in results.items():
        rps = sum(r["rps"] for r in runs) / len(runs)
        p50 = sum(r["p50_ms"] for r in runs) / len(runs)
        p99 = max(r["p99_ms"] for r in runs)
        summary[name] = {
            "rps": rps,
            "p50_ms": p50,
            "p99_ms": p99,
            "cpu_us": sorted(r["cpu_us"] for r in runs)[len(runs) // 2],
            "failures": sum(r["failures"] for r in runs),
        }
    floor = summary["GET /bare (Starlette)"]
    single, listing = summary["GET /tasker/tasks/{id}"], summary["GET /tasker/tasks?per_page=25"]
    for name, row in summary.items():
        print(
            f"  {name:32s} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.1f} ms  "
            f"p99 {row['p99_ms']:6.1f} ms  cpu {row['cpu_us']:5.0f} us/req  "
            f"x{row['rps'] / floor['rps']:.2f} of bare req/s, "
            f"p99 x{row['p99_ms'] / floor['p99_ms']:.1f}  failures {row['failures']:.0f}"
        )
    print(
        f"  list / single read latency: p50 x{listing['p50_ms'] / single['p50_ms']:.2f}, "
        f"p99 x{listing['p99_ms'] / single['p99_ms']:.2f}"
    )
    if args.json:
        print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=50, help="tasks created through the API")
    parser.add_argument("--seed-tasks", type=int, default=0, help="bulk history via bench.seed")
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: TASKER_DATABASE_URL, else a temporary SQLite file",
    )
    parser.add_argument(
        "--broker-url",
        help="production mode: the server only serves (no in-process workers), tasks run on a "
        "`tasker worker` on this Redis",
    )
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
