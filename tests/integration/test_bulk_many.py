"""Bulk retry of many errored tasks on PostgreSQL, in short transactions; and the verifier's
invariants for skipped and kept steps hold after conditions and forks ran."""

import time
from uuid import uuid4

import pytest

from bench.verify import database_checks
from server.container import Services
from server.db.models import Task, Transition, WorkflowStep
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask, Rerun
from server.registry.handler_registry import HandlerRegistry
from server.services import bulk
from server.services.bulk import BulkFilter
from tests.conftest import BACKEND, DYNAMIC, WORKFLOWS
from tests.support.waiting import wait_for_task

postgres_only = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL only")


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


async def errored_tasks(services: Services, count: int) -> list[str]:
    """`count` errored `dynamic.chain` tasks, written in bulk (no engine run needed)."""
    one, _ = await services.tasks.create_task(CreateTask("dynamic", "chain", {}))
    template = await Task.get(id=one.id)
    steps = await WorkflowStep.filter(task_id=one.id).order_by("position")
    now = template.created_at
    tasks = []
    rows = []
    for _ in range(count):
        task_id = uuid4()
        tasks.append(
            Task(
                id=task_id, named_task_id=template.named_task_id, namespace="dynamic",  # type: ignore[attr-defined]
                name="chain", version=template.version, status=TaskState.ERROR.value,
                context={}, identity_hash="x", requested_at=now, created_at=now,
                updated_at=now, remaining=4, tags=[], bypass_steps=[],
            )
        )  # fmt: skip
        rows += [
            WorkflowStep(
                task_id=task_id, name=s.name, position=s.position, handler_class=s.handler_class,
                status=StepState.ERROR.value if s.name == "a" else StepState.PENDING.value,
                attempts=1 if s.name == "a" else 0, created_at=now, updated_at=now,
                waiting_on=0 if s.name in "ad" else 1, dispatched_at=now,
            )
            for s in steps
        ]  # fmt: skip
    await Task.bulk_create(tasks, batch_size=1000)
    await WorkflowStep.bulk_create(rows, batch_size=2000)
    await Transition.bulk_create(
        [
            Transition(task_id=t.id, to_status="error", reason="seeded", metadata={},
                       created_at=now)
            for t in tasks
        ],
        batch_size=2000,
    )  # fmt: skip
    return [str(t.id) for t in tasks]


@postgres_only
async def test_bulk_retry_of_2000_errored_tasks(services: Services) -> None:
    ids = await errored_tasks(services, 2000)
    started = time.perf_counter()
    result = await services.tasks.bulk.retry(
        BulkFilter(namespace="dynamic", status="error"), limit=5000
    )
    took = time.perf_counter() - started
    assert result.count == 2000 and sorted(result.ids) == sorted(ids)
    assert await Task.filter(status=TaskState.ERROR.value).count() == 0
    retried = WorkflowStep.filter(task_id__in=ids, name="a", status=StepState.PENDING.value)
    assert await retried.count() == 2000
    print(f"bulk retry of 2000 tasks: {took:.2f} s")
    assert took < 300, took  # chunks of bulk.CHUNK tasks, each its own short transaction
    assert bulk.CHUNK <= 500
    again = await services.tasks.bulk.retry(BulkFilter(namespace="dynamic", status="error"))
    assert again.count == 0


@postgres_only
async def test_verifier_invariants_hold_for_skips_and_forks(
    engine: Services, database_url: str
) -> None:
    view, _ = await engine.tasks.create_task(
        CreateTask("dynamic", "fraud", {"returns": {"check_fraud": {"risk": "low"}}})
    )
    await wait_for_task(engine, view.id)
    fork = await engine.tasks.rerun_task(view.id, Rerun("approve"))
    await wait_for_task(engine, fork.id)
    counts, _, _ = await database_checks(database_url.replace("postgres://", "postgresql://"))
    mine = {k: v for k, v in counts.items() if "skipped" in k or "kept" in k}
    assert len(mine) == 3 and set(mine.values()) == {0}, mine
    assert counts["steps whose attempts differ from their claims"] == 0
