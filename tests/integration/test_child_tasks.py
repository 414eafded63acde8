"""Child tasks: `task:` steps and `step.start_task`, awaited without a worker, on every store.

A parent with three children, one failing for good, fails its step and then the parent;
retrying the child completes the parent. Cancelling a parent cancels its unfinished children.
Starting is idempotent on (parent task, parent step).
"""

from pathlib import Path
from uuid import UUID

import pytest

from server.container import Services
from server.db.models import Task, Transition, WorkflowStep
from server.domain.errors import TemplateInvalid
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import WORKFLOWS, on_every_store
from tests.support import map_steps as dynamic_steps
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

DYNAMIC = Path(__file__).resolve().parent.parent / "fixtures" / "mapping"


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


def three(c_key: str = "c") -> CreateTask:
    return CreateTask(
        namespace="dynamic",
        name="three_children",
        context={"a": {"key": "a"}, "b": {"key": "b"}, "c": {"key": c_key}},
    )


async def children_of(task_id: UUID) -> dict[str, Task]:
    rows = await Task.filter(parent_task_id=task_id)
    return {str(r.parent_step): r for r in rows}


async def test_parent_completes_with_each_childs_leaf_results(engine: Services) -> None:
    view, _ = await engine.tasks.create_task(three())
    done = await wait_for_task(engine, view.id)
    assert done.status is TaskState.COMPLETE
    kids = await children_of(view.id)
    assert sorted(kids) == ["child_a", "child_b", "child_c"]
    assert {k.status for k in kids.values()} == {TaskState.COMPLETE.value}
    step = await WorkflowStep.get(task_id=view.id, name="child_b")
    # The child's leaf steps (left, right), keyed by name; `first` is not a leaf.
    assert sorted(step.results) == ["left", "right"]
    assert step.results["right"] == {"ok": "b"}
    after = await WorkflowStep.get(task_id=view.id, name="after")
    assert after.results["parents"]["child_c"]["right"] == {"ok": "c"}
    # The parent step completed only after its child did (history order).
    completed = await Transition.get(step_id=step.id, to_status=StepState.COMPLETE.value)
    child_done = await Transition.get(
        task_id=kids["child_b"].id, step_id=None, to_status=TaskState.COMPLETE.value
    )
    assert completed.id > child_done.id
    assert completed.reason == "child task complete"


async def test_failing_child_fails_parent_and_retrying_it_completes_parent(
    engine: Services,
) -> None:
    dynamic_steps.FAILING.add("c-fails")
    try:
        view, _ = await engine.tasks.create_task(three("c-fails"))
        failed = await wait_for_task(engine, view.id)
        assert failed.status is TaskState.ERROR
        step = await WorkflowStep.get(task_id=view.id, name="child_c")
        assert step.status == StepState.ERROR.value
        assert step.error_class == "CHILD_TASK_FAILED"
        kids = await children_of(view.id)
        assert kids["child_c"].status == TaskState.ERROR.value
        assert kids["child_a"].status == TaskState.COMPLETE.value
    finally:
        dynamic_steps.FAILING.discard("c-fails")
    await engine.tasks.retry_task(kids["child_c"].id)
    done = await wait_for_task(engine, view.id, {TaskState.COMPLETE})
    assert done.status is TaskState.COMPLETE
    # Still one child per step: the re-run found the child it had started.
    assert len(await children_of(view.id)) == 3


async def test_start_task_from_python_waits_and_never_makes_two_children(
    engine: Services,
) -> None:
    view, _ = await engine.tasks.create_task(
        CreateTask(namespace="dynamic", name="python_parent", context={})
    )
    done = await wait_for_task(engine, view.id)
    assert done.status is TaskState.COMPLETE
    spawn = await WorkflowStep.get(task_id=view.id, name="spawn")
    assert spawn.results["right"] == {"ok": "py"}
    assert spawn.lease_owner is None
    kids = await children_of(view.id)
    assert list(kids) == ["spawn"]
    assert kids["spawn"].parent_step == "spawn"


async def test_cancelling_a_parent_cancels_its_unfinished_children(engine: Services) -> None:
    dynamic_steps.FAILING.clear()
    # Children fail (so they stay in error, unfinished) until the parent is cancelled.
    dynamic_steps.FAILING.update({"a", "b", "c"})
    try:
        view, _ = await engine.tasks.create_task(three())
        await wait_for_task(engine, view.id)
    finally:
        dynamic_steps.FAILING.difference_update({"a", "b", "c"})
    kids = await children_of(view.id)
    assert {k.status for k in kids.values()} == {TaskState.ERROR.value}
    await engine.tasks.cancel_task(view.id)
    for kid in kids.values():
        assert (await engine.tasks.get_task(kid.id)).status is TaskState.CANCELLED


async def test_cancelling_a_waiting_parent_cancels_running_children(services: Services) -> None:
    """With no workers, a child stays pending; the parent's step is parked on it."""
    view, _ = await services.tasks.create_task(
        CreateTask(namespace="dynamic", name="python_parent", context={})
    )
    spawn = await WorkflowStep.get(task_id=view.id, name="spawn")
    assert await services.runner.run_step(spawn.id) == "awaiting"
    parked = await WorkflowStep.get(id=spawn.id)
    assert parked.status == StepState.IN_PROGRESS.value
    assert parked.lease_expires_at is None and str(parked.lease_owner).startswith("awaiting-child/")
    # A sweep takes nothing back from a parked step: no worker holds it.
    report = await services.sweeper.sweep()
    assert report.reaped == 0
    await services.tasks.cancel_task(view.id)
    (kid,) = (await children_of(view.id)).values()
    assert (await services.tasks.get_task(kid.id)).status is TaskState.CANCELLED


def test_a_cycle_of_task_steps_is_refused_at_load(tmp_path: Path, step_store: str) -> None:
    for me, other in (("ping", "pong"), ("pong", "ping")):
        (tmp_path / f"{me}.yaml").write_text(
            f"name: {me}\nnamespace_name: loop\nversion: 1.0.0\nstep_templates:\n"
            f"  - name: call\n    task: {{namespace: loop, name: {other}}}\n"
        )
    with pytest.raises(TemplateInvalid, match=r"cycle: loop\.ping -> loop\.pong -> loop\.ping"):
        HandlerRegistry.load([tmp_path], examples=False)


async def test_rest_and_graphql_link_parent_and_children(engine: Services) -> None:
    import httpx

    from server.app import create_app

    view, _ = await engine.tasks.create_task(three())
    await wait_for_task(engine, view.id)
    kids = await children_of(view.id)
    transport = httpx.ASGITransport(app=create_app(services=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        body = (await client.get(f"/tasker/tasks/{kids['child_a'].id}")).json()
        assert body["parent_task_id"] == str(view.id)
        assert body["parent_step"] == "child_a"
        top = (await client.get(f"/tasker/tasks/{view.id}")).json()
        assert top["parent_task_id"] is None
        query = """query($id: ID!) { task(id: $id) { id parentTaskId
            children { id parentStep status parent { id } } } }"""
        reply = await client.post(
            "/tasker/graphql", json={"query": query, "variables": {"id": str(view.id)}}
        )
        data = reply.json()["data"]["task"]
    assert data["parentTaskId"] is None
    assert sorted(c["parentStep"] for c in data["children"]) == ["child_a", "child_b", "child_c"]
    assert {c["parent"]["id"] for c in data["children"]} == {str(view.id)}
    assert {c["status"] for c in data["children"]} == {"COMPLETE"}


async def test_the_diagram_links_a_task_step_to_its_child(engine: Services) -> None:
    import httpx

    from server.app import create_app

    view, _ = await engine.tasks.create_task(three())
    await wait_for_task(engine, view.id)
    kids = await children_of(view.id)
    transport = httpx.ASGITransport(app=create_app(services=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        diagram = (await client.get(f"/tasker/tasks/{view.id}/task_diagrams")).json()
    nodes = {n["id"]: n for n in diagram["nodes"]}
    assert nodes["child_a"]["url"] == (
        f"/tasker/tasks/{kids['child_a'].id}/task_diagrams?format=html"
    )
    assert nodes["prepare"]["url"].endswith("/workflow_steps/prepare")
