"""Permissions derived from the parsed GraphQL document: aliases, fragments, inline fragments,
nested resources and several operations in one document, checked before anything runs."""

from typing import Any

import pytest
from graphql import parse
from starlette.testclient import TestClient

from graphql_schema.permissions import required_permissions
from graphql_schema.schema import build_schema
from server.config import Settings
from tests.security.conftest import Tokens

URL = "/tasker/graphql"
SCHEMA = build_schema(Settings())._schema
TWO_RESOURCES = "{ tasks(first: 1) { edges { node { id steps { name } } } } }"
FRAGMENTED = """
query Sneaky { a: namespaces { name } b: tasks(first: 1) { ...T } }
fragment T on TaskConnection { edges { node { ...S } } }
fragment S on Task { id ... on Task { dependencies { __typename } } }
"""
MIXED = """
query Read { namespaces { name } }
mutation Write { cancelTask(id: "00000000-0000-0000-0000-000000000001") { __typename } }
"""


def post(client: TestClient, token: str | None, query: str, **extra: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(URL, json={"query": query, **extra}, headers=headers)


def test_a_query_touching_two_resources_needs_both(rs256_client: TestClient, tokens: Tokens):
    refused = post(rs256_client, tokens.valid(["tasker.task:index"]), TWO_RESOURCES)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == (
        "Insufficient permissions for tasker.workflow_step:index"
    )
    both = tokens.valid(["tasker.task:index", "tasker.workflow_step:index"])
    assert post(rs256_client, both, TWO_RESOURCES).json()["data"] is not None


def test_aliases_and_nested_fragments_are_seen_through(rs256_client: TestClient, tokens: Tokens):
    assert required_permissions(SCHEMA, parse(FRAGMENTED)) == {
        "tasker.handler:index",
        "tasker.task:index",
        "tasker.workflow_step:index",
    }
    partial = tokens.valid(["tasker.handler:index", "tasker.task:index"])
    refused = post(rs256_client, partial, FRAGMENTED)
    assert refused.status_code == 403
    assert "tasker.workflow_step:index" in refused.json()["errors"][0]["message"]
    full = tokens.valid(["tasker.handler:index", "tasker.task:index", "tasker.workflow_step:*"])
    assert post(rs256_client, full, FRAGMENTED).status_code == 200


def test_only_the_selected_operation_counts(rs256_client: TestClient, tokens: Tokens):
    document = parse(MIXED)
    assert required_permissions(SCHEMA, document, "Read") == {"tasker.handler:index"}
    assert required_permissions(SCHEMA, document, "Write") == {"tasker.task:cancel"}
    reader = tokens.valid(["tasker.handler:index"])
    assert post(rs256_client, reader, MIXED, operationName="Read").status_code == 200
    refused = post(rs256_client, reader, MIXED, operationName="Write")
    assert refused.status_code == 403
    assert refused.json()["data"] is None


def test_without_an_operation_name_the_whole_document_counts():
    assert required_permissions(SCHEMA, parse(MIXED)) == {
        "tasker.handler:index",
        "tasker.task:cancel",
    }


def test_a_refused_mutation_does_not_run(rs256_client: TestClient, tokens: Tokens):
    create = """mutation { createTask(input: {namespace: "payments", name: "process_payment",
      context: {payment_id: 1}}) { __typename ... on Task { id } } }"""
    count = """{ tasks(first: 1) { totalCount } }"""
    reader = tokens.valid(["tasker.task:index"])
    before = post(rs256_client, reader, count).json()["data"]["tasks"]["totalCount"]
    refused = post(rs256_client, reader, create)
    assert refused.status_code == 403
    after = post(rs256_client, reader, count).json()["data"]["tasks"]["totalCount"]
    assert after == before


@pytest.mark.parametrize(
    "query", ["{ __typename }", "{ __schema { queryType { name } } }"], ids=["typename", "schema"]
)
def test_introspection_needs_a_token_but_no_permission(
    rs256_client: TestClient, tokens: Tokens, query: str
):
    assert post(rs256_client, None, query).status_code == 401
    assert post(rs256_client, tokens.valid([]), query).status_code == 200


def test_the_refusal_wins_over_a_cached_validation(rs256_client: TestClient, tokens: Tokens):
    """The validation cache must never let a document run that authorization refused."""
    query = "{ namespaces { name } }"
    assert post(rs256_client, tokens.valid(["*"]), query).status_code == 200
    assert post(rs256_client, tokens.valid(["tasker.task:index"]), query).status_code == 403


def test_get_queries_are_checked_too(rs256_client: TestClient, tokens: Tokens):
    token = tokens.valid(["tasker.task:index"])
    response = rs256_client.get(
        URL,
        params={"query": "{ namespaces { name } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403
