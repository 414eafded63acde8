"""Known queries answered by their compiled plan give graphql-core's answers.

The first request of a document always runs the full way; from the second on, a query
`graphql_schema.query_plans` can plan is answered by walking its plan. These tests compare the
two answers for the shapes plans cover, check which documents are planned, that an error met
by a plan is reported by the full way, and the one-statement read of a task with its steps.
"""

import gc
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_schema.app import PATH
from graphql_schema.query_plans import OperationPlan
from server.container import Services
from tests.api.test_graphql_known_documents import (  # noqa: F401  (fixtures, used by name)
    graphql_app,
    post,
    still_app,
    still_client,
)
from tests.api.test_graphql_loaders import add_tasks, counting_queries

ONE_TASK = """query One($id: ID!) { task(id: $id) {
  ...Head
  ... on Task { created: createdAt paused }
  ... { priority }
  steps { __typename n: name status attempts parents children results blockedReason { code } }
  again: steps { name }
  dependencies { analysis readySteps blockedSteps { step reason { code } } }
} }
fragment Head on Task { __typename id status fullName context tags runAt }"""

PAGE = """query Page($first: Int!) { tasks(first: $first, namespace: "payments") {
  totalCount
  pageInfo { hasNextPage endCursor }
  edges { cursor node { id status steps { name status } } } } }"""

# A page's steps are read once for the page, before it is walked: every `steps` field of its
# tasks (aliases, fragments, edges and payloads in some of them) is answered from that read.
PAGE_STEPS = """query PageSteps { tasks(first: 3, namespace: "payments") { edges { node {
  id light: steps { name } ...Graph parent { id steps { name } } } } } }
fragment Graph on Task { steps { name parents ... on Step { children results } } }"""

CATALOGUE = """{ namespaces { name handlerCount handlers { name version fullName } }
  handler(namespace: "payments", name: "process_payment") { fullName } }"""

MISSING = """query Missing($id: ID!) { task(id: $id) { id } }"""

WITH_DIRECTIVE = """query Maybe($id: ID!, $steps: Boolean!) { task(id: $id) {
  id steps @include(if: $steps) { name } } }"""


def plan_of(app: Starlette, query: str, name: str | None) -> OperationPlan | bool | None:
    plans = graphql_app(app).schema.plans  # type: ignore[attr-defined]
    found: OperationPlan | bool | None = plans.plans.get(query, name)
    return found


@pytest.fixture
def both(
    still_app: Starlette,  # noqa: F811
    still_client: httpx.AsyncClient,  # noqa: F811
) -> tuple[Starlette, httpx.AsyncClient]:
    """The app over services with no workers, and a client of it."""
    return still_app, still_client


async def twice(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    """The full way's answer, after checking the plan's answer is the same."""
    first = await post(client, query, variables)
    again = await post(client, query, variables)
    assert again == first
    return first


async def test_planned_queries_answer_as_the_full_way(
    both: tuple[Starlette, httpx.AsyncClient], services: Services
):
    app, client = both
    ids = await add_tasks(services, 3)
    cases: list[tuple[str, str | None, dict[str, Any]]] = [
        (ONE_TASK, "One", {"id": ids[0]}),
        (PAGE, "Page", {"first": 2}),
        (PAGE_STEPS, "PageSteps", {}),
        (CATALOGUE, None, {}),
        (MISSING, "Missing", {"id": "00000000-0000-0000-0000-000000000000"}),
    ]
    for query, name, variables in cases:
        status, body = await twice(client, query, variables)
        assert status == 200 and "errors" not in body, body
        assert isinstance(plan_of(app, query, name), OperationPlan), query
    _, one = await post(client, ONE_TASK, {"id": ids[1]})
    task = one["data"]["task"]
    assert task["__typename"] == "Task" and task["id"] == ids[1]
    assert [s["n"] for s in task["steps"]] == [s["name"] for s in task["again"]]
    assert {s["__typename"] for s in task["steps"]} == {"Step"}
    _, steps = await post(client, PAGE_STEPS, {})
    for edge in steps["data"]["tasks"]["edges"]:
        node = edge["node"]
        assert [s["name"] for s in node["light"]] == [s["name"] for s in node["steps"]]
        assert node["steps"][1]["parents"] == [node["steps"][0]["name"]]
        assert node["steps"][0]["children"] and node["parent"] is None
    _, page = await post(client, PAGE, {"first": 3})
    assert len(page["data"]["tasks"]["edges"]) == 3  # the variables of this request, not the plan's


async def test_documents_plans_do_not_cover_run_through_graphql_core(
    both: tuple[Starlette, httpx.AsyncClient], services: Services
):
    app, client = both
    (task_id,) = await add_tasks(services, 1)
    _, with_steps = await twice(client, WITH_DIRECTIVE, {"id": task_id, "steps": True})
    _, without = await twice(client, WITH_DIRECTIVE, {"id": task_id, "steps": False})
    assert len(with_steps["data"]["task"]["steps"]) == 4
    assert without["data"]["task"] == {"id": task_id}
    assert plan_of(app, WITH_DIRECTIVE, "Maybe") is False
    introspection = "{ __schema { queryType { name } } }"
    _, body = await twice(client, introspection, {})
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    assert plan_of(app, introspection, None) is False


async def test_an_error_met_by_a_plan_is_reported_by_the_full_way(
    both: tuple[Starlette, httpx.AsyncClient], services: Services
):
    app, client = both
    (task_id,) = await add_tasks(services, 1)
    # A resolver that raises, deep in a list: the page size of each step's items.
    query = """query Items($id: ID!, $first: Int!) { task(id: $id) {
      id steps { name items(first: $first) { total } } } }"""
    good = await twice(client, query, {"id": task_id, "first": 10})
    assert good[0] == 200 and "errors" not in good[1], good
    assert isinstance(plan_of(app, query, "Items"), OperationPlan)
    status, body = await post(client, query, {"id": task_id, "first": 0})
    assert status == 200 and body["errors"], body
    assert body["errors"][0]["path"][:3] == ["task", "steps", 0]
    # Variables that do not coerce: graphql-core's own message.
    status, body = await post(client, query, {"id": task_id, "first": "ten"})
    assert body["data"] is None and "Int cannot represent" in body["errors"][0]["message"]
    # The plan still answers the next good request.
    assert await post(client, query, {"id": task_id, "first": 10}) == good


async def test_a_task_and_its_steps_are_read_in_one_statement(
    still_client: httpx.AsyncClient,  # noqa: F811
    services: Services,
):
    (task_id,) = await add_tasks(services, 1)
    alone = "query T($id: ID!) { task(id: $id) { id steps { name status } } }"
    edges = "query E($id: ID!) { task(id: $id) { id steps { name parents } } }"
    for query, statements in ((alone, 1), (edges, 2)):
        for _ in range(2):  # the full way, then the plan
            with counting_queries() as ran:
                _, body = await post(still_client, query, {"id": task_id})
            assert len(body["data"]["task"]["steps"]) == 4
            assert len(ran) == statements, ran


async def test_a_stopped_plan_leaves_no_coroutine_unawaited(
    still_app: Starlette,  # noqa: F811
    still_client: httpx.AsyncClient,  # noqa: F811
    services: Services,
):
    """The task's resolver is called (its coroutine made) before the handler's resolver
    refuses its version: the plan stops, and the coroutine it never awaited is closed."""
    app, client = still_app, still_client
    (task_id,) = await add_tasks(services, 1)
    query = """query Both($id: ID!, $version: String) {
      task(id: $id) { id steps { name } }
      handler(namespace: "payments", name: "process_payment", version: $version) { version } }"""
    status, body = await twice(client, query, {"id": task_id, "version": "2.1.0"})
    assert "errors" not in body and isinstance(plan_of(app, query, "Both"), OperationPlan)
    status, body = await post(client, query, {"id": task_id, "version": "not a version"})
    assert status == 200 and body["data"]["task"]["id"] == task_id
    assert [e["path"] for e in body["errors"]] == [["handler"]]
    gc.collect()  # a coroutine never awaited warns when collected (and warnings are errors)


async def test_a_query_sent_by_get_is_answered_from_its_plan_too(
    both: tuple[Starlette, httpx.AsyncClient], services: Services
):
    app, client = both
    (task_id,) = await add_tasks(services, 1)
    query = "query Get($id: ID!) { task(id: $id) { id status } }"
    params = {"query": query, "variables": json.dumps({"id": task_id})}
    first = await client.get(PATH, params=params)
    again = await client.get(PATH, params=params)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["data"]["task"]["id"] == task_id
    assert isinstance(plan_of(app, query, "Get"), OperationPlan)
    # Variables that are not an object: the full way's 400, as before.
    bad = await client.get(PATH, params={"query": query, "variables": "[1]"})
    assert bad.status_code == 400
    # Without a query, a browser still gets GraphiQL.
    page = await client.get(PATH, headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
