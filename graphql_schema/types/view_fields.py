"""Fields of a GraphQL type that read the domain view it wraps.

`StepType` and `TaskType` hold their view and answer each field with a method of the object
alone, instead of copying every field of every row into a new object (23 fields a step, for a
page that shows three). `graphql_schema.plain_fields` reads such a method as plainly as an
attribute: no resolve info, no strawberry wrapper.
"""

from collections.abc import Callable
from typing import TypeVar, cast

import strawberry

S = TypeVar("S")
R = TypeVar("R")


def reads(description: str) -> Callable[[Callable[[S], R]], R]:
    """A field whose value a method of the object alone returns (typed for mypy as that
    value, which is what a reader of the schema's Python types sees)."""
    return cast(Callable[[Callable[[S], R]], R], strawberry.field(description=description))
