"""Authorization of every GraphQL operation, over HTTP and websockets, before it runs.

The permissions an operation needs are derived from its parsed document, field by field
(`graphql_schema.permissions`: aliases, fragments and inline fragments resolved; only the
operation that runs counts), and checked by the services' gate (`server.auth.gate`), the same
one the REST layer asks. A refusal replaces validation's outcome, so nothing executes and a
subscription never starts; over HTTP the response status is 401 or 403 as for REST, and the
error's `extensions.code` is AUTHENTICATION_FAILED or AUTHORIZATION_FAILED. It runs before
validation (see `graphql_schema.schema`), so a refused document is never validated.
"""

import asyncio
import functools
from collections.abc import AsyncIterator

from graphql import GraphQLError
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from graphql_schema.bounds import OFFLOAD_CHARS
from graphql_schema.caches import TextCache
from graphql_schema.context import GraphQLContext
from graphql_schema.permissions import required_permissions
from server.domain.errors import AuthenticationFailed, AuthorizationFailed

CACHE_SIZE = 512
CACHE_CHARS = 2_000_000
STATUS = {AuthenticationFailed: 401, AuthorizationFailed: 403}


class Authorization(SchemaExtension):
    """Checks the caller holds every permission the operation's fields need.

    Runs before validation, so a refused caller never costs a validation. What a document
    needs is remembered only once its operation passed everything (a refused request leaves
    nothing behind), in a cache bounded by entries and by the total text kept."""

    permissions: TextCache[frozenset[str]] = TextCache(CACHE_SIZE, CACHE_CHARS)

    async def on_validate(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        context = ctx.context
        document = ctx.graphql_document
        if not isinstance(context, GraphQLContext) or document is None or ctx.pre_execution_errors:
            yield  # nothing to run, or a document refused already (over the work bounds)
            return
        query = ctx.query
        known = self.permissions.get(query, ctx.operation_name) if query else None
        needed = known
        if needed is None:
            walk = functools.partial(
                required_permissions, ctx.schema._schema, document, ctx.operation_name
            )
            long = query is not None and len(query) > OFFLOAD_CHARS
            needed = frozenset(await asyncio.to_thread(walk) if long else walk())
        try:
            context.services.auth.require(context.request.scope, needed)
        except (AuthenticationFailed, AuthorizationFailed) as exc:
            # Set before validation runs: it is then skipped and nothing executes.
            ctx.pre_execution_errors = [refusal(exc, context)]
        yield
        if known is None and query and ctx.pre_execution_errors == []:
            self.permissions.put(query, needed, ctx.operation_name)


def refusal(
    exc: AuthenticationFailed | AuthorizationFailed, context: GraphQLContext
) -> GraphQLError:
    """The GraphQL error for a refused operation; over HTTP, also the response status."""
    if isinstance(context.response, Response):
        context.response.status_code = STATUS[type(exc)]
    return GraphQLError(exc.message, extensions={"code": exc.code})
