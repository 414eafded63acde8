"""Queries over HTTP whose document already passed everything run without the extensions.

A client sends the same few documents again and again. Once a document has been parsed,
bounded, authorized and validated (the limits and authorization extensions remember it only
then), what strawberry's extension runner does for it on every request is bookkeeping: four
extensions' hooks entered and left, caches looked up, nothing refused. Here such a request
is answered after the one check that depends on the caller: the gate must grant the
permissions the document needs (the same `require` call the authorization extension makes,
so a refusal is the same 401/403 and error). The answer comes from the document's compiled
plan (`graphql_schema.query_plans`), or from graphql-core's executor for a document plans
do not cover.

Only queries (never a mutation or subscription), only over HTTP, and only clean results: an
answer with any error is thrown away and the request runs again through strawberry's full
path, which shapes, masks and logs errors as always (a query reads, so running it twice
changes nothing).
"""

from typing import Any, cast

from graphql import (
    DocumentNode,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    specified_rules,
)
from graphql.execution import ExecutionResult as GraphQLResult
from starlette.requests import Request
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.types import ExecutionResult

from graphql_schema.authorization import Authorization, refusal
from graphql_schema.context import GraphQLContext
from graphql_schema.extensions import Limits
from graphql_schema.plan_runs import answer
from graphql_schema.query_plans import Fallback
from server.domain.errors import AuthenticationFailed, AuthorizationFailed

DEFAULT_RULES = tuple(specified_rules)
"""Strawberry's validation rules before the limits extension adds its own."""


def known_query(
    limits: Limits, query: str | None, operation_name: str | None
) -> tuple[DocumentNode, OperationDefinitionNode, frozenset[str]] | None:
    """The parsed document, its operation and the permissions it needs, when the document
    is a query that already passed parsing, bounds, authorization and validation; else None."""
    if not query:
        return None
    document = limits.documents.get(query)
    if document is None or not limits.validated.get(query, DEFAULT_RULES + limits.rules):
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    # Remembered under the name of the operation that ran, which strawberry reads from the
    # document when the request names none (most clients send a single named operation and
    # no `operationName`).
    ran = operation.name.value if operation.name else None
    needed = Authorization.permissions.get(query, ran)
    if needed is None:
        return None
    return document, operation, needed


async def run_known_query(
    schema: Any,
    query: str | None,
    variables: dict[str, Any] | None,
    context: GraphQLContext,
    operation_name: str | None,
) -> ExecutionResult | None:
    """The answer to a known query, a refusal, or None: run it the full way."""
    if not isinstance(context.request, Request):
        return None
    known = known_query(schema.limits, query, operation_name)
    if known is None:
        return None
    document, operation, needed = known
    try:
        context.services.auth.require(context.request.scope, needed)
    except (AuthenticationFailed, AuthorizationFailed) as exc:
        return ExecutionResult(data=None, errors=[refusal(exc, context)])
    plan = schema.plans.plan(query, document, operation)
    if plan is not None:
        try:
            return ExecutionResult(data=await answer(plan, context, variables), errors=None)
        except Fallback:
            context.renew_loaders()  # the full run starts from nothing, as a first run would
            return None
    result = execute(
        schema._schema,
        document,
        variable_values=variables,
        context_value=context,
        operation_name=operation_name,
        is_awaitable=cast(Any, optimized_is_awaitable),  # a TypeGuard in graphql-core's stubs
        executor_class=schema.execution_context_class,
    )
    if not isinstance(result, GraphQLResult):
        result = await result
    if not isinstance(result, GraphQLResult) or result.errors:
        context.renew_loaders()  # the full run starts from nothing, as a first run would
        return None
    return ExecutionResult(data=result.data, errors=None)
