"""Typed exceptions for the Tasker client, built from the server's error envelope.

Every non-2xx REST answer carries `{"error": {"type", "message", "details"?, "code"}}`; the
client raises the subclass matching the HTTP status, carrying the envelope's fields, so callers
can `except NotFoundError` or look at `exc.code` without parsing anything themselves.
"""

from collections.abc import Mapping
from typing import Any

AUTHENTICATION_CODES = frozenset({"AUTHENTICATION_FAILED", "UNAUTHENTICATED"})


class TaskerError(Exception):
    """Any failure reported by (or on the way to) a Tasker server."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


class TransportError(TaskerError):
    """The server could not be reached, or the connection broke (no envelope)."""


class BadRequestError(TaskerError):
    """400: the request could not be read."""


class AuthenticationError(TaskerError):
    """401: the token is missing, invalid or expired."""


class AuthorizationError(TaskerError):
    """403: the token lacks the permission the call needs."""


class NotFoundError(TaskerError):
    """404: no such task, step, handler, namespace or route."""


class ConflictError(TaskerError):
    """409: the state change is impossible now, or an idempotency key was reused."""


class PayloadTooLargeError(TaskerError):
    """413: the request body is over the server's limit."""


class ValidationError(TaskerError):
    """422: the input breaks a rule; `details` maps each field to its messages."""


class RateLimitedError(TaskerError):
    """429: too many requests (raised once retries are used up)."""


class ServerError(TaskerError):
    """5xx: the server failed."""


class ServiceUnavailableError(ServerError):
    """503: the server (or a part of it) is unavailable for now."""


class GraphQLError(TaskerError):
    """The GraphQL response carried top-level `errors`; `errors` holds them all."""

    def __init__(self, message: str, errors: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors = errors


_BY_STATUS: dict[int, type[TaskerError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def error_for(status: int, body: Any, request_id: str | None = None) -> TaskerError:
    """The exception for a non-2xx response with (ideally) the seed's envelope as `body`."""
    envelope = body.get("error") if isinstance(body, dict) else None
    if not isinstance(envelope, dict):
        text = body if isinstance(body, str) and body else f"HTTP {status}"
        envelope = {"message": text[:500]}
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else TaskerError)
    details = envelope.get("details")
    return cls(
        str(envelope.get("message") or f"HTTP {status}"),
        status=status,
        type=envelope.get("type"),
        code=envelope.get("code"),
        details=details if isinstance(details, dict) else None,
        request_id=request_id,
    )


def graphql_error(errors: list[dict[str, Any]], status: int | None = None) -> TaskerError:
    """The exception for a GraphQL response with top-level `errors`.

    An authentication failure becomes `AuthenticationError` (so callers handle an expired token
    the same way over REST and GraphQL); anything else is a `GraphQLError`.
    """
    first = errors[0] if errors else {}
    extensions = first.get("extensions") or {}
    code = extensions.get("code") if isinstance(extensions, dict) else None
    message = "; ".join(str(e.get("message", "")) for e in errors) or "GraphQL request failed"
    if code in AUTHENTICATION_CODES:
        return AuthenticationError(message, status=status or 401, code=code)
    if code == "AUTHORIZATION_FAILED":
        return AuthorizationError(message, status=status or 403, code=code)
    return GraphQLError(message, errors, status=status, code=code)
