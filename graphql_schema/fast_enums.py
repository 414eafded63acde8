"""Enum values out by a dictionary lookup instead of strawberry's scan.

Strawberry's enum type turns each returned member into its GraphQL name by walking the
enum's values and comparing each (`CustomGraphQLEnumType.coerce_output_value`): for a page of
tasks with their steps that is a scan per status field, hundreds per request. The names
never change once the schema is built, so each enum type gets a member → name table.
"""

from collections.abc import Callable
from typing import Any

from graphql import GraphQLSchema
from strawberry.schema.schema_converter import CustomGraphQLEnumType


def _fast_output(enum_type: CustomGraphQLEnumType) -> Callable[[Any], str]:
    names: dict[Any, str] = {v.value: name for name, v in enum_type.values.items()}
    wrapped: Any = enum_type.wrapped_cls
    slow = enum_type.coerce_output_value

    def coerce_output_value(output_value: Any) -> str:
        if isinstance(output_value, wrapped):
            name = names.get(output_value.value)
            if name is not None:
                return name
        return slow(output_value)

    return coerce_output_value


def speed_up_enums(schema: GraphQLSchema) -> None:
    """Give every strawberry enum type of `schema` its lookup table."""
    for named in schema.type_map.values():
        if isinstance(named, CustomGraphQLEnumType):
            fast = _fast_output(named)
            named.coerce_output_value = fast  # type: ignore[method-assign,assignment]
            named.serialize = fast  # type: ignore[method-assign,assignment]
