"""GraphQL read benchmark: one task with its steps, GraphQL vs REST, same run.

Starts `uvicorn --factory server.app:create_app` (one worker process, embedded mode, a fresh
SQLite file or PostgreSQL when --database-url says so), creates a process_payment task, waits
for it to finish, then drives each endpoint with the same closed loop of concurrent clients:

- GraphQL: POST /tasker/graphql, `task(id) { ...fields, steps { ... blockedReason }, dependencies }`
- REST:    GET /tasker/tasks/{id}?include_dependencies=true (the same data)

Prints requests/s and latency percentiles for each and the GraphQL/REST ratio (target >= 0.5).

    .venv/bin/python -m bench.graphql_bench --seconds 10 --concurrency 16
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

TASK_QUERY = """query Task($id: ID!) { task(id: $id) {
  id name namespace version fullName status context createdAt updatedAt completedAt
  steps { id name status attempts retryLimit retryable results startedAt completedAt
          nextAttemptAt lastError parents children blockedReason { code message } }
  dependencies { analysis readySteps completedSteps blockedSteps { step reason { code } } } } }"""

Request = Callable[[httpx.AsyncClient], Coroutine[Any, Any, httpx.Response]]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    env.update(
        TASKER_DATABASE_URL=database_url,
        TASKER_EXAMPLES="true",
        TASKER_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "server.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )


async def wait_until_up(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            if (await client.get("/tasker/health/live")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


async def finished_task(client: httpx.AsyncClient) -> str:
    created = await client.post(
        "/tasker/tasks",
        json={
            "namespace": "payments",
            "name": "process_payment",
            "version": "2.1.0",
            "context": {"payment_id": 1, "amount": 10.0},
        },
    )
    created.raise_for_status()
    task_id = str(created.json()["id"])
    for _ in range(200):
        body = (await client.get(f"/tasker/tasks/{task_id}")).json()
        if body["status"] in {"complete", "error"}:
            return task_id
        await asyncio.sleep(0.05)
    raise RuntimeError("the task did not finish")


async def drive(
    client: httpx.AsyncClient, request: Request, seconds: float, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await request(client)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or b'"errors"' in response.content[:200]:
                failures += 1

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "requests": len(latencies),
        "failures": failures,
    }


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite://{tmp}/bench.db"
        server = start_server(database_url, port)
        limits = httpx.Limits(max_connections=args.concurrency)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
            ) as client:
                await wait_until_up(client)
                task_id = await finished_task(client)
                payload = {"query": TASK_QUERY, "variables": {"id": task_id}}

                async def graphql(c: httpx.AsyncClient) -> httpx.Response:
                    return await c.post("/tasker/graphql", json=payload)

                async def rest(c: httpx.AsyncClient) -> httpx.Response:
                    return await c.get(
                        f"/tasker/tasks/{task_id}", params={"include_dependencies": "true"}
                    )

                for request in (graphql, rest):  # warm-up: imports, caches, connections
                    await drive(client, request, 1.0, args.concurrency)
                results = {}
                for _ in range(args.rounds):  # alternate, so drift hits both alike
                    for name, request in (("graphql", graphql), ("rest", rest)):
                        got = await drive(client, request, args.seconds, args.concurrency)
                        results.setdefault(name, []).append(got)
        finally:
            server.terminate()
            server.wait(10)
    report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print(
        f"one task with 4 steps, {args.concurrency} concurrent clients, "
        f"{args.rounds} x {args.seconds:.0f} s per endpoint, 1 uvicorn worker"
    )
    summary = {}
    for name, runs in results.items():
        rps = sum(r["rps"] for r in runs) / len(runs)
        summary[name] = rps
        p50 = sum(r["p50_ms"] for r in runs) / len(runs)
        p99 = max(r["p99_ms"] for r in runs)
        failures = sum(r["failures"] for r in runs)
        print(
            f"  {name:8s} {rps:8.1f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
            f"failures {failures}"
        )
    ratio = summary["graphql"] / summary["rest"]
    verdict = "meets" if ratio >= 0.5 else "MISSES"
    print(f"  GraphQL / REST = {ratio:.2f} ({verdict} the >= 0.5 target)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
