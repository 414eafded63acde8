"""Every non-2xx answer as the seed's envelope: `{"error": {type, message, details?, code}}`.

One table maps domain errors to HTTP statuses; `exception_handlers` registers it on the app
(together with Starlette's own 404/405/413 and a masked 500), so endpoints never build error
bodies themselves.
"""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.domain.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    Conflict,
    DomainError,
    InvalidTransition,
    NotFound,
    TemplateInvalid,
    ValidationFailed,
)

log = logging.getLogger(__name__)


class BadRequest(DomainError):
    """The request cannot be read at all (e.g. its body is not JSON)."""

    type = "BadRequest"
    code = "BAD_REQUEST"


STATUS_BY_ERROR: Mapping[type[DomainError], int] = {
    BadRequest: 400,
    AuthenticationFailed: 401,  # the messages are the seed's, see server.auth
    AuthorizationFailed: 403,
    NotFound: 404,
    InvalidTransition: 409,
    Conflict: 409,
    ValidationFailed: 422,
    # A broken handler definition surfacing at request time is our fault, not the caller's.
    TemplateInvalid: 500,
}
"""Status per domain error class; subclasses inherit their base's status (first match in MRO)."""

# Starlette raises HTTPException for routing and protocol failures; these name them.
HTTP_ERROR_TYPES: Mapping[int, tuple[str, str]] = {
    400: ("BadRequest", "BAD_REQUEST"),
    404: ("NotFound", "NOT_FOUND"),
    405: ("MethodNotAllowed", "METHOD_NOT_ALLOWED"),
    413: ("PayloadTooLarge", "PAYLOAD_TOO_LARGE"),
    415: ("UnsupportedMediaType", "UNSUPPORTED_MEDIA_TYPE"),
}


def status_for(error: DomainError) -> int:
    """The HTTP status of a domain error (400 for kinds the table does not know)."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 400


def error_body(
    type_: str, code: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The seed's envelope; `details` only when there are some."""
    error: dict[str, Any] = {"type": type_, "message": message}
    if details:
        error["details"] = dict(details)
    error["code"] = code
    return {"error": error}


def error_response(
    status: int,
    type_: str,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response carrying the envelope."""
    return JSONResponse(
        error_body(type_, code, message, details), status_code=status, headers=headers
    )


async def domain_error(request: Request, exc: Exception) -> Response:
    """DomainError -> its status and envelope."""
    assert isinstance(exc, DomainError)
    status = status_for(exc)
    if status >= 500:
        log.error("request %s failed: %s", _request_id(request), exc.message)
    return error_response(status, exc.type, exc.code, exc.message, exc.details)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTPException (unknown route, wrong method, body too large) -> envelope."""
    assert isinstance(exc, HTTPException)
    phrase = _phrase(exc.status_code)
    type_, code = HTTP_ERROR_TYPES.get(
        exc.status_code, (phrase.replace(" ", ""), phrase.upper().replace(" ", "_"))
    )
    message = exc.detail if exc.detail and exc.detail != phrase else _message(request, exc)
    return error_response(exc.status_code, type_, code, message, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged once with the request id, masked for the caller."""
    request_id = _request_id(request)
    log.error("request %s failed", request_id, exc_info=exc)
    return error_response(
        500,
        "InternalError",
        "INTERNAL_ERROR",
        "Internal server error",
        {"request_id": request_id} if request_id else None,
    )


exception_handlers: dict[Any, Any] = {
    DomainError: domain_error,
    HTTPException: http_error,
    Exception: internal_error,
}
"""For `Starlette(exception_handlers=...)`."""


def _message(request: Request, exc: HTTPException) -> str:
    if exc.status_code == 404:
        return f"No route matches {request.method} {request.url.path}"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"Method {request.method} is not allowed here (allowed: {allowed})"
    return _phrase(exc.status_code)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)
