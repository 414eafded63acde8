"""Fork and bulk actions on every surface, on every step store: a fork's kept steps carry the
original's results without their handlers being called (counted); GraphQL `bulkRerunTasks` is
REST's bulk re-run; a filter matching nothing is a 200 / `BulkResult` with count 0 everywhere;
the CLI forks with and without `--context`."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from server.cli import main
from server.container import Services
from server.db.models import Task
from server.domain.states import TaskState
from server.registry.handler_registry import HandlerRegistry
from tests.conftest import DYNAMIC, WORKFLOWS, on_every_store
from tests.support.bridge import cli_talks_to
from tests.support.dynamic_steps import CALLS, finished
from tests.support.waiting import wait_for_task

pytestmark = on_every_store

ORIGINAL_RETURNS = {"a": {"n": 1, "said": "original a"}, "d": {"n": 4, "said": "original d"}}
NEW_RETURNS = {"a": {"n": 100}, "b": {"n": 200}, "c": {"n": 300}, "d": {"n": 400}}


@pytest.fixture(scope="module")
def registry() -> HandlerRegistry:
    return HandlerRegistry.load([WORKFLOWS, DYNAMIC], examples=True)


async def steps_of(client: httpx.AsyncClient, task_id: str) -> dict[str, dict[str, Any]]:
    reply = await client.get(f"/tasker/tasks/{task_id}/workflow_steps")
    return {s["name"]: s for s in reply.json()["workflow_steps"]}


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    reply = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    body = reply.json()
    assert reply.status_code == 200 and "errors" not in body, body
    return body["data"]


async def test_a_forks_kept_steps_carry_the_originals_results_without_running(
    engine: Services, client: httpx.AsyncClient
) -> None:
    original = await finished(engine, {"returns": ORIGINAL_RETURNS, "fail": "c"})
    before = await steps_of(client, original)
    calls_before = {name: CALLS[(original, name)] for name in "abcd"}
    assert calls_before == {"a": 1, "b": 1, "c": 1, "d": 1}
    # The new context would make a and d return something else, were they run again.
    reply = await client.post(
        f"/tasker/tasks/{original}/rerun",
        json={"from_step": "b", "context": {"returns": NEW_RETURNS}},
    )
    assert reply.status_code == 201, reply.text
    fork = reply.json()["id"]
    assert (await wait_for_task(engine, fork)).status is TaskState.COMPLETE
    after = await steps_of(client, fork)
    for kept in ("a", "d"):
        assert after[kept]["results"] == before[kept]["results"] == ORIGINAL_RETURNS[kept]
        assert after[kept]["status"] == "complete"
    assert after["b"]["results"] == {"n": 200} and after["c"]["results"] == {"n": 300}
    assert {name: CALLS[(fork, name)] for name in "abcd"} == {"a": 0, "b": 1, "c": 1, "d": 0}
    # The original was not touched, nor run again.
    assert {name: CALLS[(original, name)] for name in "abcd"} == calls_before
    assert (await steps_of(client, original))["c"]["status"] == "error"


BULK_RERUN = """mutation($f: TaskFilter!, $from: String!, $ctx: JSON, $limit: Int,
  $cursor: String) {
  bulkRerunTasks(filter: $f, fromStep: $from, context: $ctx, limit: $limit, cursor: $cursor) {
    __typename
    ... on BulkResult { count ids nextCursor }
    ... on ValidationError { details { field messages } }
    ... on NotFoundError { message } } }"""


async def test_graphql_bulk_rerun_forks_every_matched_task(
    engine: Services, client: httpx.AsyncClient
) -> None:
    originals = [await finished(engine, {"fail": "c"}) for _ in range(3)]
    flt = {"ids": originals, "status": "ERROR"}
    first = await gql(client, BULK_RERUN, {"f": flt, "from": "c", "ctx": {"x": 1}, "limit": 2})
    page = first["bulkRerunTasks"]
    assert page["__typename"] == "BulkResult" and page["count"] == 2 and page["nextCursor"]
    rest = await gql(
        client, BULK_RERUN, {"f": flt, "from": "c", "ctx": {"x": 1}, "cursor": page["nextCursor"]}
    )
    forks = page["ids"] + rest["bulkRerunTasks"]["ids"]
    assert len(forks) == 3 and not set(forks) & set(originals)
    rows = await Task.filter(id__in=forks).values_list("forked_from", "context")
    assert sorted(str(f) for f, _ in rows) == sorted(originals)
    assert {json.dumps(c) for _, c in rows} == {json.dumps({"x": 1})}
    for fork in forks:
        assert (await wait_for_task(engine, fork)).status is TaskState.COMPLETE
        assert CALLS[(fork, "a")] == 0 and CALLS[(fork, "c")] == 1


async def test_graphql_bulk_rerun_refusals(engine: Services, client: httpx.AsyncClient) -> None:
    original = await finished(engine, {})
    empty = await gql(client, BULK_RERUN, {"f": {"ids": [original]}, "from": ""})
    assert empty["bulkRerunTasks"]["__typename"] == "ValidationError"
    assert "fromStep" in str(empty) or "from_step" in str(empty)
    unknown_step = await gql(client, BULK_RERUN, {"f": {"ids": [original]}, "from": "zzz"})
    assert unknown_step["bulkRerunTasks"]["count"] == 0  # no such step: left out, not an error
    bad_cursor = await gql(
        client, BULK_RERUN,
        {"f": {"ids": [original]}, "from": "b", "cursor": "00000000-0000-0000-0000-000000000000"},
    )  # fmt: skip
    assert bad_cursor["bulkRerunTasks"]["__typename"] == "NotFoundError"
    bad_limit = await gql(client, BULK_RERUN, {"f": {}, "from": "b", "limit": 0})
    assert bad_limit["bulkRerunTasks"]["__typename"] == "ValidationError"
    listed = await gql(client, BULK_RERUN, {"f": {"ids": [original]}, "from": "b", "ctx": [1]})
    assert listed["bulkRerunTasks"]["__typename"] == "ValidationError"
    assert "context" in str(listed["bulkRerunTasks"]["details"])
    nul = await gql(client, BULK_RERUN, {"f": {"name": "a\u0000"}, "from": "b"})
    assert nul["bulkRerunTasks"]["__typename"] == "ValidationError"


EMPTY = {"count": 0, "ids": [], "next_cursor": None}


async def test_a_filter_matching_nothing_is_count_0_on_every_surface(
    engine: Services, client: httpx.AsyncClient
) -> None:
    await finished(engine, {})
    nothing = {"namespace": "dynamic", "name": "no_such_handler"}
    for action, extra in (("cancel", {}), ("retry", {}), ("rerun", {"from_step": "b"})):
        reply = await client.post(f"/tasker/tasks/bulk/{action}", json={"filter": nothing, **extra})
        assert (reply.status_code, reply.json()) == (200, EMPTY), action
    gql_nothing = {"namespace": "dynamic", "name": "no_such_handler"}
    for field, args in (
        ("bulkCancelTasks", ""),
        ("bulkRetryTasks", ""),
        ("bulkRerunTasks", ', fromStep: "b"'),
    ):
        query = f"""mutation($f: TaskFilter!) {{ {field}(filter: $f{args}) {{
            __typename ... on BulkResult {{ count ids nextCursor }} }} }}"""
        data = await gql(client, query, {"f": gql_nothing})
        assert data[field] == {
            "__typename": "BulkResult",
            "count": 0,
            "ids": [],
            "nextCursor": None,
        }, field


async def test_cli_forks_with_and_without_context(
    engine: Services, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_talks_to(client, monkeypatch)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--url", "http://testserver"])

    original = await finished(engine, {"returns": ORIGINAL_RETURNS})
    plain = await asyncio.to_thread(run, "task", "rerun", original, "--from", "c", "--json")
    assert plain.exit_code == 0, plain.output
    fork = json.loads(plain.stdout)
    assert fork["forked_from"] == original and fork["context"] == {"returns": ORIGINAL_RETURNS}
    shown = await asyncio.to_thread(run, "task", "show", fork["id"])
    assert shown.exit_code == 0, shown.output
    assert f"forked from task {original}" in shown.output
    bulk = await asyncio.to_thread(
        run, "tasks", "rerun", "--id", original, "--from", "b",
        "--context", '{"returns": {"b": {"n": 2}}}', "--yes", "--json",
    )  # fmt: skip
    assert bulk.exit_code == 0, bulk.output
    (new_id,) = json.loads(bulk.stdout)["ids"]
    assert (await wait_for_task(engine, new_id)).status is TaskState.COMPLETE
    steps = await steps_of(client, new_id)
    assert steps["b"]["results"] == {"n": 2}
    assert steps["a"]["results"] == ORIGINAL_RETURNS["a"] and CALLS[(new_id, "a")] == 0
    bad = await asyncio.to_thread(
        run, "tasks", "rerun", "--id", original, "--from", "b", "--context", "[1]", "--yes"
    )
    assert bad.exit_code == 2 and "JSON object" in bad.output
