"""Bulk seeding of realistic history for the analytics benchmark (and for poking at a dev server).

Writes tasks with four linear steps each (a -> b -> c -> d), step edges, and the namespace and
handler rows they refer to, straight into the tables: COPY through asyncpg on PostgreSQL,
batched multi-row inserts through sqlite3 on SQLite. Timestamps, durations, transient retries,
exhausted retries, permanent errors and cancellations follow a fixed random seed, so two runs
give the same data. Tasks young enough to still be running are left pending / in progress,
as the engine would have them.

    python -m bench.seed --database-url postgres://postgres@127.0.0.1:5432/tasker_bench \\
        --create-db --reset --tasks 1000000 --days 30
"""

import argparse
import asyncio
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.seed_data import CATALOGUE, EDGE_COLUMNS, STEP_COLUMNS, TASK_COLUMNS, Generator
from server.db.setup import apply_migrations


async def _pg_handlers(conn: Any) -> dict[tuple[str, str, str], int]:
    for ns in sorted({h.namespace for h in CATALOGUE}):
        await conn.execute(
            "INSERT INTO tasker_namespaces (name, description) VALUES ($1, $2) "
            "ON CONFLICT (name) DO NOTHING",
            ns,
            "benchmark data",
        )
    for h in CATALOGUE:
        await conn.execute(
            "INSERT INTO tasker_named_tasks (name, version, description, definition, namespace_id)"
            " SELECT $1, $2, 'benchmark', '{}', id FROM tasker_namespaces WHERE name = $3"
            " ON CONFLICT DO NOTHING",
            h.name,
            h.version,
            h.namespace,
        )
    rows = await conn.fetch(
        "SELECT n.name AS ns, t.name, t.version, t.id FROM tasker_named_tasks t "
        "JOIN tasker_namespaces n ON n.id = t.namespace_id"
    )
    return {(r["ns"], r["name"], r["version"]): r["id"] for r in rows}


async def seed_postgres(
    url: str, *, tasks: int, days: float, seed: int, reset: bool, batch: int, create_db: bool
) -> None:
    """Seed a PostgreSQL database (created and migrated if asked)."""
    import asyncpg

    if create_db:
        base, _, name = url.rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    await apply_migrations(url)
    conn = await asyncpg.connect(url)
    try:
        if reset:
            await conn.execute(
                "TRUNCATE tasker_transitions, tasker_step_edges, "
                "tasker_workflow_steps, tasker_tasks RESTART IDENTITY CASCADE"
            )
        handler_ids = await _pg_handlers(conn)
        first = (await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM tasker_workflow_steps")) + 1
        gen = Generator(
            handler_ids, days=days, now=datetime.now(UTC), seed=seed, first_step_id=first
        )
        began = time.monotonic()
        for i, rows in enumerate(gen.batches(tasks, batch)):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "tasker_tasks", records=rows.tasks, columns=TASK_COLUMNS
                )
                await conn.copy_records_to_table(
                    "tasker_workflow_steps", records=rows.steps, columns=STEP_COLUMNS
                )
                await conn.copy_records_to_table(
                    "tasker_step_edges", records=rows.edges, columns=EDGE_COLUMNS
                )
            print(f"  {(i + 1) * batch:>9} tasks  {time.monotonic() - began:6.1f}s", flush=True)
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('tasker_workflow_steps', 'id'),"
            " (SELECT MAX(id) FROM tasker_workflow_steps))"
        )
        # Autovacuum would get there; the benchmark should not depend on when it runs.
        await conn.execute("VACUUM ANALYZE tasker_tasks")
        await conn.execute("VACUUM ANALYZE tasker_workflow_steps")
        await conn.execute("VACUUM ANALYZE tasker_step_edges")
    finally:
        await conn.close()


def _sqlite_value(value: Any) -> Any:
    # Stored as Tortoise stores them, so that the ORM and raw SQL compare alike.
    if isinstance(value, datetime):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


async def seed_sqlite(
    url: str, *, tasks: int, days: float, seed: int, reset: bool, batch: int
) -> None:
    """Seed a SQLite file (migrated first) with multi-row inserts."""
    await apply_migrations(url)
    db = sqlite3.connect(url.removeprefix("sqlite://"))
    try:
        if reset:
            for table in (
                "tasker_transitions",
                "tasker_step_edges",
                "tasker_workflow_steps",
                "tasker_tasks",
            ):
                db.execute(f"DELETE FROM {table}")
        for ns in sorted({h.namespace for h in CATALOGUE}):
            db.execute(
                "INSERT OR IGNORE INTO tasker_namespaces (name, description) "
                "VALUES (?, 'benchmark data')",
                (ns,),
            )
        for h in CATALOGUE:
            db.execute(
                "INSERT OR IGNORE INTO tasker_named_tasks (name, version, description, "
                "definition, namespace_id) SELECT ?, ?, 'benchmark', '{}', id "
                "FROM tasker_namespaces WHERE name = ?",
                (h.name, h.version, h.namespace),
            )
        handler_ids = {
            (ns, n, v): i
            for ns, n, v, i in db.execute(
                "SELECT n.name, t.name, t.version, t.id FROM tasker_named_tasks t "
                "JOIN tasker_namespaces n ON n.id = t.namespace_id"
            )
        }
        first = db.execute("SELECT COALESCE(MAX(id), 0) FROM tasker_workflow_steps").fetchone()[0]
        gen = Generator(
            handler_ids, days=days, now=datetime.now(UTC), seed=seed, first_step_id=first + 1
        )
        for rows in gen.batches(tasks, batch):
            for table, columns, records in (
                ("tasker_tasks", TASK_COLUMNS, rows.tasks),
                ("tasker_workflow_steps", STEP_COLUMNS, rows.steps),
                ("tasker_step_edges", EDGE_COLUMNS, rows.edges),
            ):
                marks = ", ".join("?" for _ in columns)
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    [tuple(_sqlite_value(v) for v in r) for r in records],
                )
            db.commit()
        db.execute("ANALYZE")
        db.commit()
    finally:
        db.close()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument(
        "--days",
        type=float,
        default=30.0,
        help="spread creation times uniformly over this many days before now",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--reset", action="store_true", help="delete existing tasks first")
    parser.add_argument("--create-db", action="store_true", help="create the PostgreSQL database")
    args = parser.parse_args()
    began = time.monotonic()
    if args.database_url.startswith("sqlite"):
        asyncio.run(
            seed_sqlite(
                args.database_url,
                tasks=args.tasks,
                days=args.days,
                seed=args.seed,
                reset=args.reset,
                batch=args.batch,
            )
        )
    else:
        asyncio.run(
            seed_postgres(
                args.database_url,
                tasks=args.tasks,
                days=args.days,
                seed=args.seed,
                reset=args.reset,
                batch=args.batch,
                create_db=args.create_db,
            )
        )
    print(f"seeded {args.tasks} tasks ({args.tasks * 4} steps) in {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    main()
