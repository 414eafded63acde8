"""A page of tasks with their steps reads the steps' `inputs` and `results` only when the
document shows one of them: they are the largest columns, and were decoded for every step of
every page. Whichever way a document asks, the values it gets are the table's."""

from uuid import UUID

from server.db.models import WorkflowStep
from tests.api.test_graphql_loaders import add_tasks, counting_queries, idle_client  # noqa: F401

PAGE = '{ tasks(first: 10, namespace: "payments") { edges { node { id %s } } } }'
STEPS_READ = "from tasker_workflow_steps where task_id"


async def page(client, selection: str) -> tuple[dict[str, dict[str, dict]], list[str]]:  # type: ignore[no-untyped-def]
    """Each task's steps by name, under each response key of `selection`; the step reads."""
    query = PAGE % selection
    if "...Payloads" in selection:
        query += " fragment Payloads on Step { inputs results }"
    with counting_queries() as statements:
        response = await client.post("/tasker/graphql", json={"query": query})
    body = response.json()
    assert "errors" not in body, body
    out: dict[str, dict[str, dict]] = {}
    for edge in body["data"]["tasks"]["edges"]:
        node = edge["node"]
        for key, steps in node.items():
            if key != "id":
                out[f"{node['id']}/{key}"] = {s["name"]: s for s in steps}
    # The log keeps statements upper-cased.
    return out, [s.lower() for s in statements if STEPS_READ in s.lower()]


async def test_payloads_are_read_only_when_a_document_shows_them(idle_client, services):  # noqa: F811
    ids = await add_tasks(services, 3)
    stored = {}
    for n, step in enumerate(await WorkflowStep.filter(task_id__in=[UUID(i) for i in ids])):
        step.results = {"step": step.name, "n": n, "text": "x" * 200}
        step.inputs = {"given": n}
        await step.save(update_fields=["results", "inputs"])
        stored[(str(step.task_id), step.name)] = (step.inputs, step.results)

    plain, reads = await page(idle_client, "steps { name status }")
    assert len(plain) == 3 and all(len(steps) == 4 for steps in plain.values())
    if services.settings.is_sqlite:  # SQLite logs its page reads; asyncpg's are not logged
        assert reads
    for statement in reads:
        assert "inputs" not in statement and "results" not in statement, statement

    for selection in (
        "steps { name inputs results }",
        "steps { name ...Payloads }",
        "steps { name ... on Step { results inputs } }",
        "light: steps { name } full: steps { name results inputs }",
    ):
        found, reads = await page(idle_client, selection)
        for key, steps in found.items():
            task_id = key.split("/")[0]
            for name, step in steps.items():
                if "results" in step:
                    assert (step["inputs"], step["results"]) == stored[(task_id, name)], key
                else:
                    assert key.endswith("/light"), key
        if services.settings.is_sqlite:
            assert any("results" in statement for statement in reads), selection
