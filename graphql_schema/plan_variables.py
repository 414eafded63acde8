"""A known query's variables coerced as graphql-core coerces them, without its general walk.

Most documents sent again and again take a few scalar variables (`query ($id: ID!)`). For
those, graphql-core's coercion works out every variable's type from the document again and
walks a general coercion for each value; in a small query that was a twentieth of the
request. Here each variable's signature is worked out once per plan, and a value is coerced
by its scalar, which is the last step of graphql-core's own coercion.

Only the plain case is taken: every variable a scalar with no default, every value sent and
not null, every value accepted by its scalar. Anything else (a missing or null value, a
default, a list, an input object, an enum, a value the scalar refuses) is None here, and
graphql-core coerces it, reporting what it refuses as always.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, GraphQLNonNull, GraphQLScalarType, GraphQLSchema, Undefined
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import VariableValues, VariableValueSource
from graphql.language import VariableDefinitionNode


@dataclass(frozen=True, slots=True)
class ScalarVariables:
    """The variables of an operation whose variables are all plain scalars."""

    scalars: tuple[tuple[GraphQLVariableSignature, GraphQLScalarType], ...]

    @classmethod
    def of(
        cls, schema: GraphQLSchema, definitions: Sequence[VariableDefinitionNode]
    ) -> "ScalarVariables | None":
        """None when some variable is not a scalar without a default."""
        scalars = []
        for definition in definitions:
            signature = get_variable_signature(schema, definition)
            if isinstance(signature, GraphQLError) or signature.default is not None:
                return None
            kind = signature.type
            scalar = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
            if not isinstance(scalar, GraphQLScalarType):
                return None
            scalars.append((signature, scalar))
        return cls(tuple(scalars))

    def coerce(self, inputs: Mapping[str, Any]) -> VariableValues | None:
        """The values as graphql-core would coerce them; None: let graphql-core do it."""
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for signature, scalar in self.scalars:
            value = inputs.get(signature.name)
            if value is None:
                return None  # omitted or null: graphql-core knows what either means here
            try:
                out = scalar.coerce_input_value(value)
            except Exception:  # graphql-core reports the refusal
                return None
            if out is Undefined:
                return None
            sources[signature.name] = VariableValueSource(signature, value)
            coerced[signature.name] = out
        return VariableValues(sources, coerced)
