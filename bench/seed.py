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
import math
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from server.db.setup import apply_migrations


@dataclass(frozen=True)
class StepSpec:
    """One step template: mean duration, timeout and how it tends to fail."""

    name: str
    mean_ms: float
    timeout_s: float | None
    p_retry: float  # chance of one or more transient failures before the last attempt
    p_fail: float  # chance of failing for good
    error: str


@dataclass(frozen=True)
class HandlerSpec:
    """A synthetic handler: identity, share of traffic, four steps."""

    namespace: str
    name: str
    version: str
    weight: float
    steps: tuple[StepSpec, StepSpec, StepSpec, StepSpec]


CATALOGUE = (
    HandlerSpec("payments", "process_payment", "2.1.0", 0.35, (
        StepSpec("validate_payment", 40, 10, 0.01, 0.001, "ValidationError"),
        StepSpec("check_fraud", 250, 30, 0.03, 0.002, "NetworkTimeoutError"),
        StepSpec("charge_card", 900, 30, 0.08, 0.01, "CARD_DECLINED"),
        StepSpec("send_confirmation", 120, 30, 0.02, 0.001, "SMTPError"),
    )),
    HandlerSpec("inventory", "process_order", "1.0.0", 0.25, (
        StepSpec("validate_order", 30, None, 0.01, 0.001, "ValidationError"),
        StepSpec("inventory_check", 400, 30, 0.04, 0.002, "NetworkTimeoutError"),
        # Runs close to its 3 s timeout: the benchmark's timeout recommendation comes from here.
        StepSpec("payment_processing", 2400, 3, 0.10, 0.01, "StepTimeout"),
        StepSpec("ship_order", 300, 30, 0.02, 0.001, "CarrierError"),
    )),
    HandlerSpec("inventory", "update_stock", "1.2.0", 0.15, (
        StepSpec("lock_sku", 20, None, 0.01, 0.0, "LockError"),
        StepSpec("read_levels", 60, None, 0.01, 0.0, "DatabaseError"),
        StepSpec("write_levels", 80, None, 0.02, 0.001, "DatabaseError"),
        StepSpec("publish_change", 50, None, 0.01, 0.0, "NetworkTimeoutError"),
    )),
    HandlerSpec("notifications", "send_email", "2.0.0", 0.2, (
        StepSpec("load_template", 15, None, 0.0, 0.0, "TemplateError"),
        StepSpec("render", 35, None, 0.0, 0.001, "TemplateError"),
        StepSpec("deliver", 600, 60, 0.12, 0.005, "SMTPError"),
        StepSpec("record_delivery", 25, None, 0.01, 0.0, "DatabaseError"),
    )),
    HandlerSpec("analytics", "customer_analytics", "1.0.0", 0.05, (
        StepSpec("extract", 4000, 600, 0.05, 0.002, "NetworkTimeoutError"),
        StepSpec("transform", 2500, 600, 0.01, 0.001, "ValueError"),
        StepSpec("load", 1500, 600, 0.03, 0.002, "DatabaseError"),
        StepSpec("report", 300, None, 0.01, 0.0, "ValueError"),
    )),
)
RETRY_LIMIT = 3
P_CANCEL = 0.003

TASK_COLUMNS = (
    "id", "named_task_id", "namespace", "name", "version", "status", "context", "tags",
    "bypass_steps", "identity_hash", "requested_at", "created_at", "updated_at", "completed_at",
)
STEP_COLUMNS = (
    "id", "task_id", "name", "position", "handler_class", "status", "attempts", "retry_limit",
    "retryable", "skippable", "timeout_seconds", "last_error", "error_class", "next_attempt_at",
    "dispatched_at", "started_at", "completed_at", "created_at", "updated_at",
)
EDGE_COLUMNS = ("task_id", "from_step_id", "to_step_id")


@dataclass
class Batch:
    """Rows for one COPY round."""

    tasks: list[tuple[Any, ...]]
    steps: list[tuple[Any, ...]]
    edges: list[tuple[Any, ...]]


class Generator:
    """Deterministic rows: tasks spread uniformly over `days` days before `now`."""

    def __init__(self, handler_ids: dict[tuple[str, str, str], int], *, days: float,
                 now: datetime, seed: int, first_step_id: int) -> None:
        self.handler_ids = handler_ids
        self.span = days * 86400.0
        self.now = now
        self.rng = random.Random(seed)
        self.next_step_id = first_step_id
        self.weights = [h.weight for h in CATALOGUE]

    def batches(self, total: int, size: int) -> Iterator[Batch]:
        """`total` tasks in batches of `size`."""
        done = 0
        while done < total:
            n = min(size, total - done)
            batch = Batch([], [], [])
            for _ in range(n):
                self._task(batch)
            done += n
            yield batch

    def _task(self, batch: Batch) -> None:
        rng = self.rng
        spec = rng.choices(CATALOGUE, self.weights)[0]
        task_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        created = self.now - timedelta(seconds=rng.random() * self.span)
        cursor = created + timedelta(milliseconds=rng.uniform(2, 40))
        cancel_at = rng.randrange(4) if rng.random() < P_CANCEL else None
        task_status, task_done = "complete", None
        ids = list(range(self.next_step_id, self.next_step_id + 4))
        self.next_step_id += 4
        rest: str | None = None  # what the steps after a halt look like
        for pos, step in enumerate(spec.steps):
            if rest is not None:
                batch.steps.append(self._idle(step, pos, ids[pos], task_id, created, rest))
                continue
            if cancel_at == pos:
                batch.steps.append(self._idle(step, pos, ids[pos], task_id, created, "cancelled"))
                rest, task_status, task_done = "cancelled", "cancelled", cursor
                continue
            row, cursor, outcome = self._step(step, pos, ids[pos], task_id, created, cursor)
            batch.steps.append(row)
            if outcome == "error":
                rest, task_status, task_done = "pending", "error", cursor
            elif outcome == "running":
                rest, task_status = "pending", "in_progress"
        if task_status == "complete":
            task_done = cursor
        if task_done is not None and task_done > self.now:
            task_status, task_done = "in_progress", None
        batch.tasks.append((
            task_id, self.handler_ids[(spec.namespace, spec.name, spec.version)],
            spec.namespace, spec.name, spec.version, task_status, "{}", "[]", "[]",
            task_id.hex, created, created, task_done or created, task_done,
        ))
        batch.edges.extend((task_id, ids[i], ids[i + 1]) for i in range(3))

    @staticmethod
    def _idle(step: StepSpec, pos: int, step_id: int, task_id: uuid.UUID, created: datetime,
              status: str) -> tuple[Any, ...]:
        """A step that never ran: waiting on a parent that failed or runs, or cancelled."""
        return (step_id, task_id, step.name, pos, f"bench.handlers:{step.name}", status, 0,
                RETRY_LIMIT, True, False, step.timeout_s, None, None, None, None, None, None,
                created, created)

    def _step(self, step: StepSpec, pos: int, step_id: int, task_id: uuid.UUID,
              created: datetime, cursor: datetime) -> tuple[tuple[Any, ...], datetime, str]:
        """One step that became ready at `cursor`: the row, when its last attempt ended, and
        whether it is complete, failed for good (error) or still running."""
        rng = self.rng
        base = (step_id, task_id, step.name, pos, f"bench.handlers:{step.name}")
        limits = (RETRY_LIMIT, True, False, step.timeout_s)
        if cursor > self.now:  # its parent is still running
            return (*base, "pending", 0, *limits, *([None] * 6), created, created), cursor, \
                "running"
        fail = rng.random() < step.p_fail
        retries = 0
        if fail:
            retries = RETRY_LIMIT - 1
        elif rng.random() < step.p_retry:
            retries = min(RETRY_LIMIT - 1, 1 + int(rng.expovariate(1.5)))
        started = cursor
        for attempt in range(retries):
            started += timedelta(milliseconds=self._duration(step) + 1000 * 2 ** attempt)
        finished = started + timedelta(milliseconds=self._duration(step))
        attempts = retries + 1
        error = step.error if (fail or retries) else None
        if started > self.now:  # backing off before its next attempt
            row = (*base, "error", attempts - 1, *limits, f"{error} on attempt {attempts - 1}",
                   error, started, cursor, None, None, created, cursor)
            return row, started, "running"
        last = f"{error} on attempt {attempts - (0 if fail else 1)}" if error else None
        if finished > self.now:
            row = (*base, "in_progress", attempts, *limits, last, error, None, cursor, started,
                   None, created, started)
            return row, finished, "running"
        status = "error" if fail else "complete"
        row = (*base, status, attempts, *limits, last, error, None, cursor, started, finished,
               created, finished)
        return row, finished + timedelta(milliseconds=rng.uniform(2, 30)), status

    def _duration(self, step: StepSpec) -> float:
        # Log-normal around the mean; timeouts cap an attempt as the runner's wait_for does.
        value = step.mean_ms * math.exp(self.rng.gauss(-0.125, 0.5))
        cap = (step.timeout_s or 300) * 1000
        return round(min(value, cap), 3)


async def _pg_handlers(conn: Any) -> dict[tuple[str, str, str], int]:
    for ns in sorted({h.namespace for h in CATALOGUE}):
        await conn.execute(
            "INSERT INTO tasker_namespaces (name, description) VALUES ($1, $2) "
            "ON CONFLICT (name) DO NOTHING", ns, "benchmark data")
    for h in CATALOGUE:
        await conn.execute(
            "INSERT INTO tasker_named_tasks (name, version, description, definition, namespace_id)"
            " SELECT $1, $2, 'benchmark', '{}', id FROM tasker_namespaces WHERE name = $3"
            " ON CONFLICT DO NOTHING", h.name, h.version, h.namespace)
    rows = await conn.fetch(
        "SELECT n.name AS ns, t.name, t.version, t.id FROM tasker_named_tasks t "
        "JOIN tasker_namespaces n ON n.id = t.namespace_id")
    return {(r["ns"], r["name"], r["version"]): r["id"] for r in rows}


async def seed_postgres(url: str, *, tasks: int, days: float, seed: int, reset: bool,
                        batch: int, create_db: bool) -> None:
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
            await conn.execute("TRUNCATE tasker_transitions, tasker_step_edges, "
                               "tasker_workflow_steps, tasker_tasks RESTART IDENTITY CASCADE")
        handler_ids = await _pg_handlers(conn)
        first = (await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM tasker_workflow_steps")) + 1
        gen = Generator(handler_ids, days=days, now=datetime.now(UTC), seed=seed,
                        first_step_id=first)
        began = time.monotonic()
        for i, rows in enumerate(gen.batches(tasks, batch)):
            async with conn.transaction():
                await conn.copy_records_to_table("tasker_tasks", records=rows.tasks,
                                                 columns=TASK_COLUMNS)
                await conn.copy_records_to_table("tasker_workflow_steps", records=rows.steps,
                                                 columns=STEP_COLUMNS)
                await conn.copy_records_to_table("tasker_step_edges", records=rows.edges,
                                                 columns=EDGE_COLUMNS)
            print(f"  {(i + 1) * batch:>9} tasks  {time.monotonic() - began:6.1f}s", flush=True)
        await conn.execute("SELECT setval(pg_get_serial_sequence('tasker_workflow_steps', 'id'),"
                           " (SELECT MAX(id) FROM tasker_workflow_steps))")
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


async def seed_sqlite(url: str, *, tasks: int, days: float, seed: int, reset: bool,
                      batch: int) -> None:
    """Seed a SQLite file (migrated first) with multi-row inserts."""
    await apply_migrations(url)
    db = sqlite3.connect(url.removeprefix("sqlite://"))
    try:
        if reset:
            for table in ("tasker_transitions", "tasker_step_edges", "tasker_workflow_steps",
                          "tasker_tasks"):
                db.execute(f"DELETE FROM {table}")
        for ns in sorted({h.namespace for h in CATALOGUE}):
            db.execute("INSERT OR IGNORE INTO tasker_namespaces (name, description) "
                       "VALUES (?, 'benchmark data')", (ns,))
        for h in CATALOGUE:
            db.execute("INSERT OR IGNORE INTO tasker_named_tasks (name, version, description, "
                       "definition, namespace_id) SELECT ?, ?, 'benchmark', '{}', id "
                       "FROM tasker_namespaces WHERE name = ?", (h.name, h.version, h.namespace))
        handler_ids = {(ns, n, v): i for ns, n, v, i in db.execute(
            "SELECT n.name, t.name, t.version, t.id FROM tasker_named_tasks t "
            "JOIN tasker_namespaces n ON n.id = t.namespace_id")}
        first = db.execute("SELECT COALESCE(MAX(id), 0) FROM tasker_workflow_steps").fetchone()[0]
        gen = Generator(handler_ids, days=days, now=datetime.now(UTC), seed=seed,
                        first_step_id=first + 1)
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
    parser.add_argument("--days", type=float, default=30.0,
                        help="spread creation times uniformly over this many days before now")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--reset", action="store_true", help="delete existing tasks first")
    parser.add_argument("--create-db", action="store_true", help="create the PostgreSQL database")
    args = parser.parse_args()
    began = time.monotonic()
    if args.database_url.startswith("sqlite"):
        asyncio.run(seed_sqlite(args.database_url, tasks=args.tasks, days=args.days,
                                seed=args.seed, reset=args.reset, batch=args.batch))
    else:
        asyncio.run(seed_postgres(args.database_url, tasks=args.tasks, days=args.days,
                                  seed=args.seed, reset=args.reset, batch=args.batch,
                                  create_db=args.create_db))
    print(f"seeded {args.tasks} tasks ({args.tasks * 4} steps) in {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    main()
