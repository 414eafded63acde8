"""A known query's scalar variables, coerced without graphql-core's walk, come out exactly as
graphql-core coerces them; whatever it would refuse or treat specially is left to it."""

from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    parse,
)
from graphql.execution.values import VariableValues, get_variable_values
from strawberry.scalars import JSON

from graphql_schema.plan_variables import ScalarVariables


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, id: strawberry.ID, n: int | None = None, note: JSON | None = None) -> str:
        return f"{id}{n}{note}"


SCHEMA = strawberry.Schema(query=Query)._schema
DOCUMENT = "query ($id: ID!, $n: Int, $note: JSON) { echo(id: $id, n: $n, note: $note) }"


def operation(text: str, schema: GraphQLSchema = SCHEMA) -> OperationDefinitionNode:
    node = parse(text).definitions[0]
    assert isinstance(node, OperationDefinitionNode)
    return node


def coerced(inputs: dict[str, Any]) -> VariableValues | None:
    quick = ScalarVariables.of(SCHEMA, operation(DOCUMENT).variable_definitions)
    assert quick is not None
    return quick.coerce(inputs)


@pytest.mark.parametrize(
    "inputs",
    [
        {"id": "a", "n": 3, "note": {"deep": [1, 2]}},
        {"id": 12, "n": -(2**31), "note": "text"},
        {"id": "x", "n": 0, "note": [None], "unused": object()},
    ],
)
def test_accepted_values_are_graphql_cores_own(inputs: dict[str, Any]) -> None:
    mine = coerced(inputs)
    theirs = get_variable_values(SCHEMA, operation(DOCUMENT).variable_definitions, inputs)
    assert isinstance(theirs, VariableValues) and mine is not None
    assert mine.coerced == theirs.coerced
    assert described(mine) == described(theirs)


def described(values: VariableValues) -> dict[str, tuple[str, object, object]]:
    # Each coercion makes its own type wrappers (`ID!`), equal only to themselves.
    return {
        name: (str(s.signature.type), s.signature.default, s.value)
        for name, s in values.sources.items()
    }


@pytest.mark.parametrize(
    "inputs",
    [
        {"n": 1, "note": 1},  # a non-null variable missing
        {"id": None, "n": 1, "note": 1},  # a non-null variable null
        {"id": "a", "note": 1},  # a nullable one omitted: left out, by graphql-core
        {"id": "a", "n": None, "note": 1},  # a nullable one null
        {"id": "a", "n": 2**31, "note": 1},  # beyond 32 bits: refused
        {"id": "a", "n": "3", "note": 1},  # a string for an Int: refused
        {"id": 1.5, "n": 1, "note": 1},  # a float for an ID: refused
        {"id": True, "n": 1, "note": 1},
    ],
)
def test_anything_else_is_left_to_graphql_core(inputs: dict[str, Any]) -> None:
    assert coerced(inputs) is None


def test_only_plain_scalar_variables_are_taken() -> None:
    field = GraphQLField(GraphQLString, {"s": GraphQLArgument(GraphQLString)})
    schema = GraphQLSchema(GraphQLObjectType("Query", {"f": field}))
    for text in (
        'query ($s: String = "x") { f(s: $s) }',  # a default
        "query ($s: [String]) { f }",  # a list
    ):
        assert ScalarVariables.of(schema, operation(text, schema).variable_definitions) is None
    text = "query ($s: String) { f(s: $s) }"
    plain = ScalarVariables.of(schema, operation(text, schema).variable_definitions)
    assert plain is not None and plain.scalars[0][1] is GraphQLString
