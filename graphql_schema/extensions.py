from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

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


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self.items[key] = value
        if len(self.items) > self.maxsize:
            self.items.popitem(last=False)


class Limits:
    """Query limits and the parse/validation cache of one schema (shared by its requests)."""

    def __init__(self, settings: Settings, cache_size: int = 256) -> None:
        self.max_tokens = settings.graphql_max_tokens
        # Comments and whitespace are not tokens; cap the text too (100 characters a token).
        self.max_chars = 100 * settings.graphql_max_tokens
        rules: list[type[ASTValidationRule]] = [
            depth_rule(settings.graphql_max_depth, None, None),
            alias_rule(settings.graphql_max_aliases),
        ]
        if not settings.graphql_introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.rules = tuple(rules)
        self.documents = _LRU(cache_size)
        self.validations = _LRU(cache_size)

    def extension(self) -> "LimitedDocuments":
        return LimitedDocuments(self)


class LimitedDocuments(SchemaExtension):
    """Token limit at parse time, depth/alias/introspection rules at validation; both cached."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query is not None and len(ctx.query) > self.limits.max_chars:
            raise GraphQLError(
                f"Syntax Error: Document is longer than {self.limits.max_chars} characters. "
                "Parsing aborted."
            )
        if ctx.query is not None and ctx.graphql_document is None:
            ctx.graphql_document = self.limits.documents.get(ctx.query)
        yield
        if ctx.query is not None and ctx.graphql_document is not None:
            self.limits.documents.put(ctx.query, ctx.graphql_document)

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        ctx.validation_rules = ctx.validation_rules + self.limits.rules
        document: DocumentNode | None = ctx.graphql_document
        if document is not None and ctx.query is not None:
            key = (ctx.query, ctx.validation_rules)
            errors = self.limits.validations.get(key)
            if errors is None:
                errors = validate_document(ctx.schema._schema, document, ctx.validation_rules)
                self.limits.validations.put(key, errors)
            ctx.pre_execution_errors = list(errors)
        yield


class FreshLoaders(SchemaExtension):
    """A websocket keeps one context for its life; each operation gets new loader caches."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, GraphQLContext) and context.is_websocket:
            context.renew_loaders()
        yield
