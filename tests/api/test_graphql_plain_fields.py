"""The plain-fields executor answers exactly as strawberry's own executor does.

`graphql_schema.plain_fields` completes plain fields (and objects made only of them) without
graphql-core's per-field calls; whatever it cannot complete goes back to graphql-core. These
tests run the same documents through both executors and compare whole answers: data, errors,
their messages and paths, over real tasks and over a small schema built to misbehave.
"""

import enum
from typing import Any

import pytest
import strawberry
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema.context import GraphQLContext
from graphql_schema.plain_fields import PlainFieldsExecutor
from graphql_schema.schema import build_schema
from server.container import Services
from server.domain.views import CreateTask

TASK_FIELDS = """
fragment StepBits on Step { id name status attempts retryLimit parents children results }
query Page($withSteps: Boolean!, $skipStatus: Boolean!) {
  tasks(first: 10) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      __typename id fullName status @skip(if: $skipStatus) tags context createdAt
      steps @include(if: $withSteps) {
        ...StepBits
        alias: name
        status
        ... on Step { completedAt lastError blockedReason { code waitingOn } }
      }
      again: steps { name }
    } }
  }
}
"""


def answer(result: Any) -> tuple[Any, list[tuple[str, list[Any] | None]]]:
    errors = [(e.message, e.path) for e in result.errors or []]
    return result.data, errors


async def both(schema_args: dict[str, Any], document: str, **kwargs: Any) -> tuple[Any, Any]:
    """The answers of the plain-fields executor and of strawberry's, for one document."""
    plain = strawberry.Schema(
        **schema_args, execution_context_class=PlainFieldsExecutor.for_schema()
    )
    stock = strawberry.Schema(
        **schema_args, execution_context_class=StrawberryGraphQLCoreExecutionContext
    )
    return (
        answer(await plain.execute(document, **kwargs)),
        answer(await stock.execute(document, **kwargs)),
    )


def http_context(services: Services) -> GraphQLContext:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "state": {}}
    return GraphQLContext(services, Request(scope))


class TestTaskerSchema:
    async def test_pages_of_tasks_answer_as_before(self, services: Services):
        for n in range(3):
            await services.tasks.create_task(
                CreateTask(
                    namespace="payments",
                    name="process_payment",
                    context={"payment_id": n, "amount": 10.0},
                )
            )
        fast = build_schema(services.settings)
        stock = build_schema(services.settings)
        assert isinstance(fast.execution_context_class, type)
        assert issubclass(fast.execution_context_class, PlainFieldsExecutor)
        stock.execution_context_class = StrawberryGraphQLCoreExecutionContext
        for with_steps in (True, False):
            for skip in (True, False):
                variables = {"withSteps": with_steps, "skipStatus": skip}
                results = [
                    answer(
                        await schema.execute(
                            TASK_FIELDS,
                            variable_values=variables,
                            context_value=http_context(services),
                        )
                    )
                    for schema in (fast, stock)
                ]
                assert results[0] == results[1]
                data, errors = results[0]
                assert not errors
                edges = data["tasks"]["edges"]
                assert len(edges) == 3
                node = edges[0]["node"]
                assert ("status" in node) is not skip
                assert ("steps" in node) is with_steps
                assert list(node)[:3] == ["__typename", "id", "fullName"]  # selection order
                if with_steps:
                    step = node["steps"][0]
                    assert step["alias"] == step["name"] and "blockedReason" in step


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"


@strawberry.type
class Item:
    name: str
    size: int
    colour: Colour
    tags: list[str]
    note: str | None = None

    @strawberry.field
    def label(self) -> str:
        """A method of the item alone: read as plainly as an attribute; it raises for the
        item with no name, and the error is graphql-core's."""
        return self.name.upper()


def items() -> list[Item]:
    return [
        Item(name="a", size=1, colour=Colour.RED, tags=["x"]),
        Item(name=None, size=2, colour=Colour.RED, tags=["y"]),  # type: ignore[arg-type]
        Item(name="c", size="big", colour=Colour.RED, tags=["z"]),  # type: ignore[arg-type]
        Item(name="d", size=4, colour="purple", tags=["w"]),  # type: ignore[arg-type]
        Item(name="e", size=5, colour=Colour.RED, tags=["v", None]),  # type: ignore[list-item]
    ]


@strawberry.type
class Query:
    @strawberry.field
    def strict(self) -> list[Item] | None:
        return items()

    @strawberry.field
    def loose(self) -> list[Item | None]:
        return [None, *items()]

    @strawberry.field
    def one(self, index: int) -> Item | None:
        return items()[index]


class Shout(SchemaExtension):
    """A field middleware: it must still see every field."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


class TestMisbehavingValues:
    @pytest.mark.parametrize(
        "document",
        [
            "{ strict { name size colour tags note } }",
            "{ strict { label } }",
            "{ loose { size label } }",
            "{ one(index: 0) { label } }",
            "{ strict { note } }",
            "{ loose { name } }",
            "{ loose { note tags } }",
            "{ loose { size } }",
            "{ loose { colour } }",
            "{ one(index: 0) { name size colour tags } }",
            "{ one(index: 1) { name } }",
            "{ one(index: 2) { size } }",
            "{ one(index: 3) { colour } }",
            "{ one(index: 4) { tags } }",
            "{ a: one(index: 0) { n: name n: name t: __typename } b: strict { size } }",
        ],
    )
    async def test_errors_are_graphql_cores(self, document: str):
        plain, stock = await both({"query": Query}, document)
        assert plain == stock

    async def test_the_misbehaving_values_do_fail(self):
        (data, errors), _ = await both({"query": Query}, "{ one(index: 1) { name } }")
        assert data == {"one": None}
        assert errors == [("Cannot return null for non-nullable field Item.name.", ["one", "name"])]

    async def test_a_resolving_extension_sees_every_field(self):
        plain, stock = await both(
            {"query": Query, "extensions": [Shout]}, "{ one(index: 0) { name tags } }"
        )
        assert plain == stock
        assert plain[0] == {"one": {"name": "A", "tags": ["x"]}}
