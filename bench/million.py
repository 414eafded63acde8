"""A million tasks: seed them with their history, then measure against an empty database.

`seed` writes 1,000,000 tasks, 4,000,000 steps, 3,000,000 edges (bench.seed's generator,
COPY) and then their transition history (about 15 per task) with INSERT ... SELECT inside
PostgreSQL, in chunks; readiness counters are set as the engine keeps them. The data spans
30 days ending an hour ago, so every seeded task is finished.

`measure` starts the bench.cluster topology (2 servers, 3 workers, private Redis) on an EMPTY
database and then on the seeded one, in the same run, and measures on each: create-and-
complete latency of new tasks, `GET /tasker/tasks` pages (first, middle, filtered),
`GET /tasker/tasks/{id}`, the GraphQL tasks connection, the sweeper's cost per cycle, analytics
(cold: cache keys deleted first) and a retention batch. Each figure is printed next to the
empty-database figure with the ratio; the target is none above 2x.

    .venv/bin/python -m bench.million seed --tasks 1000000
    .venv/bin/python -m bench.million measure
"""

import argparse
import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from bench import seed as seeder
from bench.cluster import OUT, PG_BASE, Cluster, State

MILLION_DB = "tasker_million"
EMPTY_DB = "tasker_million_empty"
OWN = "bench.million"  # the initiator of the tasks the measurement creates

_STEP_HISTORY = """
INSERT INTO tasker_transitions
       (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
SELECT s.task_id, s.id, s.name, r.from_status, r.to_status, r.reason, r.metadata, r.at
  FROM tasker_workflow_steps s
  JOIN tasker_tasks t ON t.id = s.task_id
 CROSS JOIN LATERAL (
       SELECT 0 AS k, 0 AS ord, NULL::text AS from_status, 'pending'::text AS to_status,
              'created'::text AS reason, '{}'::jsonb AS metadata, s.created_at AS at
       UNION ALL
       SELECT 0, 1, 'pending', 'cancelled', 'task cancelled', '{}'::jsonb,
              COALESCE(t.completed_at, s.created_at)
        WHERE s.status = 'cancelled'
       UNION ALL
       SELECT g.k, m.ord, m.from_status, m.to_status, m.reason, m.metadata, m.at
         FROM generate_series(1, s.attempts) AS g(k)
        CROSS JOIN LATERAL (SELECT s.dispatched_at
                + (COALESCE(s.started_at, s.next_attempt_at, s.dispatched_at) - s.dispatched_at)
                * ((g.k - 1)::float8 / GREATEST(s.attempts - 1, 1)) AS at0) tk
        CROSS JOIN LATERAL (VALUES
              (1, 'error', 'pending', 'retry due', jsonb_build_object('attempt', g.k),
               tk.at0, g.k > 1),
              (2, 'pending', 'in_progress', 'claimed',
               jsonb_build_object('attempt', g.k, 'worker', 'seed'), tk.at0, true),
              (3, 'in_progress', 'error', 'retry scheduled',
               jsonb_build_object('attempt', g.k, 'error', s.last_error,
                                  'error_class', s.error_class),
               tk.at0 + interval '1 millisecond',
               g.k < s.attempts OR (s.status = 'error' AND s.next_attempt_at IS NOT NULL)),
              (4, 'in_progress', 'error', 'failed',
               jsonb_build_object('attempt', g.k, 'error', s.last_error,
                                  'error_class', s.error_class),
               s.completed_at,
               g.k = s.attempts AND s.status = 'error' AND s.next_attempt_at IS NULL),
              (5, 'in_progress', 'complete', 'completed', jsonb_build_object('attempt', g.k),
               s.completed_at, g.k = s.attempts AND s.status = 'complete')
        ) AS m(ord, from_status, to_status, reason, metadata, at, keep)
        WHERE m.keep
 ) r
 WHERE s.id BETWEEN $1 AND $2
 ORDER BY s.id, r.k, r.ord
"""

_TASK_HISTORY = """
INSERT INTO tasker_transitions
       (task_id, step_id, step_name, from_status, to_status, reason, metadata, created_at)
SELECT t.id, NULL, NULL, m.from_status, m.to_status, m.reason, '{}'::jsonb, m.at
  FROM tasker_tasks t
  LEFT JOIN LATERAL (SELECT min(s.dispatched_at) AS began FROM tasker_workflow_steps s
                      WHERE s.task_id = t.id AND s.attempts > 0) b ON true
 CROSS JOIN LATERAL (VALUES
       (1, NULL, 'pending', 'created', t.created_at, true),
       (2, 'pending', 'in_progress', 'step started', b.began, b.began IS NOT NULL),
       (3, CASE WHEN b.began IS NULL THEN 'pending' ELSE 'in_progress' END, t.status,
        CASE t.status WHEN 'complete' THEN 'all steps done' WHEN 'error' THEN 'step failed'
                      ELSE 'cancelled' END,
        t.completed_at, t.status IN ('complete', 'error', 'cancelled'))
 ) AS m(ord, from_status, to_status, reason, at, keep)
 WHERE m.keep AND t.created_at >= $1 AND t.created_at < $2
 ORDER BY t.created_at, t.id, m.ord
"""

# The counters the engine keeps (migration 1): parents not done, steps not done.
_COUNTERS = """
UPDATE tasker_workflow_steps c SET waiting_on = 1
  FROM tasker_step_edges e JOIN tasker_workflow_steps p ON p.id = e.from_step_id
 WHERE e.to_step_id = c.id AND p.status NOT IN ('complete', 'resolved_manually');
UPDATE tasker_tasks t SET remaining = x.n
  FROM (SELECT task_id, count(*) AS n FROM tasker_workflow_steps
         WHERE status NOT IN ('complete', 'resolved_manually') GROUP BY task_id) x
 WHERE t.id = x.task_id;
"""


async def seed(tasks: int, batch: int, chunk: int) -> dict[str, float]:
    """Seed MILLION_DB from scratch; returns timings."""
    url = f"{PG_BASE}/{MILLION_DB}"
    admin = await asyncpg.connect(f"{PG_BASE}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{MILLION_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{MILLION_DB}"')
    finally:
        await admin.close()
    out: dict[str, float] = {}
    began = time.monotonic()
    await seeder.apply_migrations(url)
    conn = await asyncpg.connect(url)
    try:
        # Bulk load: the rows are consistent by construction (bench.verify checks them), so
        # skip the per-row foreign-key triggers, and build the history indexes once at the end.
        await conn.execute("SET session_replication_role = replica")
        history_indexes = [
            r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasker_transitions'"
                " AND indexname <> 'tasker_transitions_pkey'"
            )
        ]
        for definition in history_indexes:
            name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
            await conn.execute(f"DROP INDEX {name}")
        handler_ids = await seeder._pg_handlers(conn)
        # Thirty days ending an hour ago: every seeded task has finished.
        now = datetime.now(UTC) - timedelta(hours=1)
        gen = seeder.Generator(handler_ids, days=30, now=now, seed=42, first_step_id=1)
        for i, rows in enumerate(gen.batches(tasks, batch)):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "tasker_tasks", records=rows.tasks, columns=seeder.TASK_COLUMNS
                )
                await conn.copy_records_to_table(
                    "tasker_workflow_steps", records=rows.steps, columns=seeder.STEP_COLUMNS
                )
                await conn.copy_records_to_table(
                    "tasker_step_edges", records=rows.edges, columns=seeder.EDGE_COLUMNS
                )
            if (i + 1) % 10 == 0 or (i + 1) * batch >= tasks:
                print(
                    f"  tasks {min((i + 1) * batch, tasks):>9}  {time.monotonic() - began:6.1f}s",
                    flush=True,
                )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('tasker_workflow_steps', 'id'),"
            " (SELECT MAX(id) FROM tasker_workflow_steps))"
        )
        out["tasks_steps_edges_s"] = time.monotonic() - began
        # A few seeded tasks may still have been running at `now`: finish them as cancelled.
        await conn.execute(
            """
            UPDATE tasker_workflow_steps s SET status = 'cancelled', lease_owner = NULL
              FROM tasker_tasks t WHERE t.id = s.task_id
               AND t.status IN ('pending', 'in_progress')
               AND s.status NOT IN ('complete', 'error');
            UPDATE tasker_tasks SET status = 'cancelled', completed_at = $1
             WHERE status IN ('pending', 'in_progress');""".replace("$1", f"'{now.isoformat()}'")
        )
        await conn.execute(_COUNTERS)
        out["counters_s"] = time.monotonic() - began - out["tasks_steps_edges_s"]
        t0 = time.monotonic()
        last = await conn.fetchval("SELECT max(id) FROM tasker_workflow_steps")
        for lo in range(1, last + 1, chunk):
            await conn.execute(_STEP_HISTORY, lo, lo + chunk - 1)
            print(
                f"  step history to step {min(lo + chunk - 1, last):>9}  "
                f"{time.monotonic() - began:6.1f}s",
                flush=True,
            )
        first = await conn.fetchval("SELECT min(created_at) FROM tasker_tasks")
        day = timedelta(days=3)
        cursor = first
        while cursor <= now:
            await conn.execute(_TASK_HISTORY, cursor, cursor + day)
            cursor += day
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for definition in history_indexes:
            await conn.execute(definition)
        out["history_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        for table in (
            "tasker_tasks",
            "tasker_workflow_steps",
            "tasker_step_edges",
            "tasker_transitions",
        ):
            await conn.execute(f"VACUUM ANALYZE {table}")
        out["vacuum_analyze_s"] = time.monotonic() - t0
        out["total_s"] = time.monotonic() - began
        for table in (
            "tasker_tasks",
            "tasker_workflow_steps",
            "tasker_step_edges",
            "tasker_transitions",
        ):
            out[f"rows_{table}"] = float(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        out["database_size_gb"] = float(
            await conn.fetchval("SELECT pg_database_size(current_database()) / 1e9")
        )
    finally:
        await conn.close()
    return out


# -- measuring ---------------------------------------------------------------------------------

GQL_TASKS = """query($first: Int!, $after: String, $ns: String, $status: TaskStatus) {
  tasks(first: $first, after: $after, namespace: $ns, status: $status) {
    totalCount edges { cursor node { id status fullName createdAt } }
    pageInfo { hasNextPage endCursor } } }"""


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def measure_one(cluster: Cluster, label: str, repeat: int) -> dict[str, float]:
    """Every figure on the cluster's database (ms, median of `repeat` unless said)."""
    figures: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=cluster.server_urls[0], timeout=120) as http:
        figures.update(await create_and_complete(http, repeat))
        figures.update(await rest_reads(http, cluster.state.database_url, repeat))
        figures.update(await graphql_reads(http, repeat))
        figures.update(await analytics(http, cluster.state.broker_url, repeat))
    figures.update(await sweeper_cost(cluster.state.database_url, repeat))
    figures.update(await analytics_in_process(cluster.state.database_url, repeat))
    print(f"  {label}: done", flush=True)
    return figures


async def ok(resp: httpx.Response) -> Any:
    resp.raise_for_status()
    return resp.json()


async def create_and_complete(http: httpx.AsyncClient, repeat: int) -> dict[str, float]:
    """New 4-step tasks one at a time: REST create, then poll GET until it is complete."""
    latencies: list[float] = []
    for i in range(repeat):
        t0 = time.perf_counter()
        task = await ok(
            await http.post(
                "/tasker/tasks",
                json={
                    "namespace": "payments",
                    "name": "process_payment",
                    "context": {"payment_id": i, "amount": 5.0},
                    "initiator": OWN,
                },
            )
        )
        while (await ok(await http.get(f"/tasker/tasks/{task['id']}")))["status"] not in (
            "complete",
            "error",
        ):
            await asyncio.sleep(0.005)
        latencies.append((time.perf_counter() - t0) * 1000)
    return {"create -> complete, 4-step task (ms)": p50(latencies)}


def getter(http: httpx.AsyncClient, path: str) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await ok(await http.get(path))

    return call


async def rest_reads(http: httpx.AsyncClient, url: str, repeat: int) -> dict[str, float]:
    """REST list pages (first, middle, filtered) and single tasks."""
    total = (await ok(await http.get("/tasker/tasks?per_page=25")))["pagination"]["total_count"]
    middle = max(1, (total // 25) // 2)
    figures = {"tasks in the database": float(total)}
    for label, query in (
        ("GET /tasks first page (ms)", "per_page=25"),
        ("GET /tasks middle page (ms)", f"per_page=25&page={middle}"),
        ("GET /tasks filtered ns+status (ms)", "namespace=payments&status=error&per_page=25"),
        ("GET /tasks filtered ns+version (ms)", "namespace=payments&version=2.1.0&per_page=25"),
    ):
        figures[label] = p50(await timed(getter(http, f"/tasker/tasks?{query}"), repeat))
    pg = await asyncpg.connect(url)
    try:
        ids = [
            str(r["id"])
            for r in await pg.fetch("SELECT id FROM tasker_tasks TABLESAMPLE SYSTEM (1) LIMIT 200")
        ]
        if len(ids) < 20:
            ids = [str(r["id"]) for r in await pg.fetch("SELECT id FROM tasker_tasks LIMIT 200")]
    finally:
        await pg.close()
    rng = random.Random(3)

    async def show(suffix: str = "") -> Any:
        return await ok(await http.get(f"/tasker/tasks/{rng.choice(ids)}{suffix}"))

    figures["GET /tasks/{id} (ms)"] = p50(await timed(show, repeat))
    figures["GET /tasks/{id}?include_dependencies (ms)"] = p50(
        await timed(lambda: show("?include_dependencies=true"), repeat)
    )
    return figures


async def graphql_reads(http: httpx.AsyncClient, repeat: int) -> dict[str, float]:
    """The GraphQL tasks connection: first page, the next one, filtered."""

    async def gql(variables: dict[str, Any]) -> Any:
        data = await ok(
            await http.post("/tasker/graphql", json={"query": GQL_TASKS, "variables": variables})
        )
        if data.get("errors"):
            raise RuntimeError(data["errors"])
        return data["data"]["tasks"]

    after = (await gql({"first": 25}))["pageInfo"]["endCursor"]
    return {
        "GraphQL tasks(first: 25) (ms)": p50(await timed(lambda: gql({"first": 25}), repeat)),
        "GraphQL tasks(first: 25, after) (ms)": p50(
            await timed(lambda: gql({"first": 25, "after": after}), repeat)
        ),
        "GraphQL tasks filtered ns+status (ms)": p50(
            await timed(lambda: gql({"first": 25, "ns": "payments", "status": "ERROR"}), repeat)
        ),
        # The empty database's tasks all complete, so the ERROR filter above renders no edges
        # there and 25 here; this one renders 25 on both sides.
        "GraphQL tasks filtered ns+status, 25 both (ms)": p50(
            await timed(lambda: gql({"first": 25, "ns": "payments", "status": "COMPLETE"}), repeat)
        ),
    }


async def analytics(http: httpx.AsyncClient, broker_url: str, repeat: int) -> dict[str, float]:
    """Analytics cold (the cache keys deleted before each call) and warm."""
    cache = aioredis.Redis.from_url(broker_url)

    def cold(path: str) -> Callable[[], Awaitable[Any]]:
        async def call() -> Any:
            keys = [k async for k in cache.scan_iter("tasker:cache:*")]
            if keys:
                await cache.delete(*keys)
            return await ok(await http.get(path))

        return call

    n = max(3, repeat // 5)
    try:
        return {
            "analytics/performance cold (ms)": p50(
                await timed(cold("/tasker/analytics/performance"), n)
            ),
            "analytics/bottlenecks cold (ms)": p50(
                await timed(cold("/tasker/analytics/bottlenecks"), n)
            ),
            "analytics/performance warm (ms)": p50(
                await timed(getter(http, "/tasker/analytics/performance"), repeat)
            ),
        }
    finally:
        await cache.aclose()


async def analytics_in_process(url: str, repeat: int) -> dict[str, float]:
    """Cold reports in this process, without HTTP: from a fresh service each time, which has
    read nothing of the rolled blocks yet (a server's first report, or its first after the
    hour turns), and from one service that keeps what it read (every other cache miss)."""
    from server.db.setup import close_database, open_database
    from server.infra.cache import MemoryCache
    from server.infra.ports import SystemClock
    from server.services.analytics import AnalyticsService

    clock = SystemClock()

    def service() -> AnalyticsService:
        return AnalyticsService(MemoryCache(clock), clock, default_timeout=30.0)

    async def first(report: str) -> None:
        await getattr(service(), report)()

    kept = service()

    async def again(report: str) -> None:
        kept.cache = MemoryCache(clock)
        await getattr(kept, report)()

    await open_database(url, migrate=False)
    try:
        n = max(3, repeat // 5)
        figures: dict[str, float] = {}
        for report in ("performance", "bottlenecks"):
            figures[f"in-process {report}, nothing read yet (ms)"] = p50(
                await timed(partial(first, report), n)
            )
            await again(report)
            figures[f"in-process {report}, blocks kept (ms)"] = p50(
                await timed(partial(again, report), n)
            )
        return figures
    finally:
        await close_database()


async def sweeper_cost(url: str, repeat: int) -> dict[str, float]:
    from server.config import Settings
    from server.container import build_services
    from server.infra.ports import NullDispatcher

    settings = Settings(database_url=url, examples=True, db_pool_max=2)
    services = build_services(settings, NullDispatcher())
    await services.open(migrate=False)
    try:
        sweeper = services.sweeper
        parts: dict[str, list[float]] = {"reap": [], "redispatch": [], "finalize": [], "cycle": []}
        for _ in range(repeat):
            t0 = time.perf_counter()
            await sweeper.reap_expired_leases()
            t1 = time.perf_counter()
            await sweeper.redispatch_idle()
            t2 = time.perf_counter()
            await sweeper.finalize_stuck()
            t3 = time.perf_counter()
            parts["reap"].append((t1 - t0) * 1000)
            parts["redispatch"].append((t2 - t1) * 1000)
            parts["finalize"].append((t3 - t2) * 1000)
            parts["cycle"].append((t3 - t0) * 1000)
        return {
            "sweeper cycle (ms)": p50(parts["cycle"]),
            "  of which reap expired leases (ms)": p50(parts["reap"]),
            "  of which re-dispatch idle (ms)": p50(parts["redispatch"]),
            "  of which finalize stuck (ms)": p50(parts["finalize"]),
        }
    finally:
        await services.close()


async def retention_batch(url: str, backdate: bool) -> dict[str, float]:
    """One `tasker prune` batch (up to 1000 tasks older than 29 days), timed per task deleted.

    The empty database has nothing that old: with `backdate` the tasks the measurement just
    finished are dated 40 days back first, so both sides delete something and the figure
    compared is the cost per deleted task.
    """
    from tortoise import Tortoise

    from server.db.setup import close_database, open_database
    from server.infra.ports import SystemClock
    from server.services.retention import prune_finished

    await open_database(url, migrate=False)
    try:
        if backdate:
            await Tortoise.get_connection("default").execute_query(
                "UPDATE tasker_tasks SET completed_at = now() - interval '40 days' "
                "WHERE completed_at IS NOT NULL AND status = 'complete'"
            )
        t0 = time.perf_counter()
        deleted = await prune_finished(
            SystemClock(), older_than=timedelta(days=29), batch=1000, max_batches=1
        )
        elapsed = (time.perf_counter() - t0) * 1000
        return {
            "prune: one batch, per task deleted (ms)": elapsed / max(deleted, 1),
            "prune: tasks deleted": float(deleted),
        }
    finally:
        await close_database()


async def forget_own_tasks(url: str) -> None:
    """Delete the tasks earlier rounds created on the seeded database (the empty one is
    reset instead), so that every round of both sides starts with the same live hour: kept,
    they piled up in the hour the analytics read live, and the million side's reports read
    five rounds' steps against the empty side's one."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM tasker_tasks WHERE initiator = $1", OWN)
    finally:
        await conn.close()


def run_on(database: str, reset: bool, repeat: int, prune: bool) -> dict[str, float]:
    if not reset:
        asyncio.run(forget_own_tasks(f"{PG_BASE}/{database}"))
    cluster = Cluster.start(
        database=database, reset=reset, servers=2, workers=3, threads=8, ttl=1200
    )
    try:
        time.sleep(3)  # workers up, catalogue synced
        figures = asyncio.run(measure_one(cluster, database, repeat))
    finally:
        cluster.stop()
    if prune:
        figures.update(asyncio.run(retention_batch(f"{PG_BASE}/{database}", backdate=reset)))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--tasks", type=int, default=1_000_000)
    s.add_argument("--batch", type=int, default=20_000)
    s.add_argument("--chunk", type=int, default=500_000, help="steps per history statement")
    m = sub.add_parser("measure")
    m.add_argument("--repeat", type=int, default=30)
    m.add_argument("--rounds", type=int, default=1, help="alternate the databases this often")
    m.add_argument("--no-prune", action="store_true")
    m.add_argument("--out", type=Path, default=OUT / "million.json")
    args = parser.parse_args()
    if args.command == "seed":
        out = asyncio.run(seed(args.tasks, args.batch, args.chunk))
        for k, v in out.items():
            print(f"{k:<40} {v:,.1f}")
        OUT.mkdir(parents=True, exist_ok=True)  # a fresh clone has no bench/out yet
        (OUT / "million-seed.json").write_text(json.dumps(out, indent=1))
        return
    if Path(OUT / "pids.json").exists():
        state = State.load()
        if state.events and state.events[-1]["what"] != "stopped":
            raise SystemExit("a cluster is running; stop it first")
    # Rounds alternate the two databases, so that the drift of a shared 2-core machine (other
    # tenants, PostgreSQL's background work) reaches both sides alike; each side's figure is
    # the median of its rounds, and the spread of the per-round ratios is printed beside it.
    empties: list[dict[str, float]] = []
    fulls: list[dict[str, float]] = []
    for i in range(args.rounds):
        print(f"round {i + 1} of {args.rounds}", flush=True)
        empties.append(run_on(EMPTY_DB, True, args.repeat, not args.no_prune))
        fulls.append(run_on(MILLION_DB, False, args.repeat, not args.no_prune))
    rows = []
    print(f"{'figure':<46} {'empty':>10} {'1M tasks':>10} {'ratio':>7}  per-round ratios")
    for key in fulls[0]:
        e = p50([r.get(key, 0.0) for r in empties])
        f = p50([r[key] for r in fulls])
        ratio = f / e if e else float("nan")
        rounds = [b[key] / a[key] for a, b in zip(empties, fulls, strict=True) if a.get(key)]
        spread = f"{min(rounds):.2f}-{max(rounds):.2f}" if len(rounds) > 1 else ""
        verdict = "" if "(ms)" not in key else ("ok" if ratio <= 2 else "OVER 2x")
        rows.append({"figure": key, "empty": e, "million": f, "ratio": ratio, "rounds": rounds})
        print(f"{key:<46} {e:>10.1f} {f:>10.1f} {ratio:>6.2f}x {verdict:<8} {spread}")
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
