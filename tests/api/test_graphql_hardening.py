"""Bad input is a GraphQL error (never a 500, never executed); crashes are masked and logged."""

import logging
from typing import Any

import pytest
import strawberry.schema.schema
from starlette.requests import Request

import graphql_schema.extensions
from graphql_schema.context import GraphQLContext
from graphql_schema.schema import build_schema
from server.config import Settings

URL = "/tasker/graphql"
CREATE = """mutation { createTask(input: {namespace: "payments", name: "process_payment",
  context: {payment_id: 1}}) { __typename } }"""


async def post(client, query: str, variables: dict[str, Any] | None = None, **kw: Any):
    return await client.post(URL, json={"query": query, "variables": variables}, **kw)


async def task_count(engine) -> int:
    from server.domain.views import TaskFilter

    return (await engine.tasks.list_tasks_after(TaskFilter(), first=1)).total_count


def context_for(services) -> GraphQLContext:
    return GraphQLContext(services, Request({"type": "http", "headers": []}))


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


def deep(levels: int) -> str:
    return "{ tasks { " + "x { " * levels + "y" + " }" * levels + " } }"


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ("{ namespaces { name ", None, "Syntax Error: Expected Name, found <EOF>."),
        ("{ nope }", None, "Cannot query field 'nope' on type 'Query'."),
        (
            "query($n: Int!) { tasks(first: $n) { totalCount } }",
            {"n": "ten"},
            "Variable '$n' has invalid value: Int cannot represent non-integer value: 'ten'",
        ),
        (
            "query($id: ID!) { task(id: $id) { id } }",
            {},
            "Variable '$id' has invalid value: "
            "Expected a value of non-null type 'ID!' to be provided.",
        ),
        (deep(20), None, "'anonymous' exceeds maximum operation depth of 12"),
        (aliases(1000), None, "1000 aliases found. Allowed: 30"),
        (
            "{ " + "namespaces { name } " * 2_000 + "}",
            None,
            "Syntax Error: Document contains more than 5000 tokens. Parsing aborted.",
        ),
        (
            "{ " + "namespaces { name } " * 49_990 + "}",
            None,  # a 1 MB document
            "Syntax Error: Document is longer than 500000 characters. Parsing aborted.",
        ),
    ],
)
async def test_bad_documents_are_graphql_errors(client, query, variables, message):
    response = await post(client, query, variables)
    assert response.status_code == 200
    body = response.json()
    assert body.get("data") is None
    assert message in [e["message"] for e in body["errors"]]


@pytest.mark.parametrize(
    "query",
    [
        "mutation { "
        + CREATE[len("mutation { ") : -1]
        + " "
        + "x { " * 20
        + "y"
        + " }" * 20
        + " }",
        "mutation { "
        + " ".join(
            f'a{i}: createTask(input: {{namespace: "payments", '
            f'name: "process_payment", context: {{payment_id: {i}}}}}) '
            "{ __typename }"
            for i in range(40)
        )
        + " }",
        CREATE + "}",
        CREATE + " # " + "x" * 1_000_000,
    ],
)
async def test_rejected_mutations_are_never_executed(client, engine, query):
    response = await post(client, query)
    assert response.status_code in (200, 400, 413)
    assert response.json()["errors"]
    assert await task_count(engine) == 0


async def test_a_body_over_the_limit_is_refused_before_parsing(client):
    response = await client.post(
        URL,
        content=b'{"query": "' + b" " * (2 << 20) + b'{ __typename }"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "larger than" in response.text


async def test_a_long_document_is_refused_even_when_mostly_comment(client):
    response = await post(client, "{ __typename } #" + "x" * 1_000_000)
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {"message": "Syntax Error: Document is longer than 500000 characters. Parsing aborted."}
        ],
    }


async def test_malformed_json_is_a_400_with_a_graphql_error(client):
    response = await client.post(
        URL, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "Unable to parse request body as JSON"


async def test_queries_over_get(client):
    response = await client.get(URL, params={"query": '{ namespace(name: "payments") { name } }'})
    assert response.status_code == 200
    assert response.json()["data"] == {"namespace": {"name": "payments"}}


async def test_mutations_over_get_are_refused(client, engine):
    response = await client.get(URL, params={"query": CREATE})
    assert response.status_code == 400
    assert "mutations are not allowed" in response.json()["errors"][0]["message"].lower()
    assert await task_count(engine) == 0


async def test_unexpected_errors_are_masked_and_logged_once_with_the_request_id(
    client, engine, monkeypatch, caplog
):
    async def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(engine.tasks, "get_task", boom)
    with caplog.at_level(logging.DEBUG):
        response = await post(
            client, '{ task(id: "x") { id } }', headers={"X-Request-ID": "req-42"}
        )
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL_ERROR", "requestId": "req-42"}
    assert "hunter2" not in response.text
    assert response.headers["x-request-id"] == "req-42"
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(crashes) == 1 and crashes[0].name == "tasker.graphql"
    assert "req-42" in crashes[0].getMessage() and crashes[0].exc_info is not None


async def test_a_fresh_request_id_when_none_is_given(client):
    response = await post(client, "{ __typename }", headers={"X-Request-ID": "bad id\n"})
    assert len(response.headers["x-request-id"]) == 32


class TestSchemaSettings:
    async def test_introspection_is_on_by_default(self, engine):
        result = await build_schema(Settings()).execute(
            "{ __schema { queryType { name } } }", context_value=context_for(engine)
        )
        assert result.errors is None and result.data == {
            "__schema": {"queryType": {"name": "Query"}}
        }

    async def test_introspection_can_be_switched_off(self, engine):
        schema = build_schema(Settings(graphql_introspection=False))
        result = await schema.execute(
            "{ __schema { queryType { name } } }", context_value=context_for(engine)
        )
        assert result.errors and "introspection" in result.errors[0].message.lower()
        ok = await schema.execute("{ namespaces { name } }", context_value=context_for(engine))
        assert ok.errors is None

    async def test_limits_come_from_settings(self, engine):
        schema = build_schema(
            Settings(graphql_max_depth=2, graphql_max_aliases=1, graphql_max_tokens=40)
        )
        ctx = context_for(engine)
        deep_result = await schema.execute("{ tasks { edges { node { id } } } }", context_value=ctx)
        assert deep_result.errors[0].message == "'anonymous' exceeds maximum operation depth of 2"
        alias_result = await schema.execute("{ a: __typename b: __typename }", context_value=ctx)
        assert alias_result.errors[0].message == "2 aliases found. Allowed: 1"
        long_result = await schema.execute(
            aliases(1).replace("}", "__typename " * 40 + "}"), context_value=ctx
        )
        assert "more than 40 tokens" in long_result.errors[0].message

    async def test_parsing_and_validation_are_cached(self, engine, monkeypatch):
        calls = {"parse": 0, "validate": 0}
        real_parse = strawberry.schema.schema.parse
        real_validate = graphql_schema.extensions.validate_document

        def parse(*a: Any, **k: Any) -> Any:
            calls["parse"] += 1
            return real_parse(*a, **k)

        def validate(*a: Any, **k: Any) -> Any:
            calls["validate"] += 1
            return real_validate(*a, **k)

        monkeypatch.setattr(strawberry.schema.schema, "parse", parse)
        monkeypatch.setattr(graphql_schema.extensions, "validate_document", validate)
        schema = build_schema(Settings())
        for _ in range(3):
            ok = await schema.execute("{ namespaces { name } }", context_value=context_for(engine))
            bad = await schema.execute("{ nope }", context_value=context_for(engine))
            assert ok.errors is None and bad.errors
        # Only documents that passed are remembered: the invalid one costs every time.
        assert calls == {"parse": 1 + 3, "validate": 1 + 3}
