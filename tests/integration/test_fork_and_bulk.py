"""Fork (re-run from a step) and bulk actions over REST, on every step store: kept steps are
copied without calling their handlers; bulk retry/cancel apply the single actions' rules."""

import httpx
import pytest

from server.container import Services
from server.db.models import Transition
from server.domain.states import TaskState
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import DYNAMIC, WORKFLOWS, on_every_store
from tests.support.dynamic_steps import CALLS, finished
from tests.support.waiting import wait_for_task

pytestmark = on_every_store


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


async def test_fork_keeps_upstream_and_reruns_downstream(
    engine: Services, client: httpx.AsyncClient
) -> None:
    original = await finished(engine, {"fail": "c"})
    assert (await engine.tasks.get_task(original)).status is TaskState.ERROR
    body = {"from_step": "b", "context": {}, "inputs": {"c": {"fixed": True}}}
    response = await client.post(f"/tasker/tasks/{original}/rerun", json=body)
    assert response.status_code == 201, response.text
    fork = response.json()
    assert fork["forked_from"] == original
    done = await wait_for_task(engine, fork["id"])
    assert done.status is TaskState.COMPLETE and str(done.forked_from) == original
    steps = {
        s["name"]: s
        for s in (await client.get(f"/tasker/tasks/{fork['id']}/workflow_steps")).json()[
            "workflow_steps"
        ]
    }
    assert steps["c"]["inputs"] == {"fixed": True}
    assert steps["a"]["results"] == {"step": "a"} and steps["d"]["results"] == {"step": "d"}
    # Kept: a and d never ran in the fork; b and c did.
    calls = {name: CALLS[(fork["id"], name)] for name in "abcd"}
    assert calls == {"a": 0, "b": 1, "c": 1, "d": 0}
    kept = await Transition.filter(task_id=fork["id"], step_name="a").values_list(
        "to_status", "reason"
    )
    assert kept == [("pending", "created"), ("complete", "kept")]
    task = (await client.get(f"/tasker/tasks/{fork['id']}")).json()
    assert task["forked_from"] == original


async def test_fork_refusals(engine: Services, client: httpx.AsyncClient) -> None:
    original = await finished(engine, {})
    bad = await client.post(f"/tasker/tasks/{original}/rerun", json={"from_step": "nope"})
    assert bad.status_code == 422 and "nope" in bad.text
    bad = await client.post(
        f"/tasker/tasks/{original}/rerun", json={"from_step": "c", "inputs": {"a": {}}}
    )
    assert bad.status_code == 422 and "'a' is not re-run" in bad.text
    missing = await client.post(
        "/tasker/tasks/00000000-0000-0000-0000-000000000000/rerun", json={"from_step": "a"}
    )
    assert missing.status_code == 404


async def test_bulk_retry_and_cancel(engine: Services, client: httpx.AsyncClient) -> None:
    failed = [await finished(engine, {"fail": "a"}) for _ in range(3)]
    ok = await finished(engine, {})
    empty = await client.post("/tasker/tasks/bulk/retry", json={"filter": {"name": "nothing"}})
    assert empty.status_code == 200 and empty.json()["count"] == 0
    page = await client.post(
        "/tasker/tasks/bulk/retry",
        json={"filter": {"namespace": "dynamic", "status": "error"}, "limit": 2},
    )
    assert page.status_code == 200, page.text
    first = page.json()
    assert first["count"] == 2 and first["next_cursor"]
    rest = await client.post(
        "/tasker/tasks/bulk/retry",
        json={"filter": {"namespace": "dynamic"}, "cursor": first["next_cursor"]},
    )
    assert rest.json()["ids"] == [failed[2]]  # `ok` matched but is not in error: left out
    assert ok not in rest.json()["ids"]
    cancelled = await client.post(
        "/tasker/tasks/bulk/cancel", json={"filter": {"ids": failed}, "limit": 10}
    )
    assert cancelled.status_code == 200
    for task_id in cancelled.json()["ids"]:
        status = (await engine.tasks.get_task(task_id)).status
        assert status in {TaskState.CANCELLED}
    rerun = await client.post(
        "/tasker/tasks/bulk/rerun", json={"filter": {"ids": [ok]}, "from_step": "c"}
    )
    assert rerun.status_code == 200 and rerun.json()["count"] == 1
    none = await client.post("/tasker/tasks/bulk/retry", json={"filter": {"ids": ["x"]}})
    assert none.status_code == 200 and none.json()["count"] == 0
    bad = await client.post("/tasker/tasks/bulk/retry", json={"filter": {"name": "a\u0000"}})
    assert bad.status_code == 422


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, object]) -> dict:  # type: ignore[type-arg]
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


RERUN = """mutation($id: ID!, $input: RerunTaskInput!) { rerunTask(id: $id, input: $input) {
  __typename ... on Task { id forkedFrom }
  ... on ValidationError { details { field messages } } } }"""
BULK = """mutation($f: TaskFilter!) { bulkRetryTasks(filter: $f, limit: 10) {
  __typename ... on BulkResult { count ids nextCursor } } }"""


async def test_graphql(engine: Services, client: httpx.AsyncClient) -> None:
    original = await finished(engine, {"fail": "b"})
    data = await gql(client, RERUN, {"id": original, "input": {"fromStep": "zzz"}})
    assert data["rerunTask"]["__typename"] == "ValidationError"
    assert "zzz" in str(data["rerunTask"]["details"])
    data = await gql(client, RERUN, {"id": original, "input": {"fromStep": "b", "context": {}}})
    assert data["rerunTask"]["forkedFrom"] == original
    fork = await wait_for_task(engine, data["rerunTask"]["id"])
    assert fork.status is TaskState.COMPLETE
    assert CALLS[(str(fork.id), "a")] == 0
    data = await gql(client, BULK, {"f": {"ids": [original], "status": "ERROR"}})
    assert data["bulkRetryTasks"] == {
        "__typename": "BulkResult",
        "count": 1,
        "ids": [original],
        "nextCursor": None,
    }
