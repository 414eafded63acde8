"""A step's completion caught waiting for its task's row lock, on the PostgreSQL store: the
lock-order tests hold the lock from another connection and look at what the completion did
(or had not yet done) meanwhile."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from server.container import Services
from server.db.models import WorkflowStep
from server.domain.views import CreateTask
from server.engine.pg_store import PgStore
from server.engine.runner import Claimer
from server.engine.store import Outcome, Recorded


@dataclass(frozen=True)
class HeldTask:
    """The lock holder's connection and open transaction, and the completion waiting."""

    conn: Any
    lock: Any
    task_id: UUID
    step_id: int
    completing: "asyncio.Task[list[Recorded]]"


@asynccontextmanager
async def completion_waiting_for_task_lock(
    services: Services, database_url: str
) -> AsyncIterator[HeldTask]:
    """A new `shapes/linear` task with its first step claimed; another connection locks the
    task's row in an open transaction, then the step's completion starts and waits for it.
    The connection is closed on the way out."""
    import asyncpg

    task, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="linear", context={})
    )
    first = await WorkflowStep.filter(task_id=task.id, waiting_on=0).first()
    assert first is not None
    store = services.store
    assert isinstance(store, PgStore)
    claimer = Claimer(store, worker_id="w", default_timeout=30.0, lease_grace=5.0)
    claim = await claimer.claim(first.id)
    assert claim is not None
    conn = await asyncpg.connect(database_url)
    try:
        lock = conn.transaction()
        await lock.start()
        await conn.execute("SELECT 1 FROM tasker_tasks WHERE id = $1 FOR UPDATE", task.id)
        completing = asyncio.create_task(store.complete([(claim, Outcome(encoded="{}"))]))
        await asyncio.sleep(0.3)  # the completion now waits for the task's lock
        assert not completing.done()
        yield HeldTask(conn, lock, task.id, first.id, completing)
    finally:
        await conn.close()
