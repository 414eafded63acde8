"""Steps are read without their edges unless a step's parents or children are asked for
(directly, in a fragment or an inline fragment), and both reads agree with the tables."""

from uuid import UUID

import pytest
from graphql import FieldNode, FragmentDefinitionNode, OperationDefinitionNode, parse

from graphql_schema.selections import selects_any
from server.db.models import StepEdge, WorkflowStep
from tests.api.test_graphql_loaders import add_tasks, counting_queries, idle_client  # noqa: F401

TASK = "query($id: ID!) { task(id: $id) { id steps { %s } } }"


async def steps_of(client, task_id: UUID, selection: str) -> tuple[list[dict], int]:  # type: ignore[no-untyped-def]
    query = TASK % selection
    if "...Graph" in selection:
        query += " fragment Graph on Step { parents children }"
    with counting_queries() as statements:
        response = await client.post(
            "/tasker/graphql", json={"query": query, "variables": {"id": str(task_id)}}
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["task"]["steps"], len(statements)


async def expected_graph(task_id: UUID) -> dict[str, tuple[list[str], list[str]]]:
    names = dict(await WorkflowStep.filter(task_id=task_id).values_list("id", "name"))
    graph: dict[str, tuple[list[str], list[str]]] = {n: ([], []) for n in names.values()}
    for parent, child in await StepEdge.filter(task_id=task_id).values_list(
        "from_step_id", "to_step_id"
    ):
        graph[names[child]][0].append(names[parent])
        graph[names[parent]][1].append(names[child])
    return graph


async def test_edges_are_read_only_when_asked_for(idle_client, services):  # noqa: F811
    await add_tasks(services, 1)
    task_id = (await WorkflowStep.first()).task_id  # type: ignore[union-attr]
    plain, plain_cost = await steps_of(idle_client, task_id, "name status attempts")
    graph = await expected_graph(task_id)
    assert sorted(s["name"] for s in plain) == sorted(graph)
    assert any(parents for parents, _ in graph.values())  # the example has dependencies
    for selection in (
        "name parents children",
        "name ...Graph",
        "name ... on Step { parents children }",
    ):
        steps, cost = await steps_of(idle_client, task_id, selection)
        if plain_cost:  # SQLite: statements are logged (PostgreSQL's fast reads are not)
            assert cost == plain_cost + 1, selection
        got = {s["name"]: (sorted(s["parents"]), sorted(s["children"])) for s in steps}
        assert got == {n: (sorted(p), sorted(c)) for n, (p, c) in graph.items()}, selection


async def test_plain_steps_match_the_table(idle_client, services):  # noqa: F811
    await add_tasks(services, 2)
    task_id = (await WorkflowStep.first()).task_id  # type: ignore[union-attr]
    steps, _ = await steps_of(
        idle_client, task_id, "id name status attempts retryLimit retryable startedAt"
    )
    rows = await WorkflowStep.filter(task_id=task_id).order_by("position", "id")
    assert [s["name"] for s in steps] == [r.name for r in rows]
    assert [s["attempts"] for s in steps] == [r.attempts for r in rows]
    assert [s["retryLimit"] for s in steps] == [r.retry_limit for r in rows]
    assert [s["retryable"] for s in steps] == [r.retryable for r in rows]
    assert [s["status"] for s in steps] == [r.status.upper() for r in rows]


@pytest.mark.parametrize(
    ("document", "asks"),
    [
        ("{ task(id: 1) { steps { name status } } }", False),
        ("{ task(id: 1) { steps { name parents } } }", True),
        ("{ task(id: 1) { steps { ... on Step { children } } } }", True),
        (
            "{ task(id: 1) { steps { ...A } } } fragment A on Step { ...B } "
            "fragment B on Step { parents }",
            True,
        ),
        ("{ task(id: 1) { steps { ...A } } } fragment A on Step { ...A name }", False),
        ("{ task(id: 1) { steps { ...Missing } } }", False),
        ("{ task(id: 1) { steps { p: name } } }", False),
        ("{ task(id: 1) { steps { name: parents } } }", True),
    ],
)
def test_selection_walk(document: str, asks: bool) -> None:
    parsed = parse(document)
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    task = operation.selection_set.selections[0]
    assert isinstance(task, FieldNode) and task.selection_set is not None
    steps = task.selection_set.selections[0]
    assert isinstance(steps, FieldNode)
    assert selects_any([steps], fragments, frozenset({"parents", "children"})) is asks
