"""A compiled plan answers a document as graphql-core does, or stops (`Fallback`) where
graphql-core reports an error, over values that misbehave: nulls where the schema says
non-null, values a scalar or enum refuses, a method of the object that raises. Lists of
objects whose selection is all plain reads are made in one loop; the rest field by field."""

from typing import Any

import pytest
import strawberry
from graphql import OperationDefinitionNode, parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema.plain_fields import method_of_source
from graphql_schema.plan_runs import answer
from graphql_schema.query_plans import Fallback, compile_query
from tests.api.test_graphql_plain_fields import Query

SCHEMA = strawberry.Schema(
    query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext
)


async def planned(document: str) -> dict[str, Any] | None:
    """The plan's data, or None when the plan stops for graphql-core to answer."""
    parsed = parse(document)
    operation = parsed.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    plan = compile_query(SCHEMA._schema, parsed, operation)
    assert plan is not None, document
    try:
        return await answer(plan, None, None)
    except Fallback:
        return None


@pytest.mark.parametrize(
    "document",
    [
        "{ strict { name size colour tags note } }",
        "{ strict { name label } }",
        "{ strict { note } }",
        "{ strict { __typename note } }",
        "{ loose { name } }",
        "{ loose { note tags } }",
        "{ loose { note } }",
        "{ loose { size } }",
        "{ loose { colour } }",
        "{ loose { label } }",
        "{ one(index: 0) { name size colour tags label } }",
        "{ one(index: 1) { name } }",
        "{ one(index: 2) { size } }",
        "{ one(index: 4) { tags } }",
    ],
)
async def test_a_plan_answers_as_graphql_core_or_stops(document: str):
    stock = await SCHEMA.execute(document)
    mine = await planned(document)
    if stock.errors:
        assert mine is None, (document, mine)
    else:
        assert mine == stock.data


async def test_clean_lists_are_answered_by_the_plan():
    assert await planned("{ strict { note } }") == {"strict": [{"note": None}] * 5}
    loose = await planned("{ loose { __typename note } }")
    assert loose == {"loose": [None] + [{"__typename": "Item", "note": None}] * 5}


def test_only_a_method_of_the_object_alone_is_read_plainly():
    fields = SCHEMA._schema.get_type("Item").fields  # type: ignore[union-attr]
    assert method_of_source(fields["label"]) is not None
    assert method_of_source(fields["name"]) is None  # an attribute, read as one
    query_fields = SCHEMA._schema.query_type.fields  # type: ignore[union-attr]
    assert method_of_source(query_fields["one"]) is None  # it takes an argument
