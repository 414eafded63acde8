"""GraphQL reads: the handler catalogue, one task with its relations, the tasks connection."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.container import Services
from server.domain.states import TaskState
from server.domain.views import CreateTask
from tests.support.statements import Statements
from tests.support.waiting import wait_for_task

PAYMENT = {"payment_id": 1, "amount": 10.0}


@pytest.fixture
async def services_client(services: Services) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """A client over services with no workers: tasks stay where they are put."""
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, services


async def gql(client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/tasker/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


async def create(engine, name="process_payment", namespace="payments", context=None, **kw):
    task, _ = await engine.tasks.create_task(
        CreateTask(namespace=namespace, name=name, context=context or PAYMENT, **kw)
    )
    return task


class TestCatalogue:
    async def test_namespaces_list_their_handlers(self, client):
        data = await gql(
            client, "{ namespaces { name description handlerCount handlers { name version } } }"
        )
        by_name = {n["name"]: n for n in data["namespaces"]}
        assert {"payments", "inventory", "notifications"} <= set(by_name)
        payments = by_name["payments"]
        assert payments["handlerCount"] == 5 == len(payments["handlers"])
        assert {"name": "process_payment", "version": "2.1.0"} in payments["handlers"]

    async def test_namespace_by_name_or_null(self, client):
        data = await gql(
            client,
            '{ a: namespace(name: "payments") { name } b: namespace(name: "nope") { name } }',
        )
        assert data == {"a": {"name": "payments"}, "b": None}

    async def test_handler_has_steps_and_graph(self, client):
        data = await gql(
            client,
            """{ handler(namespace: "payments", name: "process_payment", version: "2.1.0") {
            name namespace version fullName description versions
            stepTemplates { name handlerClass dependsOn retryable retryLimit skippable customEvents
                            description timeoutSeconds }
            dependencyGraph { nodes edges { from to } executionOrder } } }""",
        )
        handler = data["handler"]
        assert handler["fullName"] == "payments.process_payment@2.1.0"
        steps = {s["name"]: s for s in handler["stepTemplates"]}
        assert steps["charge_card"]["dependsOn"] == ["validate_payment"]
        assert steps["charge_card"]["retryLimit"] == 3
        assert steps["charge_card"]["timeoutSeconds"] == 30
        assert steps["send_confirmation"]["skippable"] is True
        assert {"from": "validate_payment", "to": "charge_card"} in handler["dependencyGraph"][
            "edges"
        ]
        assert handler["dependencyGraph"]["executionOrder"] == [
            "validate_payment",
            "charge_card",
            "update_order",
            "send_confirmation",
        ]

    async def test_handler_without_version_is_the_latest_by_semver(self, client):
        data = await gql(
            client,
            '{ handler(namespace: "notifications", name: "send_email") { version versions } }',
        )
        assert data["handler"]["versions"][0] == data["handler"]["version"]
        assert data["handler"]["versions"] == sorted(
            data["handler"]["versions"],
            key=lambda v: tuple(int(p) for p in v.split(".")),
            reverse=True,
        )
        assert len(data["handler"]["versions"]) >= 2

    @pytest.mark.parametrize(
        ("namespace", "name", "version"),
        [
            ("payments", "nope", None),
            ("nope", "process_payment", None),
            ("payments", "process_payment", "9.9.9"),
        ],
    )
    async def test_unknown_handler_is_null(self, client, namespace, name, version):
        data = await gql(
            client,
            "query($ns: String!, $n: String!, $v: String) "
            "{ handler(namespace: $ns, name: $n, version: $v) { name } }",
            {"ns": namespace, "n": name, "v": version},
        )
        assert data == {"handler": None}


TASK_QUERY = """query($id: ID!) { task(id: $id) {
    id name namespace version fullName status context createdAt updatedAt completedAt
    initiator sourceSystem reason tags
    steps { id name status attempts retryLimit retryable skippable results inputs startedAt
            completedAt nextAttemptAt lastError errorClass durationMs parents children
            blockedReason { code message waitingOn until }
            transitions { fromStatus toStatus } }
    transitions { cursor stepName fromStatus toStatus reason occurredAt }
    dependencies { analysis readySteps completedSteps blockedSteps { step reason { code } } } } }"""


class TestTask:
    async def test_completed_task_with_steps_and_history(self, client, engine):
        task = await create(engine, initiator="tests", reason="check", tags=("a", "b"))
        await wait_for_task(engine, task.id)
        data = (await gql(client, TASK_QUERY, {"id": str(task.id)}))["task"]
        assert data["id"] == str(task.id)
        assert data["status"] == "COMPLETE"
        assert data["fullName"] == "payments.process_payment@2.1.0"
        assert (data["context"], data["initiator"], data["tags"]) == (PAYMENT, "tests", ["a", "b"])
        assert data["completedAt"] is not None
        steps = {s["name"]: s for s in data["steps"]}
        assert list(steps) == [
            "validate_payment",
            "charge_card",
            "update_order",
            "send_confirmation",
        ]
        charge = steps["charge_card"]
        assert charge["status"] == "COMPLETE" and charge["attempts"] == 1
        assert charge["parents"] == ["validate_payment"] and charge["children"] == ["update_order"]
        assert charge["blockedReason"] is None and charge["durationMs"] >= 0
        assert charge["results"]
        assert [t["toStatus"] for t in charge["transitions"]] == [
            "PENDING",
            "IN_PROGRESS",
            "COMPLETE",
        ]
        assert data["transitions"][-1]["stepName"] is None
        assert data["transitions"][-1]["toStatus"] == "COMPLETE"
        assert data["dependencies"]["completedSteps"] == list(steps)

    async def test_pending_steps_say_what_they_wait_on(self, services_client):
        client, services = services_client
        task = await create(services)
        steps = (await gql(client, TASK_QUERY, {"id": str(task.id)}))["task"]["steps"]
        reasons = {s["name"]: s["blockedReason"] for s in steps}
        assert reasons["charge_card"]["code"] == "waiting_on_parents"
        assert reasons["charge_card"]["waitingOn"] == ["validate_payment"]
        # No worker consumes here and none heartbeats: the ready step has nobody to run it.
        assert reasons["validate_payment"]["code"] == "no_live_worker"

    async def test_failed_step_reports_its_error(self, client, engine):
        task = await create(
            engine, context={**PAYMENT, "simulate_permanent_failure": "charge_card"}
        )
        done = await wait_for_task(engine, task.id)
        assert done.status is TaskState.ERROR
        data = (await gql(client, TASK_QUERY, {"id": str(task.id)}))["task"]
        steps = {s["name"]: s for s in data["steps"]}
        assert data["status"] == "ERROR"
        assert steps["charge_card"]["status"] == "ERROR"
        assert "simulated permanent failure" in steps["charge_card"]["lastError"]
        assert steps["charge_card"]["blockedReason"]["code"] == "failed_permanently"
        assert steps["update_order"]["blockedReason"]["code"] == "upstream_failed"
        blocked = {b["step"]: b["reason"]["code"] for b in data["dependencies"]["blockedSteps"]}
        assert blocked["charge_card"] == "failed_permanently"

    @pytest.mark.parametrize("task_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", ""])
    async def test_unknown_task_is_null(self, client, task_id):
        assert await gql(client, "query($id: ID!) { task(id: $id) { id } }", {"id": task_id}) == {
            "task": None
        }


PAGE = """query($first: Int!, $after: String, $ns: String, $name: String, $status: TaskStatus) {
  tasks(first: $first, after: $after, namespace: $ns, name: $name, status: $status) {
    totalCount edges { cursor node { id status name } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""


class TestTasksConnection:
    async def test_pages_newest_first_without_gaps_or_repeats(self, services_client):
        client, services = services_client
        created = [await create(services) for _ in range(5)]
        seen: list[str] = []
        after = None
        while True:
            page = (await gql(client, PAGE, {"first": 2, "after": after}))["tasks"]
            assert page["totalCount"] == 5
            seen += [e["node"]["id"] for e in page["edges"]]
            assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
            after = page["pageInfo"]["endCursor"]
            if not page["pageInfo"]["hasNextPage"]:
                break
        assert seen == [str(t.id) for t in reversed(created)]

    async def test_cursor_is_stable_while_tasks_are_created(self, services_client):
        client, services = services_client
        first = [await create(services) for _ in range(3)]
        page = (await gql(client, PAGE, {"first": 2}))["tasks"]
        await create(services)
        rest = (await gql(client, PAGE, {"first": 10, "after": page["pageInfo"]["endCursor"]}))[
            "tasks"
        ]
        assert [e["node"]["id"] for e in rest["edges"]] == [str(first[0].id)]
        assert rest["totalCount"] == 4

    async def test_filters(self, services_client):
        client, services = services_client
        await create(services)
        await create(
            services,
            namespace="inventory",
            name="check_availability",
            context={"items": [{"sku": "A", "quantity": 1}]},
        )
        by_ns = (await gql(client, PAGE, {"first": 10, "ns": "inventory"}))["tasks"]
        assert [e["node"]["name"] for e in by_ns["edges"]] == ["check_availability"]
        by_status = (await gql(client, PAGE, {"first": 10, "status": "COMPLETE"}))["tasks"]
        assert by_status["totalCount"] == 0 and by_status["pageInfo"]["endCursor"] is None
        by_name = (await gql(client, PAGE, {"first": 10, "name": "process_payment"}))["tasks"]
        assert by_name["totalCount"] == 1

    async def test_tasks_are_counted_only_when_asked_and_in_the_pages_statement(
        self, services_client, statements: Statements
    ):
        client, services = services_client
        for _ in range(3):
            await create(services)

        def counts() -> list[str]:
            return [s for s in statements.seen if "COUNT(" in s.upper()]

        page = "{ tasks(first: 2) { edges { node { id } } pageInfo { hasNextPage } } }"
        statements.seen.clear()
        data = (await gql(client, page))["tasks"]
        assert len(data["edges"]) == 2 and data["pageInfo"]["hasNextPage"] is True
        assert counts() == []
        asked = [  # the field under an alias, in a named fragment, in an inline fragment
            "{ tasks(first: 2) { n: totalCount } }",
            "{ tasks(first: 2) { ...F } } fragment F on TaskConnection { totalCount }",
            "{ tasks(first: 2) { ... on TaskConnection { totalCount } } }",
        ]
        for document in asked:
            statements.seen.clear()
            assert list((await gql(client, document))["tasks"].values()) == [3]
            # Counted in the page's own statement: one statement read the page and its total.
            assert len(counts()) == 1 and len(statements.seen) == 1, statements.seen

    async def test_bad_cursor_is_a_validation_error(self, client):
        response = await client.post(
            "/tasker/graphql", json={"query": PAGE, "variables": {"first": 1, "after": "garbage"}}
        )
        error = response.json()["errors"][0]
        assert response.status_code == 200
        assert error["message"] == "Invalid cursor"
        assert error["extensions"]["code"] == "VALIDATION_ERROR"
        assert error["extensions"]["details"] == {"after": ["is not a valid cursor"]}
