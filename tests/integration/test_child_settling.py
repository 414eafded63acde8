"""Every way a child task ends moves the parent step that waits for it, on every step store.

The parent of `three_children` waits on three `leaf_pair` children. A child reaches a final
state by its own last step, by a failed step resolved or retried by hand, by a cancelled step,
by a single or a bulk cancel: each time the parent step follows (complete → the step completes
and the parent goes on; error or cancelled → the step fails with CHILD_TASK_FAILED).
"""

from pathlib import Path
from uuid import UUID

import pytest

from server.container import Services
from server.db.models import Task, WorkflowStep
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from server.services.bulk import BulkFilter
from tests.conftest import WORKFLOWS, on_every_store
from tests.support import map_steps
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAPPING = FIXTURES / "mapping"


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, MAPPING, FIXTURES / "child_settling"], examples=True)


def three(c_key: str) -> CreateTask:
    return CreateTask(
        namespace="dynamic",
        name="three_children",
        context={"a": {"key": "a"}, "b": {"key": "b"}, "c": {"key": c_key}},
    )


async def kids(task_id: UUID) -> dict[str, UUID]:
    rows = await Task.filter(parent_task_id=task_id).values_list("parent_step", "id")
    return {str(step): UUID(str(i)) for step, i in rows}


async def failed_parent(engine: Services, key: str) -> tuple[UUID, UUID]:
    """A parent in error because child_c failed for good: (parent id, child_c id)."""
    map_steps.FAILING.add(key)
    view, _ = await engine.tasks.create_task(three(key))
    parent = await wait_for_task(engine, view.id)
    assert parent.status is TaskState.ERROR
    step = await WorkflowStep.get(task_id=view.id, name="child_c")
    assert (step.status, step.error_class) == (StepState.ERROR.value, "CHILD_TASK_FAILED")
    return view.id, (await kids(view.id))["child_c"]


async def test_resolving_the_childs_failed_step_by_hand_completes_the_parent(
    engine: Services,
) -> None:
    try:
        parent_id, child_id = await failed_parent(engine, "c-resolve")
        # The handler would still fail: resolving, not re-running, finishes the child.
        await engine.steps.resolve_step(child_id, "right", results={"fixed": "by hand"})
        assert (await wait_for_task(engine, child_id)).status is TaskState.COMPLETE
        done = await wait_for_task(engine, parent_id, {TaskState.COMPLETE})
    finally:
        map_steps.FAILING.discard("c-resolve")
    assert done.status is TaskState.COMPLETE
    step = await WorkflowStep.get(task_id=parent_id, name="child_c")
    assert step.status == StepState.COMPLETE.value
    assert step.results["right"] == {"fixed": "by hand"}
    after = await WorkflowStep.get(task_id=parent_id, name="after")
    assert after.status == StepState.COMPLETE.value
    assert len(await kids(parent_id)) == 3  # the re-run step found its child


async def test_retrying_the_childs_failed_step_completes_the_parent(engine: Services) -> None:
    parent_id, child_id = await failed_parent(engine, "c-step-retry")
    map_steps.FAILING.discard("c-step-retry")
    await engine.steps.retry_step(child_id, "right")  # the step, not the whole task
    done = await wait_for_task(engine, parent_id, {TaskState.COMPLETE})
    assert done.status is TaskState.COMPLETE
    step = await WorkflowStep.get(task_id=parent_id, name="child_c")
    assert step.results["right"] == {"ok": "c-step-retry"}


async def test_retrying_the_parent_alone_fails_its_step_again_while_the_child_is_in_error(
    engine: Services,
) -> None:
    """Retrying the parent re-runs its step, which finds its child (never a second one) still
    in error: the step fails again at once. It is the child that must be retried."""
    try:
        parent_id, child_id = await failed_parent(engine, "c-parent-retry")
        await engine.tasks.retry_task(parent_id)
        again = await wait_for_task(engine, parent_id, {TaskState.ERROR})
    finally:
        map_steps.FAILING.discard("c-parent-retry")
    assert again.status is TaskState.ERROR
    step = await WorkflowStep.get(task_id=parent_id, name="child_c")
    assert (step.status, step.error_class) == (StepState.ERROR.value, "CHILD_TASK_FAILED")
    assert (await kids(parent_id))["child_c"] == child_id
    await engine.tasks.retry_task(child_id)
    assert (await wait_for_task(engine, parent_id, {TaskState.COMPLETE})).status is (
        TaskState.COMPLETE
    )


async def test_cancelling_an_errored_child_leaves_the_parent_step_failed(
    engine: Services,
) -> None:
    try:
        parent_id, child_id = await failed_parent(engine, "c-cancel")
    finally:
        map_steps.FAILING.discard("c-cancel")
    await engine.tasks.cancel_task(child_id)
    step = await WorkflowStep.get(task_id=parent_id, name="child_c")
    assert step.status == StepState.ERROR.value
    assert (await engine.tasks.get_task(parent_id)).status is TaskState.ERROR


async def parked_parent(services: Services) -> tuple[UUID, UUID]:
    """With no workers: python_parent's `spawn` step parked on its pending child."""
    view, _ = await services.tasks.create_task(
        CreateTask(namespace="dynamic", name="python_parent", context={})
    )
    spawn = await WorkflowStep.get(task_id=view.id, name="spawn")
    assert await services.runner.run_step(spawn.id) == "awaiting"
    (child_id,) = (await kids(view.id)).values()
    return view.id, child_id


async def assert_parent_step_failed(parent_id: UUID, child_id: UUID) -> None:
    spawn = await WorkflowStep.get(task_id=parent_id, name="spawn")
    assert spawn.status == StepState.ERROR.value
    assert spawn.error_class == "CHILD_TASK_FAILED"
    assert spawn.lease_owner is None
    assert str(child_id) in str(spawn.last_error)
    assert (await Task.get(id=parent_id)).status == TaskState.ERROR.value


async def test_a_child_ended_by_cancelling_its_step_fails_the_waiting_parent_step(
    services: Services,
) -> None:
    parent_id, child_id = await parked_parent(services)
    await services.steps.cancel_step(child_id, "first")
    assert (await services.tasks.get_task(child_id)).status is TaskState.CANCELLED
    await assert_parent_step_failed(parent_id, child_id)


async def test_cancelling_a_waiting_child_by_hand_fails_the_parent_step(
    services: Services,
) -> None:
    parent_id, child_id = await parked_parent(services)
    await services.tasks.cancel_task(child_id)
    await assert_parent_step_failed(parent_id, child_id)


async def test_bulk_cancel_of_a_waiting_child_fails_the_parent_step(services: Services) -> None:
    parent_id, child_id = await parked_parent(services)
    result = await services.tasks.bulk.cancel(BulkFilter(ids=[str(child_id)]))
    assert result.ids == [str(child_id)]
    await assert_parent_step_failed(parent_id, child_id)


async def test_bulk_cancel_of_a_parent_cascades_to_its_unfinished_children(
    services: Services,
) -> None:
    parent_id, child_id = await parked_parent(services)
    other_parent, other_child = await parked_parent(services)
    result = await services.tasks.bulk.cancel(BulkFilter(ids=[str(parent_id), str(other_parent)]))
    assert sorted(result.ids) == sorted([str(parent_id), str(other_parent)])  # the parents only
    for child in (child_id, other_child):
        task = await services.tasks.get_task(child)
        assert task.status is TaskState.CANCELLED
        steps = await services.steps.list_steps(child)
        assert {s.status for s in steps} == {StepState.CANCELLED}
    spawn = await WorkflowStep.get(task_id=parent_id, name="spawn")
    assert spawn.status == StepState.CANCELLED.value


async def test_bulk_cancel_leaves_finished_children_alone(engine: Services) -> None:
    try:
        parent_id, child_id = await failed_parent(engine, "c-bulk")
    finally:
        map_steps.FAILING.discard("c-bulk")
    children = await kids(parent_id)
    result = await engine.tasks.bulk.cancel(BulkFilter(ids=[str(parent_id)]))
    assert result.count == 1
    assert (await engine.tasks.get_task(child_id)).status is TaskState.CANCELLED  # was error
    for step in ("child_a", "child_b"):  # complete: a cancel cannot undo them
        assert (await engine.tasks.get_task(children[step])).status is TaskState.COMPLETE


async def test_a_child_superseded_by_a_newer_one_fails_the_waiting_parent_step(
    services: Services,
) -> None:
    """The child's handler keeps the newest task per customer (`cancel_in_progress`): a second
    parent's child cancels the first parent's, whose step must not wait for ever."""
    parents = []
    for _ in range(2):
        view, _ = await services.tasks.create_task(
            CreateTask("settling", "latest_parent", {"child": {"customer": "c1"}})
        )
        call = await WorkflowStep.get(task_id=view.id, name="call")
        assert await services.runner.run_step(call.id) == "awaiting"
        parents.append(view.id)
    first_child = (await kids(parents[0]))["call"]
    assert (await services.tasks.get_task(first_child)).status is TaskState.CANCELLED
    step = await WorkflowStep.get(task_id=parents[0], name="call")
    assert (step.status, step.error_class) == (StepState.ERROR.value, "CHILD_TASK_FAILED")
    assert (await Task.get(id=parents[0])).status == TaskState.ERROR.value
    waiting = await WorkflowStep.get(task_id=parents[1], name="call")
    assert waiting.status == StepState.IN_PROGRESS.value  # its child is the newest: it runs


async def test_a_superseded_parent_cancels_its_unfinished_child(services: Services) -> None:
    parents = []
    for _ in range(2):
        view, _ = await services.tasks.create_task(
            CreateTask("settling", "latest_parent_keyed", {"customer": "c2", "child": {}})
        )
        call = await WorkflowStep.get(task_id=view.id, name="call")
        if not parents:
            assert await services.runner.run_step(call.id) == "awaiting"
        parents.append(view.id)
    assert (await services.tasks.get_task(parents[0])).status is TaskState.CANCELLED
    child = (await kids(parents[0]))["call"]
    assert (await services.tasks.get_task(child)).status is TaskState.CANCELLED
    assert (await services.tasks.get_task(parents[1])).status is TaskState.PENDING


async def test_cancelling_the_waiting_parent_step_cancels_its_child(services: Services) -> None:
    parent_id, child_id = await parked_parent(services)
    await services.steps.cancel_step(parent_id, "spawn")
    assert (await services.tasks.get_task(child_id)).status is TaskState.CANCELLED
    assert (await services.tasks.get_task(parent_id)).status is TaskState.CANCELLED
    spawn = await WorkflowStep.get(task_id=parent_id, name="spawn")
    assert spawn.status == StepState.CANCELLED.value
