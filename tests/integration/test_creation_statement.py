"""On PostgreSQL a plain creation is one statement (`server.services.creation_statement`) and
writes the same rows, in the same order, as the transaction's four inserts do.

A request with an idempotency key still goes the transaction's way, so one task of each is
created from the same handler and context and their rows compared column by column.
"""

from typing import Any
from uuid import UUID

import pytest

from server.container import Services
from server.db.models import StepEdge, Transition, WorkflowStep
from server.domain.views import CreateTask
from tests.conftest import BACKEND
from tests.support.recorder import Recorder
from tests.support.statements import Statements

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="the PostgreSQL creation statement")


async def rows_of(task_id: UUID) -> dict[str, Any]:
    steps = await WorkflowStep.filter(task_id=task_id).order_by("position")
    names = {s.id: s.name for s in steps}
    edges = await StepEdge.filter(task_id=task_id)
    history = await Transition.filter(task_id=task_id).order_by("id")
    skip = {"id", "task_id", "created_at", "updated_at", "dispatched_at"}
    return {
        "steps": [
            {k: v for k, v in s.__dict__.items() if not k.startswith("_") and k not in skip}
            | {"dispatched": s.dispatched_at is not None}
            for s in steps
        ],
        "edges": sorted((names[e.from_step_id], names[e.to_step_id]) for e in edges),  # type: ignore[attr-defined]
        "history": [
            (h.step_name, h.from_status, h.to_status, h.reason, h.metadata) for h in history
        ],
        "history_steps": [names.get(h.step_id) for h in history],  # type: ignore[attr-defined]
    }


async def test_a_plain_creation_is_one_statement_with_the_transactions_rows(
    services: Services, statements: Statements
) -> None:
    recorder = Recorder()
    services.set_dispatcher(recorder)
    request = CreateTask(namespace="shapes", name="diamond", context={"n": 1})
    await services.tasks.create_task(request)  # warm: the handler's catalogue row
    statements.seen.clear()
    plain, _ = await services.tasks.create_task(request)
    writes = statements.writes()
    assert len(writes) == 1, writes  # no BEGIN, no COMMIT: one statement
    keyed, _ = await services.tasks.create_task(
        CreateTask(namespace="shapes", name="diamond", context={"n": 1}, idempotency_key="k")
    )
    one, other = await rows_of(plain.id), await rows_of(keyed.id)
    assert one == other
    assert one["history_steps"][0] is None  # the task's own row first, then its steps in order
    assert one["history_steps"][1:] == [s["name"] for s in one["steps"]]
    # Its root step was dispatched after the statement, like the keyed one's.
    roots = await WorkflowStep.filter(task_id__in=[plain.id, keyed.id], waiting_on=0)
    assert {s.id for s in roots} <= set(recorder.sent)
