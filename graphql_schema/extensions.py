import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, parse
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from graphql_schema.bounds import OFFLOAD_CHARS, Bounds, check_bounds
from graphql_schema.caches import TextCache
from graphql_schema.context import GraphQLContext
from server.config import Settings
from server.domain.errors import DomainError

INTERNAL_ERROR = "INTERNAL_ERROR"


def is_unexpected(error: GraphQLError) -> bool:
    """A crash (not a domain error, not a GraphQL syntax/validation/coercion error)."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | DomainError):
        return False
    return error.path is not None or not error.nodes


def request_id(execution_context: ExecutionContext | None) -> str | None:
    context = execution_context.context if execution_context else None
    return context.request_id if isinstance(context, GraphQLContext) else None


class ErrorShaping(MaskErrors):
    """Masks crashes (keeping a request id to find the log line); codes domain errors."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Unexpected error.")

    # MaskErrors' hook (strawberry 0.341): one place for every error of every result.
    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        rid = request_id(self.execution_context)
        return [self._shape(error, rid) for error in errors]

    def _shape(self, error: GraphQLError, rid: str | None) -> GraphQLError:
        original = error.original_error
        if is_unexpected(error):
            extensions: dict[str, Any] = {"code": INTERNAL_ERROR, "requestId": rid}
            return GraphQLError(
                self.error_message,
                error.nodes,
                error.source,
                error.positions,
                error.path,
                extensions=extensions,
            )
        if isinstance(original, DomainError):
            extensions = {"code": original.code}
            if original.details:
                extensions["details"] = original.details
            return GraphQLError(
                error.message,
                error.nodes,
                error.source,
                error.positions,
                error.path,
                extensions=extensions,
            )
        return error


class Limits:
    """Query limits and the parse/validation caches of one schema (shared by its requests).

    The caches keep only documents that passed everything (limits, authorization,
    validation): a refused request leaves no trace, and their text is bounded in total."""

    def __init__(
        self, settings: Settings, cache_size: int = 256, cache_chars: int = 2_000_000
    ) -> None:
        self.max_tokens = settings.graphql_max_tokens
        # Comments and whitespace are not tokens; cap the text too (100 characters a token).
        self.max_chars = 100 * settings.graphql_max_tokens
        self.bounds = Bounds(
            max_fields=settings.graphql_max_fields,
            max_aliases=settings.graphql_max_aliases,
            max_same_name=settings.graphql_max_same_name_fields,
        )
        rules: list[type[ASTValidationRule]] = [
            depth_rule(settings.graphql_max_depth, None, None),
            alias_rule(settings.graphql_max_aliases),
        ]
        if not settings.graphql_introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.rules = tuple(rules)
        self.cache_size = cache_size
        self.cache_chars = cache_chars
        self.documents: TextCache[DocumentNode] = TextCache(cache_size, cache_chars)
        self.validated: TextCache[bool] = TextCache(cache_size, cache_chars)
        """Documents (and rule sets) that validated without errors."""

    def extension(self) -> "LimitedDocuments":
        return LimitedDocuments(self)


class LimitedDocuments(SchemaExtension):
    """Token and work bounds at parse time; depth/alias/introspection rules at validation,
    run only for documents within the bounds and callers allowed to run them (the
    authorization extension comes first and sets its refusal). Long documents are parsed
    and validated in a thread."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        context = self.execution_context.context
        # A websocket keeps one context for its life; each operation gets new loader caches.
        # (Here rather than in an extension of its own: each extension costs every request.)
        if isinstance(context, GraphQLContext) and context.is_websocket:
            context.renew_loaders()
        yield

    async def on_parse(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        query = ctx.query
        if query is not None and len(query) > self.limits.max_chars:
            raise GraphQLError(
                f"Syntax Error: Document is longer than {self.limits.max_chars} characters. "
                "Parsing aborted."
            )
        cached = None
        if query is not None and ctx.graphql_document is None:
            cached = ctx.graphql_document = self.limits.documents.get(query)
            if cached is None and len(query) > OFFLOAD_CHARS:
                ctx.graphql_document = await asyncio.to_thread(parse, query, **ctx.parse_options)
        yield
        document = ctx.graphql_document
        error = (
            check_bounds(document, self.limits.bounds)
            if document is not None and cached is None
            else None
        )
        if error is not None:
            ctx.pre_execution_errors = [error]  # validation is then skipped

    async def on_validate(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        ctx.validation_rules = ctx.validation_rules + self.limits.rules
        document: DocumentNode | None = ctx.graphql_document
        if document is None or ctx.query is None or ctx.pre_execution_errors is not None:
            yield  # refused already (bounds or authorization), or nothing to cache
            return
        rules = ctx.validation_rules
        if self.limits.validated.get(ctx.query, rules):
            ctx.pre_execution_errors = []
            yield
            return
        # Off the event loop when long: a legal document within the bounds still costs
        # milliseconds.
        if len(ctx.query) > OFFLOAD_CHARS:
            ctx.pre_execution_errors = await asyncio.to_thread(
                validate_document, ctx.schema._schema, document, rules
            )
        else:
            ctx.pre_execution_errors = validate_document(ctx.schema._schema, document, rules)
        yield
        if not ctx.pre_execution_errors:
            self.limits.documents.put(ctx.query, document)
            self.limits.validated.put(ctx.query, True, rules)
