"""The request pipeline every REST endpoint runs through, declared once per operation.

An `Operation` names its method, path, permission, replies and handler. The handler's
parameters say what it takes (`query`, `headers`, `body`, each a pydantic model); the
pipeline authorizes, validates those, calls the handler and renders the reply. The OpenAPI
document is generated from the same declarations (`rest_compat.openapi`).

Authentication plugs in at ONE place: `authorize()`. Every operation declares its
permission (`tasker.task:show`, ...), and `authorize` receives it for each request.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_type_hints

import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from rest_compat.errors import BadRequest
from server.container import Services
from server.domain.errors import ValidationFailed

Handler = Callable[..., Awaitable[BaseModel | Response]]
Authorizer = Callable[[Request, str], Awaitable[None]]
INPUTS = ("query", "headers", "body")


@dataclass(frozen=True, slots=True)
class Link:
    """An OpenAPI link: how a reply's body addresses another operation (stateful clients)."""

    operation: str
    """The target's operationId (its handler's name)."""
    parameters: Mapping[str, str]
    """Target path parameter -> runtime expression, e.g. {"id": "$response.body#/id"}."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented success response."""

    status: int
    description: str
    model: Any = None
    """A `Shape` class, a union of them, or None for no JSON body."""
    media_type: str = "application/json"
    schema: dict[str, Any] | None = None
    """The schema of a non-JSON body (HTML, event stream)."""
    alternatives: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Other media types this reply may come as: (media type, schema)."""
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Operation:
    """One method on one path: what it needs, what it answers, who may call it."""

    method: str
    path: str
    handler: Handler
    permission: str
    summary: str
    replies: tuple[Reply, ...]
    errors: tuple[int, ...] = ()
    description: str = ""
    tag: str = "tasks"
    invalid: tuple[type[ValidationFailed], str] | None = None
    """Raise validation failures as this class with this message (the seed's create code)."""
    public: bool = False
    """Never needs a token: a plain route outside this pipeline (liveness, readiness), listed
    only so the document describes it; its `permission` is empty."""
    inputs: Mapping[str, type[BaseModel]] = field(init=False)

    def __post_init__(self) -> None:
        hints = get_type_hints(self.handler)
        params = inspect.signature(self.handler).parameters
        object.__setattr__(self, "inputs", {name: hints[name] for name in INPUTS if name in params})

    @property
    def status(self) -> int:
        """The status of a plain model reply."""
        return self.replies[0].status


def services_of(request: Request) -> Services:
    """The core, as the composition root attached it to the app."""
    return cast(Services, request.app.state.services)


async def authorize(request: Request, permission: str) -> None:
    """Let the request through, or raise. The single hook for authentication/authorization.

    The services' gate (`server.auth.gate`) checks the connection's bearer token for
    `permission` and raises AuthenticationFailed (401) or AuthorizationFailed (403), mapped in
    `rest_compat.errors.STATUS_BY_ERROR`. A callable at `app.state.authorizer` may refuse more.
    """
    request.state.permission = permission
    request.state.principal = services_of(request).auth.require(request.scope, [permission])
    authorizer: Authorizer | None = getattr(request.app.state, "authorizer", None)
    if authorizer is not None:
        await authorizer(request, permission)


async def run(operation: Operation, request: Request) -> Response:
    """Authorize, validate inputs, call the handler, render its reply."""
    await authorize(request, operation.permission)
    try:
        kwargs = {name: await _parse(name, m, request) for name, m in operation.inputs.items()}
        result = await operation.handler(request, **kwargs)
    except ValidationFailed as exc:
        if operation.invalid is None or isinstance(exc, operation.invalid[0]):
            raise
        cls, message = operation.invalid
        raise cls(message, exc.details or {}) from exc
    if isinstance(result, Response):
        return result
    return render(result, operation.status)


def render(model: BaseModel, status: int = 200) -> Response:
    """A model as JSON (pydantic's serializer, by alias: `from` in graph edges)."""
    return Response(
        model.model_dump_json(by_alias=True), status_code=status, media_type="application/json"
    )


def render_json(body: dict[str, Any], shape: type[BaseModel], status: int = 200) -> Response:
    """A body already in `shape`'s JSON form (plain names, formatted times), encoded by orjson.

    For the hot reads: validating and dumping a page of 25 tasks through pydantic cost more
    than reading them. orjson refuses integers beyond 64 bits, which a task's context may
    hold; pydantic encodes those. Tests check both give the same document.
    """
    try:
        content = orjson.dumps(body)
    except orjson.JSONEncodeError:
        content = shape.model_validate(body).model_dump_json(by_alias=True).encode()
    return Response(content, status_code=status, media_type="application/json")


async def _parse(kind: str, model: type[BaseModel], request: Request) -> BaseModel:
    try:
        if kind == "query":
            return _query(model, request.scope["query_string"])
        if kind == "headers":
            names = [f.alias or n for n, f in model.model_fields.items()]
            return model.model_validate(
                {n: request.headers[n] for n in names if n in request.headers}
            )
        raw = await request.body()
        if raw.strip() == b"":
            # A missing body where the document requires one (a PATCH with nothing in it) is a
            # client's mistake, not a request to change nothing.
            if getattr(model, "body_required", True):
                message = "must be present: a JSON object"
                raise ValidationFailed("Invalid request", {"body": [message]})
            raw = b"{}"
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None


@functools.lru_cache(maxsize=1024)
def _query(model: type[BaseModel], raw: bytes) -> BaseModel:
    """A query model from a raw query string. The same string always reads the same, and
    clients poll the same few (a dashboard's task list): each is validated once. A string
    that fails raises every time (exceptions are not cached)."""
    return model.model_validate(dict(QueryParams(raw)))


def _invalid(exc: ValidationError) -> Exception:
    """pydantic's errors as BadRequest (unreadable JSON) or ValidationFailed by field."""
    details: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        if error["type"] == "json_invalid":
            return BadRequest("Malformed JSON in request body", {"body": [error["msg"]]})
        if error["type"] == "model_type" and not error["loc"]:
            return BadRequest("Request body must be a JSON object")
        details.setdefault(_field(error["loc"]), []).append(_message(error))
    return ValidationFailed("Invalid request", details)


def _field(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "missing":
        return "must be present"
    return str(error["msg"]).removeprefix("Value error, ")


def routes_for(operations: Iterable[Operation]) -> list[BaseRoute]:
    """One Route per path whose endpoint serves each declared method (405 lists the rest)."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method.upper()] = op
    return [Route(path, PathEndpoint(ops)) for path, ops in by_path.items()]


class PathEndpoint:
    """The ASGI endpoint of one path: runs the operation declared for the request's method.

    Plain ASGI rather than a generated `HTTPEndpoint` subclass, which worked out the allowed
    methods and inspected the handler anew on every request."""

    def __init__(self, operations: Mapping[str, Operation]) -> None:
        self._operations = dict(operations)
        if "GET" in self._operations:
            self._operations.setdefault("HEAD", self._operations["GET"])
        order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        self._allow = ", ".join(m for m in order if m in self._operations)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive=receive, send=send)
        operation = self._operations.get(request.method)
        if operation is None:
            raise HTTPException(status_code=405, headers={"Allow": self._allow})
        response = await run(operation, request)
        await response(scope, receive, send)
