"""The end-to-end bench's baseline: a minimal Dramatiq + PostgreSQL DAG engine, no API.

Tasks of steps with parent counters in three tables (`mini_tasks`, `mini_steps`, `mini_edges`).
A step message claims its step in one commit (`ready -> running`), runs a no-op, and completes
it in one more commit that counts it done for its children and its task; children that reach
zero waiting parents are sent. Producers insert a task with its steps and edges in one
transaction and send its root steps. This is about the least a durable DAG engine can do per
step on this stack, so it is the yardstick for Tasker's end-to-end throughput.

Run by the workers as `dramatiq bench.mini_dag`, with BENCH_REDIS_URL and BENCH_DSN set.
"""

import os
from typing import Any

import asyncpg
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)

SCHEMA = """
DROP TABLE IF EXISTS mini_edges, mini_steps, mini_tasks;
CREATE TABLE mini_tasks (id bigserial PRIMARY KEY, shape text NOT NULL,
    remaining int NOT NULL, status text NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz);
CREATE TABLE mini_steps (id bigserial PRIMARY KEY,
    task_id bigint NOT NULL REFERENCES mini_tasks, name text NOT NULL,
    status text NOT NULL, waiting int NOT NULL,
    started_at timestamptz, completed_at timestamptz);
CREATE TABLE mini_edges (parent bigint NOT NULL REFERENCES mini_steps,
    child bigint NOT NULL REFERENCES mini_steps);
CREATE INDEX ON mini_steps (task_id);
CREATE INDEX ON mini_edges (parent);
CREATE INDEX ON mini_tasks (status);
"""
SHAPES: dict[str, list[tuple[str, list[str]]]] = {
    "chain": [("s1", []), ("s2", ["s1"]), ("s3", ["s2"]), ("s4", ["s3"])],
    "diamond": [("top", []), ("left", ["top"]), ("right", ["top"]), ("bottom", ["left", "right"])],
}
_pool: Any = None


async def pool() -> Any:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=1, max_size=8)
    return _pool


@dramatiq.actor(max_retries=0, queue_name="mini")
async def run_step(step_id: int) -> None:
    async with (await pool()).acquire() as conn:
        claimed = await conn.fetchval(
            "UPDATE mini_steps SET status = 'running', started_at = now() "
            "WHERE id = $1 AND status = 'ready' RETURNING task_id",
            step_id,
        )
        if claimed is None:
            return  # a duplicate message: someone else has it
        # the no-op step
        async with conn.transaction():
            await conn.execute(
                "UPDATE mini_steps SET status = 'done', completed_at = now() WHERE id = $1",
                step_id,
            )
            ready = await conn.fetch(
                "UPDATE mini_steps s SET waiting = s.waiting - 1, "
                "status = CASE WHEN s.waiting = 1 THEN 'ready' ELSE s.status END "
                "FROM mini_edges e WHERE e.parent = $1 AND s.id = e.child "
                "RETURNING s.id, s.status",
                step_id,
            )
            await conn.execute(
                "UPDATE mini_tasks SET remaining = remaining - 1, "
                "status = CASE WHEN remaining = 1 THEN 'done' ELSE status END, "
                "completed_at = CASE WHEN remaining = 1 THEN now() END WHERE id = $1",
                claimed,
            )
    for row in ready:
        if row["status"] == "ready":
            run_step.send(row["id"])


async def create(conn: Any, shape: str) -> None:
    """One task with its steps and edges in one transaction; its roots sent after commit."""
    steps = SHAPES[shape]
    async with conn.transaction():
        task_id = await conn.fetchval(
            "INSERT INTO mini_tasks (shape, remaining) VALUES ($1, $2) RETURNING id",
            shape,
            len(steps),
        )
        rows = await conn.fetch(
            "INSERT INTO mini_steps (task_id, name, status, waiting) "
            "SELECT $1, n, CASE WHEN w = 0 THEN 'ready' ELSE 'pending' END, w "
            "FROM unnest($2::text[], $3::int[]) AS t(n, w) RETURNING id, name",
            task_id,
            [name for name, _ in steps],
            [len(parents) for _, parents in steps],
        )
        ids = {r["name"]: r["id"] for r in rows}
        edges = [(ids[p], ids[name]) for name, parents in steps for p in parents]
        await conn.executemany("INSERT INTO mini_edges (parent, child) VALUES ($1, $2)", edges)
    for name, parents in steps:
        if not parents:
            run_step.send(ids[name])
