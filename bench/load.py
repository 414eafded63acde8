"""Load and faults against the bench.cluster topology.

N tasks across the example handlers and the five workflow shapes, created by 32 concurrent
clients (half REST, half GraphQL, each round-robining over the server processes and failing
over when one is down), plus idempotent re-submissions (some racing the original on the other
server, the rest later through the other interface). Every create carries an Idempotency-Key,
so a client may safely retry a request whose connection died with a server. GraphQL clients
follow a sample of their tasks over graphql-transport-ws, resuming with `after` = the last
cursor seen when their connection drops.

Faults while tasks are still running (`--faults`): kill -9 of a random worker every 5 s
(restarted 2 s later), one restart of the private Redis, one server killed (kill -9) and
restarted, and a few shapes/linear tasks whose step `d` sleeps 5 s past its 2 s timeout.

Everything the clients saw goes to bench/out/load.json for bench.verify.

    .venv/bin/python -m bench.load --tasks 10000 --faults
"""

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets

from bench.cluster import OUT, Cluster, State

TERMINAL = ("complete", "error", "cancelled", "resolved_manually")
FINAL_EVENT = {"COMPLETE", "ERROR", "CANCELLED", "RESOLVED_MANUALLY"}
RETRYABLE = (httpx.TransportError, httpx.HTTPStatusError)

CREATE = """mutation($input: CreateTaskInput!) { createTask(input: $input) {
  __typename ... on Task { id status } ... on Error { code message } } }"""
FOLLOW = """subscription($id: ID!, $after: String) { taskEvents(id: $id, after: $after) {
  cursor taskId stepName fromStatus toStatus } }"""

# Valid contexts for the example catalogue (server/examples); `i` makes each task distinct.
EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("payments", "process_payment"): lambda i: {
        "payment_id": i,
        "amount": 10.5,
        "currency": "USD",
        "customer_id": i,
    },
    ("payments", "refund_payment"): lambda i: {"payment_id": i, "refund_amount": 5.0},
    ("payments", "validate_card"): lambda i: {
        "card_number": "4111 1111 1111 1111",
        "customer_id": i,
    },
    ("payments", "process_subscription"): lambda i: {"customer_id": i, "plan": "pro"},
    ("payments", "cancel_subscription"): lambda i: {"subscription_id": i},
    ("inventory", "update_stock"): lambda i: {"sku": f"SKU-{i % 50}", "quantity_change": 3},
    ("inventory", "process_order"): lambda i: {
        "order_id": i,
        "items": [{"sku": f"SKU-{i % 50}", "quantity": 2}],
    },
    ("inventory", "check_availability"): lambda i: {"items": [{"sku": f"SKU-{i % 50}"}]},
    ("notifications", "send_email"): lambda i: {"recipient": f"user{i}@example.com"},
    ("notifications", "send_sms"): lambda i: {
        "phone_number": "+15555550100",
        "message": f"hello {i}",
    },
    ("notifications", "push_notification"): lambda i: {"customer_id": i},
    ("notifications", "alert_admin"): lambda i: {"message": f"alert {i}", "severity": "info"},
}
SHAPES = ("linear", "diamond", "tree", "parallel_merge", "mixed")


@dataclass
class Spec:
    """One task to create."""

    index: int
    namespace: str
    name: str
    context: dict[str, Any]
    key: str
    resubmit: str | None = None  # None, "race" or "later"
    follow: bool = False


@dataclass
class Created:
    index: int
    id: str
    via: str
    key: str
    namespace: str
    name: str
    attempts: int
    latency_ms: float
    http_status: int | None = None


@dataclass
class Resubmission:
    key: str
    kind: str
    original_id: str
    via: str
    returned_id: str | None
    http_status: int | None = None
    error: str | None = None


@dataclass
class Follow:
    task_id: str
    via_server: str = ""
    events: int = 0
    cursor: str | None = None
    cursors: list[int] = field(default_factory=list)
    """Every event's cursor, in the order received (the verifier compares it with history)."""
    final: str | None = None
    completed: bool = False
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    gen: int = -1


def plan(
    total: int,
    resubmits: int,
    follow_every: int,
    timeouts: int,
    seed: int,
    steps: dict[tuple[str, str], list[str]],
) -> list[Spec]:
    """The tasks to create: half examples, half shapes, with some failures and timeouts."""
    rng = random.Random(seed)
    examples = sorted(EXAMPLES)
    specs: list[Spec] = []
    timeout_at = set(rng.sample(range(total), min(timeouts, total)))
    for i in range(total):
        key = f"load-{seed}-{i}-{uuid.UUID(int=rng.getrandbits(128))}"
        if i in timeout_at:  # the handler that sleeps past its timeout (step d: 2 s)
            specs.append(
                Spec(i, "shapes", "linear", {"run": i, "sleep": 0.01, "sleeps": {"d": 5}}, key)
            )
            continue
        if i % 2 == 0:
            ns, name = examples[(i // 2) % len(examples)]
            ctx = EXAMPLES[(ns, name)](i)
            roll = rng.random()
            names = steps[(ns, name)]
            if roll < 0.10:  # transient failures: retried with backoff
                ctx["simulate_failures"] = {rng.choice(names): 1}
            elif roll < 0.12:  # permanent failure: the task ends in error
                ctx["simulate_permanent_failure"] = rng.choice(names)
        else:
            ns, name = "shapes", SHAPES[(i // 2) % len(SHAPES)]
            ctx = {"run": i, "sleep": 0.02}
            if rng.random() < 0.05:
                ctx["fail"] = {rng.choice(steps[(ns, name)]): 1}
        specs.append(Spec(i, ns, name, ctx, key))
    chosen = rng.sample(range(total), min(resubmits, total))
    for n, i in enumerate(chosen):
        specs[i].resubmit = "race" if n < len(chosen) // 4 else "later"
    for i, spec in enumerate(specs):
        spec.follow = follow_every > 0 and (i // 2) % follow_every == 0
    return specs


class Servers:
    """Round-robin over the server processes; a failed request moves on to the next one."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.turn = 0

    def next(self) -> str:
        self.turn += 1
        return self.urls[self.turn % len(self.urls)]

    async def request(
        self, call: Callable[[str], Awaitable[httpx.Response]], deadline: float
    ) -> tuple[httpx.Response, int]:
        """Call on the next server until it answers (not 5xx); returns (response, attempts)."""
        attempt = 0
        while True:
            attempt += 1
            base = self.next()
            try:
                resp = await call(base)
                if resp.status_code < 500:
                    return resp, attempt
                err: Exception = RuntimeError(f"{resp.status_code}: {resp.text[:200]}")
            except httpx.TransportError as exc:
                err = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"gave up after {attempt} attempts: {err!r}")
            await asyncio.sleep(min(0.05 * attempt, 1.0))


class Subscriber:
    """One graphql-transport-ws connection per GraphQL client, multiplexing its follows."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.follows: dict[str, Follow] = {}
        self.ws: Any = None
        self.gen = 0
        self.reconnects = 0
        self.closing = False

    def pending(self) -> list[Follow]:
        return [f for f in self.follows.values() if not f.completed]

    async def add(self, task_id: str) -> None:
        self.follows[task_id] = Follow(task_id)
        await self._ensure(self.follows[task_id])

    async def _ensure(self, follow: Follow) -> None:
        ws = self.ws
        if ws is None or follow.completed or follow.gen == self.gen:
            return
        follow.gen = self.gen
        follow.via_server = ws.request.path if hasattr(ws, "request") else ""
        payload = {
            "query": FOLLOW,
            "variables": {"id": follow.task_id, "after": follow.cursor or "0"},
        }
        # If the connection just died, the run loop reconnects and subscribes again.
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(
                json.dumps({"id": follow.task_id, "type": "subscribe", "payload": payload})
            )

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline and not (self.closing and not self.pending()):
            url = self.servers.next().replace("http://", "ws://") + "/tasker/graphql"
            try:
                async with websockets.connect(
                    url, subprotocols=["graphql-transport-ws"], open_timeout=5, max_size=None
                ) as ws:
                    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                    ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if ack.get("type") != "connection_ack":
                        raise RuntimeError(f"no ack: {ack}")
                    self.gen += 1
                    self.ws = ws
                    for follow in list(self.follows.values()):
                        await self._ensure(follow)
                    await self._read(ws, deadline)
            except (OSError, websockets.WebSocketException, TimeoutError, RuntimeError):
                pass
            self.ws = None
            if self.closing and not self.pending():
                return
            self.reconnects += 1
            for follow in self.pending():
                follow.reconnects += 1
            await asyncio.sleep(0.2)

    async def _read(self, ws: Any, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.closing and not self.pending():
                return
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            msg = json.loads(raw)
            kind, sid = msg.get("type"), msg.get("id")
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            follow = self.follows.get(sid or "")
            if follow is None:
                continue
            if kind == "next":
                payload = msg.get("payload") or {}
                if payload.get("errors"):
                    follow.errors.append(json.dumps(payload["errors"])[:300])
                    continue
                event = (payload.get("data") or {}).get("taskEvents") or {}
                follow.events += 1
                follow.cursor = event.get("cursor") or follow.cursor
                if event.get("cursor"):
                    follow.cursors.append(int(event["cursor"]))
                if event.get("stepName") is None and event.get("toStatus") in FINAL_EVENT:
                    follow.final = event["toStatus"].lower()
            elif kind == "complete":
                follow.completed = follow.final is not None
                if not follow.completed:
                    follow.errors.append("complete without a final event")
                    follow.gen = -1
                    await self._ensure(follow)
            elif kind == "error":
                follow.errors.append(json.dumps(msg.get("payload"))[:300])
                follow.completed = True


class Load:
    """The clients, the fault injector and what they observed."""

    def __init__(self, cluster: Cluster, specs: list[Spec], clients: int, deadline: float) -> None:
        self.cluster = cluster
        self.specs = specs
        self.queue = list(reversed(specs))
        self.clients = clients
        self.deadline = deadline
        self.created: list[Created] = []
        self.resubmissions: list[Resubmission] = []
        self.errors: list[str] = []
        self.subscribers: list[Subscriber] = []
        self.later: list[tuple[Created, Spec]] = []
        self.creation_done = asyncio.Event()
        self.finished = asyncio.Event()
        self.max_backends = 0
        self.all_terminal_at: float | None = None

    @staticmethod
    def body(spec: Spec) -> dict[str, Any]:
        return {"namespace": spec.namespace, "name": spec.name, "context": spec.context}

    async def create_rest(
        self, http: httpx.AsyncClient, servers: Servers, spec: Spec
    ) -> tuple[str, int, int]:
        async def call(base: str) -> httpx.Response:
            return await http.post(
                f"{base}/tasker/tasks", json=self.body(spec), headers={"Idempotency-Key": spec.key}
            )

        resp, attempts = await servers.request(call, self.deadline)
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"REST create {resp.status_code}: {resp.text[:300]}")
        return str(resp.json()["id"]), attempts, resp.status_code

    async def create_graphql(
        self, http: httpx.AsyncClient, servers: Servers, spec: Spec
    ) -> tuple[str, int, int]:
        variables = {"input": {**self.body(spec), "idempotencyKey": spec.key}}

        async def call(base: str) -> httpx.Response:
            return await http.post(
                f"{base}/tasker/graphql", json={"query": CREATE, "variables": variables}
            )

        resp, attempts = await servers.request(call, self.deadline)
        data = resp.json()
        result = (data.get("data") or {}).get("createTask") or {}
        if result.get("__typename") != "Task":
            raise RuntimeError(f"GraphQL create: {json.dumps(data)[:300]}")
        return str(result["id"]), attempts, resp.status_code

    async def client(self, n: int) -> None:
        via = "rest" if n < self.clients // 2 else "graphql"
        servers = Servers(self.cluster.server_urls)
        servers.turn = n
        subscriber = None
        sub_task = None
        if via == "graphql":
            subscriber = Subscriber(Servers(self.cluster.server_urls))
            subscriber.servers.turn = n
            self.subscribers.append(subscriber)
            sub_task = asyncio.create_task(subscriber.run(self.deadline))
        create = self.create_rest if via == "rest" else self.create_graphql
        other = self.create_graphql if via == "rest" else self.create_rest
        async with httpx.AsyncClient(timeout=30) as http:
            while self.queue and time.monotonic() < self.deadline:
                spec = self.queue.pop()
                started = time.perf_counter()
                try:
                    if spec.resubmit == "race":  # the same key on both servers at once
                        rival = Servers(self.cluster.server_urls)
                        rival.turn = servers.turn + 1
                        first, second = await asyncio.gather(
                            create(http, servers, spec), other(http, rival, spec)
                        )
                        task_id, attempts, status = first
                        self.resubmissions.append(
                            Resubmission(
                                spec.key,
                                "race",
                                task_id,
                                "graphql" if via == "rest" else "rest",
                                second[0],
                                second[2],
                            )
                        )
                    else:
                        task_id, attempts, status = await create(http, servers, spec)
                except Exception as exc:
                    self.errors.append(f"create {spec.index} via {via}: {exc}")
                    continue
                made = Created(
                    spec.index,
                    task_id,
                    via,
                    spec.key,
                    spec.namespace,
                    spec.name,
                    attempts,
                    (time.perf_counter() - started) * 1000,
                    status,
                )
                self.created.append(made)
                if spec.resubmit == "later":
                    self.later.append((made, spec))
                if subscriber is not None and spec.follow:
                    await subscriber.add(task_id)
        if subscriber is not None and sub_task is not None:
            await self.finished.wait()
            subscriber.closing = True
            grace = time.monotonic() + 30
            while subscriber.pending() and time.monotonic() < min(grace, self.deadline):
                await asyncio.sleep(0.2)
            sub_task.cancel()

    async def resubmitter(self) -> None:
        """Re-send 'later' keys through the other interface, a few seconds after creation."""
        servers = Servers(self.cluster.server_urls)
        async with httpx.AsyncClient(timeout=30) as http:
            while not (self.creation_done.is_set() and not self.later):
                if not self.later:
                    await asyncio.sleep(0.2)
                    continue
                made, spec = self.later.pop(0)
                call = self.create_graphql if made.via == "rest" else self.create_rest
                try:
                    task_id, _, status = await call(http, servers, spec)
                    self.resubmissions.append(
                        Resubmission(
                            spec.key,
                            "later",
                            made.id,
                            "graphql" if made.via == "rest" else "rest",
                            task_id,
                            status,
                        )
                    )
                except Exception as exc:
                    self.resubmissions.append(
                        Resubmission(spec.key, "later", made.id, "?", None, None, str(exc)[:300])
                    )

    async def faults(
        self,
        kill_every: float,
        redis_at: float,
        server_at: float,
        redis_down: float = 1.0,
        faults_for: float = float("inf"),
    ) -> None:
        """kill -9 a random worker every `kill_every` s (back after 2 s); Redis and a server
        once each, at those offsets — until every task is terminal, or `faults_for` s."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        rng = random.Random(7)
        redis_done = server_done = False
        while not self.finished.is_set() and time.monotonic() < self.deadline:
            await asyncio.sleep(kill_every)
            if self.finished.is_set() or loop.time() - began >= faults_for:
                break
            index = rng.randrange(len(self.cluster.state.workers))
            await asyncio.to_thread(self.cluster.kill_worker, index)
            elapsed = loop.time() - began
            if not redis_done and elapsed >= redis_at:
                redis_done = True
                await asyncio.to_thread(self.cluster.restart_redis, redis_down)
            if not server_done and elapsed >= server_at:
                server_done = True
                victim = rng.randrange(len(self.cluster.state.servers))
                await asyncio.to_thread(self.cluster.kill_server, victim)
                await asyncio.sleep(2)
                await asyncio.to_thread(self.cluster.restart_server, victim, False)
            else:
                await asyncio.sleep(2)
            await asyncio.to_thread(self.cluster.restart_worker, index)

    async def monitor(self, expected: int) -> dict[str, Any]:
        """Poll the database until every created task is terminal (or the deadline)."""
        conn = await asyncpg.connect(self.cluster.state.database_url)
        began = time.monotonic()
        last = ""
        try:
            while time.monotonic() < self.deadline:
                row = await conn.fetchrow(
                    "SELECT count(*) AS total, count(*) FILTER (WHERE status = ANY($1)) AS done, "
                    "(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()) "
                    "AS backends FROM tasker_tasks",
                    list(TERMINAL),
                )
                self.max_backends = max(self.max_backends, row["backends"])
                line = (
                    f"  {time.monotonic() - began:6.1f}s created {len(self.created):>6} "
                    f"terminal {row['done']:>6}/{expected}"
                )
                if line.split("s ", 1)[1] != last:
                    print(line, flush=True)
                    last = line.split("s ", 1)[1]
                if self.creation_done.is_set() and row["done"] >= row["total"]:
                    self.all_terminal_at = time.time()
                    break
                await asyncio.sleep(2)
        finally:
            await conn.close()
        self.finished.set()
        return {"seconds_to_terminal": time.monotonic() - began}

    async def run(
        self,
        faults: bool,
        kill_every: float,
        redis_at: float,
        server_at: float,
        redis_down: float,
        faults_for: float = float("inf"),
    ) -> dict[str, Any]:
        began = time.monotonic()
        clients = [asyncio.create_task(self.client(n)) for n in range(self.clients)]
        resub = asyncio.create_task(self.resubmitter())
        fault_task = (
            asyncio.create_task(
                self.faults(kill_every, redis_at, server_at, redis_down, faults_for)
            )
            if faults
            else None
        )
        monitor = asyncio.create_task(self.monitor(len(self.specs)))

        async def creation() -> None:
            while self.queue and time.monotonic() < self.deadline:
                await asyncio.sleep(0.2)
            # Every popped spec has either been recorded or failed once the clients are idle.
            while (
                len(self.created) + len(self.errors) < len(self.specs)
                and time.monotonic() < self.deadline
            ):
                await asyncio.sleep(0.2)
            self.creation_done.set()

        await creation()
        created_s = time.monotonic() - began
        await resub
        await monitor
        if fault_task is not None:
            await fault_task
        await asyncio.gather(*clients)
        return {"created_seconds": created_s, "total_seconds": time.monotonic() - began}


async def step_names(urls: list[str]) -> dict[tuple[str, str], list[str]]:
    """Step names of every handler the load uses, from the server's catalogue."""
    out: dict[tuple[str, str], list[str]] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for ns, name in [*EXAMPLES, *(("shapes", s) for s in SHAPES)]:
            q = (
                "query($ns: String!, $n: String!) { handler(namespace: $ns, name: $n) "
                "{ stepTemplates { name } } }"
            )
            resp = await http.post(
                f"{urls[0]}/tasker/graphql", json={"query": q, "variables": {"ns": ns, "n": name}}
            )
            out[(ns, name)] = [s["name"] for s in resp.json()["data"]["handler"]["stepTemplates"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--resubmit", type=int, default=200)
    parser.add_argument(
        "--follow-every",
        type=int,
        default=5,
        help="GraphQL clients follow every Nth task they create",
    )
    parser.add_argument(
        "--timeouts",
        type=int,
        default=10,
        help="shapes/linear tasks whose step d sleeps past its timeout",
    )
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--redis-at", type=float, default=20.0)
    parser.add_argument("--redis-down", type=float, default=1.0, help="seconds Redis is down")
    parser.add_argument("--server-at", type=float, default=40.0)
    parser.add_argument(
        "--faults-for",
        type=float,
        default=float("inf"),
        help="stop injecting faults after this many seconds (default: until all terminal)",
    )
    parser.add_argument("--deadline", type=float, default=1200, help="give up after (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT / "load.json")
    args = parser.parse_args()

    cluster = Cluster(State.load())
    specs_steps = asyncio.run(step_names(cluster.server_urls))
    specs = plan(
        args.tasks, args.resubmit, args.follow_every, args.timeouts, args.seed, specs_steps
    )
    load = Load(cluster, specs, args.clients, time.monotonic() + args.deadline)
    started = time.time()
    print(f"{args.tasks} tasks, {args.clients} clients, faults {'on' if args.faults else 'off'}")
    timing = asyncio.run(
        load.run(
            args.faults,
            args.kill_every,
            args.redis_at,
            args.server_at,
            args.redis_down,
            args.faults_for,
        )
    )
    follows = [asdict(f) for s in load.subscribers for f in s.follows.values()]
    latencies = sorted(c.latency_ms for c in load.created) or [0.0]
    result = {
        "started_at": started,
        "finished_at": time.time(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "database_url": cluster.state.database_url,
        "timing": timing,
        "planned": len(specs),
        "created": [asdict(c) for c in load.created],
        "resubmissions": [asdict(r) for r in load.resubmissions],
        "follows": follows,
        "subscriber_reconnects": sum(s.reconnects for s in load.subscribers),
        "errors": load.errors,
        "faults": [e for e in State.load().events if e["at"] >= started],
        "create_latency_ms": {
            "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "max": latencies[-1],
        },
        "create_retries": sum(c.attempts - 1 for c in load.created),
        "max_postgres_backends": load.max_backends,
    }
    # Recovery: how long after the last fault (a kill, a stop) every task was terminal, as the
    # monitor saw it (it polls every 2 s).
    hits = [e["at"] for e in result["faults"] if e["what"].startswith(("kill", "stop"))]
    if hits and load.all_terminal_at is not None:
        result["terminal_after_last_fault_s"] = load.all_terminal_at - max(hits)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"created {len(load.created)}/{len(specs)} in {timing['created_seconds']:.1f}s; "
        f"all terminal after {timing['total_seconds']:.1f}s; "
        f"create p50 {result['create_latency_ms']['p50']:.1f} ms "
        f"p99 {result['create_latency_ms']['p99']:.1f} ms; "
        f"client retries {result['create_retries']}; errors {len(load.errors)}; "
        f"faults {len(result['faults'])}; follows {len(follows)}; "
        f"max PostgreSQL backends {load.max_backends}"
    )
    if "terminal_after_last_fault_s" in result:
        print(
            f"every task terminal {result['terminal_after_last_fault_s']:.1f}s after the last fault"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
