"""CPU per request of the GraphQL and REST reads, in process: the server's own work, alone.

bench.graphql_bench measures through HTTP with 32 connections, which on a shared 2-core
machine mostly measures the neighbours. This drives the ASGI app directly (no socket, one
request at a time, auth on, embedded SQLite, the examples loaded, 30 finished tasks) and
reports the event-loop thread's CPU time per request (`time.thread_time`), the lowest of
`--reps` runs of `--requests` requests, for the same six reads as bench.graphql_bench.

`--root` runs another checkout's code (e.g. `git archive main | tar -x -C /tmp/main`), so two
trees are compared in one session with the same interpreter and packages:

    .venv/bin/python -m bench.graphql_cpu
    .venv/bin/python -m bench.graphql_cpu --root /tmp/main
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

SECRET = "graphql-bench-secret-graphql-bench-secret"
CREATE = {
    "namespace": "payments",
    "name": "process_payment",
    "version": "2.1.0",
    "context": {"payment_id": 1, "amount": 10.0},
}


async def call(app: Any, token: str, method: str, path: str, body: object = None) -> bytes:
    """One request through the ASGI app; returns the body (asserting a 2xx)."""
    raw = json.dumps(body).encode() if body is not None else b""
    path, _, query = path.partition("?")
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    assert messages[0]["status"] < 300, messages
    return b"".join(m.get("body", b"") for m in messages[1:])


async def run(args: argparse.Namespace) -> None:
    import jwt

    from bench.graphql_bench import FULL_QUERY, TASK_QUERY, TASKS_QUERY
    from server.app import create_app

    claims = {"sub": "bench", "permissions": ["*"], "exp": int(time.time()) + 3600}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    app = create_app()
    async with app.router.lifespan_context(app):
        ids = [json.loads(await call(app, token, "POST", "/tasker/tasks", CREATE))["id"]]
        ids += [
            json.loads(await call(app, token, "POST", "/tasker/tasks", CREATE))["id"]
            for _ in range(29)
        ]
        for _ in range(400):
            read = await call(app, token, "GET", f"/tasker/tasks/{ids[-1]}")
            if json.loads(read)["status"] == "complete":
                break
            await asyncio.sleep(0.05)
        task = ids[-1]
        gql = "/tasker/graphql"
        targets: dict[str, tuple[str, str, object]] = {
            "task: GraphQL": ("POST", gql, {"query": TASK_QUERY, "variables": {"id": task}}),
            "task: REST": ("GET", f"/tasker/tasks/{task}", None),
            "tasks: GraphQL": ("POST", gql, {"query": TASKS_QUERY}),
            "tasks: REST": ("GET", "/tasker/tasks?per_page=25", None),
            "full: GraphQL": ("POST", gql, {"query": FULL_QUERY, "variables": {"id": task}}),
            "full: REST": ("GET", f"/tasker/tasks/{task}?include_dependencies=true", None),
        }
        cpu: dict[str, list[float]] = {name: [] for name in targets}
        for name, request in targets.items():  # warm-up: caches, imports
            body = await call(app, token, *request)
            assert b'"errors"' not in body[:300], (name, body[:300])
        for _ in range(args.reps):  # interleaved, so drift hits every target alike
            for name, request in targets.items():
                began = time.thread_time()
                for _ in range(args.requests):
                    await call(app, token, *request)
                cpu[name].append((time.thread_time() - began) / args.requests * 1e6)
    print(f"code: {args.root or 'this checkout'}; event-loop CPU per request, min of {args.reps}")
    for shape in ("task", "tasks", "full"):
        graphql, rest = min(cpu[f"{shape}: GraphQL"]), min(cpu[f"{shape}: REST"])
        print(f"  {shape:6s} GraphQL {graphql:7.0f} us  REST {rest:6.0f} us  x{graphql / rest:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--root", help="another checkout whose code to measure")
    args = parser.parse_args()
    if args.root:
        sys.path.insert(0, os.path.abspath(args.root))
    folder = tempfile.mkdtemp()
    os.environ.update(
        TASKER_DATABASE_URL=f"sqlite://{folder}/bench.db",
        TASKER_EXAMPLES="true",
        TASKER_LOG_LEVEL="WARNING",
        TASKER_JWT_SECRET=SECRET,
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
