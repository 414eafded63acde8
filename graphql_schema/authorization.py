"""Authorization of every GraphQL operation, over HTTP and websockets, before it runs.

The permissions an operation needs are derived from its parsed document, field by field
(`graphql_schema.permissions`: aliases, fragments and inline fragments resolved; only the
operation that runs counts), and checked by the services' gate (`server.auth.gate`), the same
one the REST layer asks. A refusal replaces validation's outcome, so nothing executes and a
subscription never starts; over HTTP the response status is 401 or 403 as for REST, and the
error's `extensions.code` is AUTHENTICATION_FAILED or AUTHORIZATION_FAILED.
"""

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import DocumentNode, GraphQLError
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from graphql_schema.context import GraphQLContext
from graphql_schema.permissions import required_permissions
from server.domain.errors import AuthenticationFailed, AuthorizationFailed

CACHE_SIZE = 512
STATUS = {AuthenticationFailed: 401, AuthorizationFailed: 403}


class _Permissions:
    """Required permissions per (document text, operation name), remembered (an LRU)."""

    def __init__(self) -> None:
        self.cache: OrderedDict[tuple[str, str | None], frozenset[str]] = OrderedDict()

    def of(
        self, schema: Any, query: str | None, document: DocumentNode, operation: str | None
    ) -> frozenset[str]:
        if query is None:
            return frozenset(required_permissions(schema, document, operation))
        key = (query, operation)
        found = self.cache.get(key)
        if found is None:
            found = frozenset(required_permissions(schema, document, operation))
            self.cache[key] = found
            if len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        return found


class Authorization(SchemaExtension):
    """Checks the caller holds every permission the operation's fields need."""

    permissions = _Permissions()  # shared: the document -> permissions map never changes

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        context = ctx.context
        document = ctx.graphql_document
        if isinstance(context, GraphQLContext) and document is not None:
            needed = self.permissions.of(
                ctx.schema._schema, ctx.query, document, ctx.operation_name
            )
            try:
                context.services.auth.require(context.request.scope, needed)
            except (AuthenticationFailed, AuthorizationFailed) as exc:
                # Set before validation runs: it is then skipped and nothing executes.
                ctx.pre_execution_errors = [refusal(exc, context)]
        yield


def refusal(
    exc: AuthenticationFailed | AuthorizationFailed, context: GraphQLContext
) -> GraphQLError:
    """The GraphQL error for a refused operation; over HTTP, also the response status."""
    if isinstance(context.response, Response):
        context.response.status_code = STATUS[type(exc)]
    return GraphQLError(exc.message, extensions={"code": exc.code})
