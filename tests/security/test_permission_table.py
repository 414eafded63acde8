"""One permission table (server.domain.permissions) read by REST and GraphQL: the same data
needs the same grant on every surface.

- a task's steps need `tasker.workflow_step:index`, also through `include_dependencies=true`;
- a handler's detail needs `tasker.handler:show`, also under GraphQL `namespaces`;
- cancelling is `:cancel` on both surfaces, and a `:destroy` grant implies it.
"""

import ast
import uuid
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import graphql_schema.permissions
from graphql_schema.permissions import FIELD_PERMISSIONS
from rest_compat.routes import PERMISSIONS
from server.domain import permissions as need
from server.domain.principal import KNOWN_PERMISSIONS, Grants, Principal
from tests.security.conftest import Tokens, authorization_error

ROOT = Path(__file__).resolve().parents[2]
NOPE = str(uuid.UUID(int=11))


def bearer(tokens: Tokens, *permissions: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.valid(list(permissions))}"}


def graphql(client: TestClient, headers: dict[str, str], query: str) -> Any:
    return client.post("/tasker/graphql", json={"query": query}, headers=headers)


@pytest.fixture(scope="module")
def task_id(rs256_client: TestClient, tokens: Tokens) -> str:
    body = {"namespace": "shapes", "name": "diamond", "context": {}}
    created = rs256_client.post(
        "/tasker/tasks", json=body, headers=bearer(tokens, need.CREATE_TASK)
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


# --- step data ----------------------------------------------------------------------------------


def test_include_dependencies_needs_the_step_listing_grant(
    rs256_client: TestClient, tokens: Tokens, task_id: str
):
    url = f"/tasker/tasks/{task_id}?include_dependencies=true"
    refused = rs256_client.get(url, headers=bearer(tokens, need.SHOW_TASK))
    assert refused.status_code == 403, refused.text
    assert refused.json() == authorization_error("tasker.workflow_step:index")
    assert "steps" not in refused.text

    # The task alone still needs only tasker.task:show.
    plain = rs256_client.get(f"/tasker/tasks/{task_id}", headers=bearer(tokens, need.SHOW_TASK))
    assert plain.status_code == 200 and "steps" not in plain.json()

    both = rs256_client.get(url, headers=bearer(tokens, need.SHOW_TASK, need.READ_STEPS))
    assert both.status_code == 200, both.text
    assert {s["name"] for s in both.json()["steps"]} == {"start", "left", "right", "merge"}


def test_every_surface_asks_the_same_grant_for_steps():
    assert PERMISSIONS[("GET", "/tasker/tasks/{task_id}/workflow_steps")] == need.READ_STEPS
    assert FIELD_PERMISSIONS["Task.steps"] == FIELD_PERMISSIONS["Task.dependencies"]
    assert FIELD_PERMISSIONS["Task.steps"] == need.READ_STEPS


# --- handler detail -----------------------------------------------------------------------------

DETAIL = {
    "contextSchema": "contextSchema",
    "stepTemplates": "stepTemplates { name handlerClass }",
    "dependencyGraph": "dependencyGraph { nodes }",
}


@pytest.mark.parametrize("field", sorted(DETAIL))
def test_handler_detail_under_namespaces_needs_handler_show(
    rs256_client: TestClient, tokens: Tokens, field: str
):
    query = f"{{ namespaces {{ name handlers {{ name {DETAIL[field]} }} }} }}"
    refused = graphql(rs256_client, bearer(tokens, need.LIST_HANDLERS), query)
    assert refused.status_code == 403, refused.text
    assert refused.json()["data"] is None
    assert refused.json()["errors"][0]["message"] == "Insufficient permissions for " + (
        "tasker.handler:show"
    )

    allowed = graphql(rs256_client, bearer(tokens, need.LIST_HANDLERS, need.SHOW_HANDLER), query)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["data"]["namespaces"], allowed.text


def test_the_handler_listing_itself_needs_only_the_index_grant(
    rs256_client: TestClient, tokens: Tokens
):
    query = "{ namespaces { name handlers { name version description } } }"
    response = graphql(rs256_client, bearer(tokens, need.LIST_HANDLERS), query)
    assert response.status_code == 200 and response.json()["data"]["namespaces"]


def test_rest_and_graphql_ask_the_same_grant_for_handler_detail():
    assert PERMISSIONS[("GET", "/tasker/handlers/{namespace}/{name}")] == need.SHOW_HANDLER
    assert FIELD_PERMISSIONS["Query.handler"] == need.SHOW_HANDLER


# --- cancelling ---------------------------------------------------------------------------------


def test_cancel_is_the_same_grant_on_both_surfaces():
    assert PERMISSIONS[("DELETE", "/tasker/tasks/{id}")] == FIELD_PERMISSIONS[
        "Mutation.cancelTask"
    ] == "tasker.task:cancel"  # fmt: skip
    step = "/tasker/tasks/{task_id}/workflow_steps/{step_id}"
    assert (
        PERMISSIONS[("DELETE", step)]
        == FIELD_PERMISSIONS["Mutation.cancelStep"]
        == ("tasker.workflow_step:cancel")
    )


@pytest.mark.parametrize(
    "grant", ["tasker.task:cancel", "tasker.task:destroy", "tasker.*:destroy", "tasker.task:*"]
)
def test_rest_delete_accepts_cancel_and_the_older_destroy(
    rs256_client: TestClient, tokens: Tokens, grant: str
):
    response = rs256_client.delete(f"/tasker/tasks/{NOPE}", headers=bearer(tokens, grant))
    assert response.status_code == 404, response.text  # past the gate: the task does not exist


@pytest.mark.parametrize("grant", ["tasker.task:cancel", "tasker.task:destroy"])
def test_graphql_cancel_accepts_cancel_and_the_older_destroy(
    rs256_client: TestClient, tokens: Tokens, grant: str
):
    query = f'mutation {{ cancelTask(id: "{NOPE}") {{ __typename }} }}'
    response = graphql(rs256_client, bearer(tokens, grant), query)
    assert response.status_code == 200, response.text
    assert response.json()["data"] is not None


def test_cancel_without_either_grant_is_refused_on_both_surfaces(
    rs256_client: TestClient, tokens: Tokens
):
    headers = bearer(tokens, "tasker.task:show", "tasker.workflow_step:destroy")
    rest = rs256_client.delete(f"/tasker/tasks/{NOPE}", headers=headers)
    assert rest.status_code == 403
    assert rest.json() == authorization_error("tasker.task:cancel")
    query = f'mutation {{ cancelTask(id: "{NOPE}") {{ __typename }} }}'
    assert graphql(rs256_client, headers, query).status_code == 403


def test_destroy_implies_cancel_and_nothing_else():
    implied = {p for p in KNOWN_PERMISSIONS if Principal("x", frozenset({"tasker.task:destroy"}))
               .allows(p)}  # fmt: skip
    assert implied == {"tasker.task:destroy", "tasker.task:cancel"}
    assert not Grants(["tasker.task:cancel"]).allows("tasker.task:destroy")


# --- one table ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module", ["graphql_schema/permissions.py", "rest_compat/routes.py", "server/auth/gate.py"]
)
def test_adapters_spell_no_permission_of_their_own(module: str):
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    literals = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in KNOWN_PERMISSIONS
    ]
    assert literals == []


def test_graphql_reads_the_core_list_of_permissions():
    assert graphql_schema.permissions.KNOWN_PERMISSIONS is KNOWN_PERMISSIONS
    assert set(FIELD_PERMISSIONS.values()) <= KNOWN_PERMISSIONS
    assert set(PERMISSIONS.values()) <= KNOWN_PERMISSIONS
