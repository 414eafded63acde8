"""Bulk actions at scale: N errored tasks retried (or cancelled, `--action cancel`) through
`BulkActions` on PostgreSQL.

Seeds N errored `bench.chain` tasks (4 steps, the first failed for good) with bulk inserts,
then retries (or cancels) them all in pages of `--page` tasks (each page: transactions of
`bulk.CHUNK` tasks) and prints the total time, tasks/s, the longest transaction and the
longest single statement (timed at the driver).

    python -m bench.bulk_bench --database-url postgres://postgres@127.0.0.1:5432/tasker_bulk \\
        --create-db --tasks 10000
"""

import argparse
import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
from tortoise.backends.asyncpg import client as pg_client

from server.config import Settings
from server.container import build_services
from server.db.models import Task, Transition, WorkflowStep
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from server.engine.changes import StateChanges
from server.infra.ports import NullDispatcher
from server.registry.handler_registry import HandlerRegistry
from server.services import bulk
from server.services.bulk import BulkFilter

HANDLERS = Path(__file__).resolve().parent / "handlers"
LONGEST: dict[str, tuple[float, str]] = {"statement": (0.0, ""), "transaction": (0.0, "")}


def _note(kind: str, seconds: float, what: str) -> None:
    if seconds > LONGEST[kind][0]:
        LONGEST[kind] = (seconds, what)


def _time_statements() -> None:
    """Time every statement the ORM sends (at the driver), keeping the longest."""
    for cls in (pg_client.AsyncpgDBClient, pg_client.TransactionWrapper):
        for name in ("execute_query", "execute_insert", "execute_query_dict", "execute_many"):
            original = getattr(cls, name, None)
            if original is None:
                continue

            def timed(original: Callable[..., Any] = original) -> Callable[..., Any]:
                @functools.wraps(original)
                async def run(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                    began = time.perf_counter()
                    try:
                        return await original(self, query, *args, **kwargs)
                    finally:
                        _note("statement", time.perf_counter() - began, query[:160])

                return run

            setattr(cls, name, timed())


def _time_transactions(changes: StateChanges) -> None:
    opened = changes.transaction

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[Any]:
        began = time.perf_counter()
        async with opened() as tx:
            yield tx
        _note("transaction", time.perf_counter() - began, "one bulk chunk")

    changes.transaction = transaction  # type: ignore[method-assign]


async def seed(services: Any, count: int) -> None:
    one, _ = await services.tasks.create_task(CreateTask("bench", "chain", {}))
    template = await Task.get(id=one.id)
    steps = await WorkflowStep.filter(task_id=one.id).order_by("position")
    now = template.created_at
    for start in range(0, count, 2000):
        tasks = [
            Task(
                id=uuid4(), named_task_id=template.named_task_id, namespace="bench",  # type: ignore[attr-defined]
                name="chain", version=template.version, status=TaskState.ERROR.value,
                context={}, identity_hash="x", requested_at=now, created_at=now,
                updated_at=now, remaining=4, tags=[], bypass_steps=[],
            )
            for _ in range(min(2000, count - start))
        ]  # fmt: skip
        await Task.bulk_create(tasks)
        await WorkflowStep.bulk_create(
            [
                WorkflowStep(
                    task_id=t.id, name=s.name, position=s.position, handler_class=s.handler_class,
                    status=(StepState.ERROR if s.name == "s1" else StepState.PENDING).value,
                    attempts=1 if s.name == "s1" else 0, created_at=now, updated_at=now,
                    waiting_on=0 if s.name == "s1" else 1, dispatched_at=now,
                )
                for t in tasks
                for s in steps
            ]
        )  # fmt: skip
        await Transition.bulk_create(
            [
                Transition(task_id=t.id, to_status=TaskState.ERROR.value, reason="seeded",
                           metadata={}, created_at=now)
                for t in tasks
            ]
        )  # fmt: skip


async def main_async(args: argparse.Namespace) -> None:
    if args.create_db:
        base, _, name = args.database_url.rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    settings = Settings(database_url=args.database_url, handlers_path=str(HANDLERS))
    registry = HandlerRegistry.load([HANDLERS], examples=False)
    services = build_services(settings, NullDispatcher(), registry=registry)
    await services.open()
    try:
        await seed(services, args.tasks)
        _time_statements()
        _time_transactions(services.changes)
        began = time.perf_counter()
        cursor: str | None = None
        retried = 0
        while True:
            act = getattr(services.tasks.bulk, args.action)
            page = await act(
                BulkFilter(namespace="bench", status=TaskState.ERROR.value),
                limit=args.page,
                cursor=cursor,
            )
            retried += page.count
            cursor = page.next_cursor
            if cursor is None:
                break
        took = time.perf_counter() - began
    finally:
        await services.close()
    print(f"bulk {args.action}: {retried} tasks in {took:.2f} s ({retried / took:.0f} tasks/s), "
          f"pages of {args.page}, transactions of {bulk.CHUNK}")  # fmt: skip
    seconds, _ = LONGEST["transaction"]
    print(f"longest transaction: {seconds * 1000:.1f} ms")
    seconds, query = LONGEST["statement"]
    print(f"longest statement: {seconds * 1000:.1f} ms: {query}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tasker_bulk")
    parser.add_argument("--create-db", action="store_true")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=bulk.MAX_LIMIT)
    parser.add_argument("--action", choices=("retry", "cancel"), default="retry")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
