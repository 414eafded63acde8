"""GraphQL read benchmark: GraphQL vs REST reads of the same data, same run, auth on.

Starts `uvicorn --factory server.app:create_app` (one worker process, embedded mode, a fresh
SQLite file or PostgreSQL when --database-url says so) with a JWT secret configured (auth on;
`--no-auth` for open mode), creates `--tasks` process_payment tasks, waits for them to finish,
then drives each endpoint with the same closed loop of N keep-alive connections spread over a
few load-generator processes (the tiny HTTP/1.1 client of bench.rest_bench, so the client is
not what is measured), every request carrying a bearer token:

- `task`: `{ task(id) { id status steps { name status attempts } } }` vs GET /tasker/tasks/{id}
- `tasks`: the tasks connection, 25 tasks with their steps, vs GET /tasker/tasks?per_page=25
- `full`: one task with every field, steps, blocked reasons and dependencies, vs
  GET /tasker/tasks/{id}?include_dependencies=true

Prints requests/s, p50/p99 and server CPU per request for each, and the GraphQL/REST ratios
(target: >= 0.5 with p99 <= 30 ms).

    .venv/bin/python -m bench.graphql_bench --seconds 5 --connections 32
    .venv/bin/python -m bench.graphql_bench --database-url postgres://postgres@127.0.0.1/tasker_gql
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import jwt

from bench.engine_bench import cpu_seconds
from bench.rest_bench import free_port, pct

ROOT = Path(__file__).resolve().parent.parent
SECRET = "graphql-bench-secret-graphql-bench-secret"

TASK_QUERY = "query Task($id: ID!) { task(id: $id) { id status steps { name status attempts } } }"
TASKS_QUERY = """{ tasks(first: 25) { edges { node {
  id status steps { name status attempts } } } } }"""
FULL_QUERY = """query Task($id: ID!) { task(id: $id) {
  id name namespace version fullName status context createdAt updatedAt completedAt
  steps { id name status attempts retryLimit retryable results startedAt completedAt
          nextAttemptAt lastError parents children blockedReason { code message } }
  dependencies { analysis readySteps completedSteps blockedSteps { step reason { code } } } } }"""


def bearer() -> str:
    claims = {"sub": "bench", "permissions": ["*"], "exp": int(time.time()) + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def start_server(database_url: str, port: int, auth: bool) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    env.update(
        TASKER_DATABASE_URL=database_url,
        TASKER_EXAMPLES="true",
        TASKER_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    if auth:
        env["TASKER_JWT_SECRET"] = SECRET
    command = [sys.executable, "-m", "uvicorn", "--factory", "server.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen([*command, "--no-access-log"], cwd=ROOT, env=env)


async def prepare(base: str, headers: dict[str, str], tasks: int) -> str:
    """Create `tasks` tasks, wait for the last, return its id."""
    body = {
        "namespace": "payments",
        "name": "process_payment",
        "version": "2.1.0",
        "context": {"payment_id": 1, "amount": 10.0},
    }
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for _ in range(300):
            try:
                if (await client.get("/tasker/health/live")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        ids = []
        for _ in range(tasks):
            created = await client.post("/tasker/tasks", json=body)
            created.raise_for_status()
            ids.append(str(created.json()["id"]))
        for _ in range(400):
            if (await client.get(f"/tasker/tasks/{ids[-1]}")).json()["status"] == "complete":
                return ids[-1]
            await asyncio.sleep(0.05)
    raise RuntimeError("the tasks did not finish")


# --- the load generator (raw HTTP/1.1 keep-alive, GET or POST) ------------------------------


async def _connection(port: int, request: bytes, deadline: float, out: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
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
            body = await reader.readexactly(length)
            out.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or b'"errors"' in body[:300]:
                failures += 1
    finally:
        writer.close()
    return failures


def _load(port: int, request: bytes, connections: int, seconds: float) -> tuple[list[float], int]:
    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        failures = await asyncio.gather(
            *(_connection(port, request, deadline, latencies) for _ in range(connections))
        )
        return latencies, sum(failures)

    import uvloop

    return uvloop.run(run())


def http_request(method: str, path: str, token: str | None, body: object = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def measure(
    pool: ProcessPoolExecutor, port: int, request: bytes, args: argparse.Namespace, pid: int
) -> dict[str, float]:
    share = [args.connections // args.processes] * args.processes
    share[0] += args.connections - sum(share)
    cpu_before = cpu_seconds(pid)
    began = time.perf_counter()
    n = args.processes
    parts = list(pool.map(_load, [port] * n, [request] * n, share, [args.seconds] * n))
    elapsed = time.perf_counter() - began
    latencies = [x for lat, _ in parts for x in lat]
    return {
        "rps": len(latencies) / elapsed,
        "cpu_us": (cpu_seconds(pid) - cpu_before) / max(1, len(latencies)) * 1e6,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "failures": sum(f for _, f in parts),
    }


def run(args: argparse.Namespace) -> None:
    port = free_port()
    token = None if args.no_auth else bearer()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite://{tmp}/bench.db"
        server = start_server(database_url, port, auth=token is not None)
        try:
            task_id = asyncio.run(prepare(f"http://127.0.0.1:{port}", headers, args.tasks))
            variables = {"id": task_id}
            gql = "/tasker/graphql"
            targets = {
                "task: GraphQL": http_request(
                    "POST", gql, token, {"query": TASK_QUERY, "variables": variables}
                ),
                "task: REST": http_request("GET", f"/tasker/tasks/{task_id}", token),
                "tasks: GraphQL": http_request("POST", gql, token, {"query": TASKS_QUERY}),
                "tasks: REST": http_request("GET", "/tasker/tasks?per_page=25", token),
                "full: GraphQL": http_request(
                    "POST", gql, token, {"query": FULL_QUERY, "variables": variables}
                ),
                "full: REST": http_request(
                    "GET", f"/tasker/tasks/{task_id}?include_dependencies=true", token
                ),
            }
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            with ProcessPoolExecutor(args.processes) as pool:
                quick = argparse.Namespace(**{**vars(args), "seconds": 1.0})
                for request in targets.values():  # warm-up: imports, caches, connections
                    measure(pool, port, request, quick, server.pid)
                for _ in range(args.rounds):  # interleaved, so drift hits every target alike
                    for name, request in targets.items():
                        results[name].append(measure(pool, port, request, args, server.pid))
        finally:
            server.terminate()
            server.wait(10)
    report(results, args, database_url)


def report(
    results: dict[str, list[dict[str, float]]], args: argparse.Namespace, database_url: str
) -> None:
    backend = "PostgreSQL" if database_url.startswith(("postgres", "asyncpg")) else "SQLite"
    print(
        f"{backend}, auth {'off' if args.no_auth else 'on'}, {args.connections} keep-alive "
        f"connections, {args.rounds} x {args.seconds:.0f} s per target, 1 uvicorn worker"
    )
    summary = {}
    for name, runs in results.items():
        row = summary[name] = {
            "rps": sum(r["rps"] for r in runs) / len(runs),
            "p50_ms": sorted(r["p50_ms"] for r in runs)[len(runs) // 2],
            "p99_ms": max(r["p99_ms"] for r in runs),
            "cpu_us": sorted(r["cpu_us"] for r in runs)[len(runs) // 2],
            "failures": sum(r["failures"] for r in runs),
        }
        print(
            f"  {name:16s} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.1f} ms  "
            f"p99 {row['p99_ms']:6.1f} ms  cpu {row['cpu_us']:6.0f} us/req  "
            f"failures {row['failures']:.0f}"
        )
    for shape in ("task", "tasks", "full"):
        graphql, rest = summary[f"{shape}: GraphQL"], summary[f"{shape}: REST"]
        ratio = graphql["rps"] / rest["rps"]
        ok = ratio >= 0.5 and graphql["p99_ms"] <= 30
        print(
            f"  {shape:6s} GraphQL / REST = {ratio:.2f}, GraphQL p99 {graphql['p99_ms']:.1f} ms "
            f"({'meets' if ok else 'MISSES'} >= 0.5 with p99 <= 30 ms)"
        )
    if args.json:
        print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--tasks", type=int, default=30, help="tasks created before measuring")
    parser.add_argument("--no-auth", action="store_true", help="open mode (no JWT secret)")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
