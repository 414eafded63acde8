"""The two creation paths write the same rows: a plain request goes through the multi-row
insert (`creation_rows`), a request that needs more than its rows in its transaction through
the one-task path (`creation_single`). Each feature's columns (limits, priority, concurrency
key, waits, handler pause, child-task parent, delayed start, bypassed steps) are compared
between the two; a batch mixing both kinds answers each request in order."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from tortoise.exceptions import IntegrityError

from server.container import Services
from server.db.models import Task, Transition, WorkflowStep
from server.domain.errors import Conflict
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from server.services import creation
from server.services.creation_checks import check_request
from server.services.creation_keys import idempotency_scope, identity_hash
from server.services.creation_single import insert_one
from tests.conftest import ROOT, WORKFLOWS

FIXTURES = ROOT / "tests" / "fixtures"
TASK_FIELDS_APART = {"id", "created_at", "updated_at", "requested_at", "handler_paused_at"}
STEP_FIELDS_APART = {"id", "task_id", "created_at", "updated_at", "dispatched_at", "completed_at"}


@pytest.fixture(scope="module")
def registry() -> Iterator[HandlerRegistry]:
    yield HandlerRegistry.load([WORKFLOWS, FIXTURES / "flow", FIXTURES / "waits"], examples=True)


async def one_by_one(services: Services, req: CreateTask) -> UUID:
    """The request written by the one-task path, whatever it asks."""
    changes = services.changes
    checked = check_request(req, services.registry, changes.clock.now())
    template = checked.template
    view = await insert_one(
        changes,
        await services.tasks.creator.catalogue.named_task_id(template),
        template,
        req,
        identity_hash(template, req.context),
        idempotency_scope(req.subject),
        checked.start,
        checked.flows,
    )
    return view.id


async def rows(task_id: UUID) -> tuple[dict[str, Any], list[dict[str, Any]], list[Any]]:
    task = (await Task.filter(id=task_id).values())[0]
    steps = await WorkflowStep.filter(task_id=task_id).order_by("position").values()
    history = (
        await Transition.filter(task_id=task_id)
        .order_by("id")
        .values_list("step_name", "to_status", "reason")
    )
    return task, steps, sorted(history, key=repr)


def without(row: dict[str, Any], apart: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in apart}


AT = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
"""A delayed start both paths stamp on the root steps they send."""
CASES = {
    "step limits": CreateTask(namespace="flow", name="limited", context={"customer": "c1"}),
    "handler queue, priority": CreateTask(
        namespace="flow", name="serial", context={"customer": "c2"}, priority=1
    ),
    "rate limit": CreateTask(namespace="flow", name="rated", context={"tenant": "t"}),
    "signal wait": CreateTask(namespace="waits", name="approval", context={}),
    "delayed, bypassed": CreateTask(
        namespace="payments",
        name="process_payment",
        context={"payment_id": 5},
        run_at=AT,
        bypass_steps=("send_confirmation",),
        tags=("a", "b"),
        initiator="me",
    ),
    "diamond": CreateTask(namespace="shapes", name="diamond", context={}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_multi_row_and_one_task_paths_write_the_same_rows(services, case):
    req = CASES[case]
    (outcome,) = await services.tasks.creator.create_many([req])
    assert not isinstance(outcome, Exception)
    batch_view, created = outcome
    assert created
    batch = await rows(batch_view.id)
    single = await rows(await one_by_one(services, req))
    assert without(batch[0], TASK_FIELDS_APART) == without(single[0], TASK_FIELDS_APART)
    assert [without(s, STEP_FIELDS_APART) for s in batch[1]] == [
        without(s, STEP_FIELDS_APART) for s in single[1]
    ]
    # The same steps are sent at once, stamped with the delayed start when there is one.
    sent = [[s["dispatched_at"] is not None for s in r[1]] for r in (batch, single)]
    assert sent[0] == sent[1] and any(sent[0])
    done = [[s["completed_at"] is not None for s in r[1]] for r in (batch, single)]
    assert done[0] == done[1]
    if req.run_at is not None:
        assert {s["dispatched_at"] for s in batch[1] if s["dispatched_at"]} == {AT}
    assert batch[2] == single[2]
    # The view answered without reading the task back is the task as stored.
    assert batch_view == await services.tasks.get_task(batch_view.id)


async def test_a_paused_handler_s_tasks_are_created_paused_on_the_multi_row_path(services):
    await services.pausing.pause_handler("flow", "limited")
    reqs = [
        CreateTask(namespace="flow", name="limited", context={"customer": str(i)}) for i in range(3)
    ]
    outcomes = await services.tasks.creator.create_many(
        [*reqs, CreateTask(namespace="shapes", name="diamond", context={})]
    )
    views = [o[0] for o in outcomes if not isinstance(o, Exception)]
    assert [v.paused for v in views] == [True, True, True, False]
    stored = await Task.filter(id__in=[v.id for v in views]).values_list("id", "handler_paused_at")
    assert sum(at is not None for _, at in stored) == 3


async def test_a_child_request_carries_its_parent_on_the_multi_row_path(services):
    parent = uuid4()
    view, created = await services.tasks.create_task(
        CreateTask(
            namespace="shapes", name="diamond", context={}, parent_task_id=parent, parent_step="s"
        )
    )
    assert created and (view.parent_task_id, view.parent_step) == (parent, "s")
    row = await Task.get(id=view.id)
    assert (row.parent_task_id, row.parent_step) == (parent, "s")


async def test_plain_requests_share_one_multi_row_write_and_the_others_go_one_by_one(
    services, monkeypatch
):
    chunks: list[int] = []
    alone: list[str] = []
    write_tasks, insert = creation.write_tasks, creation.insert_one

    async def counting_write(tx, plans):  # type: ignore[no-untyped-def]
        chunks.append(len(plans))
        return await write_tasks(tx, plans)

    async def counting_insert(changes, named, template, *args, **kwargs):  # type: ignore[no-untyped-def]
        alone.append(template.name)
        return await insert(changes, named, template, *args, **kwargs)

    monkeypatch.setattr(creation, "write_tasks", counting_write)
    monkeypatch.setattr(creation, "insert_one", counting_insert)
    plain = CreateTask(namespace="flow", name="limited", context={"customer": "x"})
    reqs = [
        plain,
        CreateTask(namespace="flow", name="latest", context={"customer": "x"}),  # cancels
        CreateTask(namespace="shapes", name="diamond", context={}, idempotency_key="k"),
        CreateTask(
            namespace="shapes", name="diamond", context={}, debounce_key="d", debounce_seconds=30
        ),
        CreateTask(namespace="shapes", name="diamond", context={"other": 1}, idempotency_key="k"),
        CreateTask(namespace="shapes", name="diamond", context={}, idempotency_key="k"),
        CreateTask(namespace="shapes", name="nothing", context={}),
    ]
    outcomes = await services.tasks.creator.create_many(reqs)
    assert chunks == [2] and sorted(alone) == ["diamond", "latest"]
    first, created = outcomes[2]  # type: ignore[misc]
    assert created and isinstance(outcomes[4], Conflict)
    assert outcomes[5] == (first, False)
    assert isinstance(outcomes[6], Exception)
    assert all(o[1] for i, o in enumerate(outcomes) if i in (0, 1, 3))  # type: ignore[index]
    assert await Task.all().count() == 4


async def test_a_batch_is_written_a_chunk_per_transaction(services, monkeypatch):
    monkeypatch.setattr(creation, "CHUNK", 3)
    reqs = [
        CreateTask(
            namespace="shapes", name="diamond", context={"n": i}, idempotency_key=f"k{i % 5}"
        )
        for i in range(8)
    ]
    outcomes = await services.tasks.creator.create_many(reqs)
    created = [o for o in outcomes if not isinstance(o, Exception) and o[1]]
    assert len(created) == 5 and all(isinstance(o, Conflict) for o in outcomes[5:])
    assert await WorkflowStep.all().count() == 5 * 4
    assert await Transition.filter(reason="created").count() == 5 * 5


async def test_a_second_child_of_the_same_step_fails_as_the_child_starter_expects(services):
    """`ChildTasks` settles a concurrent run of the starting step by catching the unique
    index's IntegrityError: the multi-row insert raises the same one, and writes nothing."""
    req = CreateTask(
        namespace="shapes", name="diamond", context={}, parent_task_id=uuid4(), parent_step="s"
    )
    await services.tasks.create_task(req)
    with pytest.raises(IntegrityError):
        await services.tasks.create_task(req)
    assert await Task.all().count() == 1
    assert await WorkflowStep.all().count() == 4
