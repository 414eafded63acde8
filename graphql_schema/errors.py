import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

import strawberry

from graphql_schema.context import GraphQLContext
from graphql_schema.types.enums import TransitionStatus, transition_status
from server.domain.errors import (
    Conflict,
    DomainError,
    HandlerNotFound,
    InvalidTransition,
    NamespaceNotFound,
    NotFound,
    ValidationFailed,
)

P = ParamSpec("P")
R = TypeVar("R")


@strawberry.interface(name="Error", description="An expected failure the caller can act on.")
class ErrorType:
    message: str = strawberry.field(description="What went wrong, for people.")
    code: str = strawberry.field(
        description=(
            "Stable machine-readable code, e.g. TASK_NOT_FOUND, VALIDATION_ERROR, "
            "INVALID_TRANSITION (REST's `error.code` for the same mistake)."
        )
    )


@strawberry.type(name="FieldError", description="The problems with one input field.")
class FieldErrorType:
    field: str = strawberry.field(description="Path of the field, e.g. `context.payment_id`.")
    messages: list[str] = strawberry.field(description="Everything wrong with it.")


@strawberry.type(name="NotFoundError", description="The task or step addressed does not exist.")
class NotFoundErrorType(ErrorType):
    pass


@strawberry.type(name="ValidationError", description="The input breaks a rule.")
class ValidationErrorType(ErrorType):
    details: list[FieldErrorType] = strawberry.field(description="Problems, field by field.")


@strawberry.type(
    name="InvalidTransitionError",
    description="The state change is not allowed from the current state.",
)
class InvalidTransitionErrorType(ErrorType):
    current_status: TransitionStatus | None = strawberry.field(description="State it is in.")
    requested_status: TransitionStatus | None = strawberry.field(description="State asked for.")


@strawberry.type(
    name="HandlerNotFoundError",
    description="No handler has this namespace, name and version.",
)
class HandlerNotFoundErrorType(ErrorType):
    pass


@strawberry.type(
    name="ConflictError",
    description="The request conflicts with existing state (e.g. a reused idempotency key).",
)
class ConflictErrorType(ErrorType):
    details: list[FieldErrorType] = strawberry.field(description="Conflicts, field by field.")


def field_errors(details: Mapping[str, Any] | None) -> list[FieldErrorType]:
    return [
        FieldErrorType(
            field=name, messages=[str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
        )
        for name, msgs in (details or {}).items()
    ]


def error_result(exc: DomainError) -> ErrorType:
    """The one map from a domain error to its GraphQL error type (unknown kinds re-raise)."""
    if isinstance(exc, NamespaceNotFound | HandlerNotFound):
        return HandlerNotFoundErrorType(message=exc.message, code=exc.code)
    if isinstance(exc, NotFound):
        return NotFoundErrorType(message=exc.message, code=exc.code)
    if isinstance(exc, ValidationFailed):
        return ValidationErrorType(
            message=exc.message, code=exc.code, details=field_errors(exc.details)
        )
    if isinstance(exc, InvalidTransition):
        return InvalidTransitionErrorType(
            message=exc.message,
            code=exc.code,
            current_status=transition_status(exc.current),
            requested_status=transition_status(exc.target),
        )
    if isinstance(exc, Conflict):
        return ConflictErrorType(
            message=exc.message, code=exc.code, details=field_errors(exc.details)
        )
    raise exc


def expected_errors(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """For mutations: turn the domain errors raised into members of the result union.

    Loader caches are dropped first, so what an earlier mutation of the same document read
    is not served again after this one changed it (mutations run one after another).
    """

    @functools.wraps(resolver)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        context = getattr(kwargs.get("info"), "context", None)
        if isinstance(context, GraphQLContext):
            context.renew_loaders()
        try:
            return await resolver(*args, **kwargs)
        except DomainError as exc:
            return cast(R, error_result(exc))

    return wrapper
